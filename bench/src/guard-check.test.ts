import { describe, expect, it } from "vitest";
import { best, guardedRatios, judge, medianRatios, partsOf } from "./guard-check.js";
import { figure } from "./measure.js";

/** A run's figures: `machine` scales every rate (2 = a machine twice as fast). */
const run = (migrations: number, reconcileSeconds: number, machine = 1) => [
  figure("pg_cpu", "rows hashed", "rows/s", [2000 * machine]),
  figure("naive_pipeline", "naive", "migrations/s", [200 * machine]),
  figure("migrations", "ours", "migrations/s", [migrations * machine]),
  figure("reconcile_sync", "reconcile", "s", [reconcileSeconds / machine]),
];

describe("the bench's CI guard", () => {
  it("divides each headline by its in-run baseline, a duration as a rate", () => {
    expect(guardedRatios(run(250, 0.5))).toEqual({
      "migrations/naive_pipeline": 1.25,
      "reconcile_sync/pg_cpu": 2 / 2000,
    });
  });

  it("passes ratios within a third of the reference, and fails those that dropped more, by name", () => {
    const reference = guardedRatios(run(250, 0.5));
    // A whole machine twice as slow or as fast: figures and baselines move alike.
    expect(judge(reference, guardedRatios(run(250, 0.5, 0.5))).dropped).toEqual([]);
    expect(judge(reference, guardedRatios(run(250, 0.5, 2))).dropped).toEqual([]);
    // 30% less is noise still; reconciliation twice as slow on the same machine is not.
    const verdict = judge(reference, guardedRatios(run(175, 1)));
    expect(verdict.dropped).toEqual([
      expect.stringMatching(/^reconcile_sync\/pg_cpu: .* \(reference .*, 50%\)$/),
    ]);
    expect(verdict.lines).toHaveLength(2);
  });

  it("lists the reference's ratios a run did not measure", () => {
    const reference = guardedRatios(run(250, 0.5));
    const partial = run(250, 0.5).filter((f) => f.id !== "reconcile_sync");
    expect(judge(reference, guardedRatios(partial)).missing).toEqual(["reconcile_sync/pg_cpu"]);
  });

  it("measures what dropped once more, both sides of each ratio, and keeps the better of two runs", () => {
    expect(partsOf(["reconcile_sync/pg_cpu", "doses/naive_pipeline"])).toEqual([
      "baselines",
      "doses",
      "migrations",
      "reconcile",
    ]);
    expect(best({ a: 1, b: 2 }, { b: 3 })).toEqual({ a: 1, b: 3 });
    // The reference is each ratio's median over several runs, not one lucky or unlucky run.
    expect(medianRatios([{ a: 1, b: 4 }, { a: 3, b: 2 }, { a: 2 }])).toEqual({ a: 2, b: 3 });
    expect(best({ a: 1, b: 2 }, { b: 1 })).toEqual({ a: 1, b: 2 });
  });
});
