import { describe, expect, it } from "vitest";
import { best, guardedRatios, judge, partsOf } from "./guard-check.js";
import { figure } from "./measure.js";

const run = (migrations: number, reconcileSeconds: number, machine = 1) => [
  figure("pg_commits", "commits", "commits/s", [10_000 * machine]),
  figure("naive_pipeline", "naive", "migrations/s", [200 * machine]),
  figure("migrations", "ours", "migrations/s", [migrations]),
  figure("reconcile_sync", "reconcile", "s", [reconcileSeconds]),
];

describe("the bench's CI guard", () => {
  it("divides each headline by its in-run baseline, a duration as a rate", () => {
    expect(guardedRatios(run(250, 0.5))).toEqual({
      "migrations/naive_pipeline": 1.25,
      "reconcile_sync/pg_commits": 2 / 10_000,
    });
  });

  it("passes ratios within a third of the reference, and fails those that dropped more, by name", () => {
    const reference = guardedRatios(run(250, 0.5));
    // A whole machine twice as slow: every rate and baseline halves, the ratios stay.
    const slowMachine = run(125, 1, 0.5);
    expect(judge(reference, guardedRatios(slowMachine)).dropped).toEqual([]);
    // 30% less is noise still; reconciliation twice as slow on the same machine is not.
    const verdict = judge(reference, guardedRatios(run(175, 1)));
    expect(verdict.dropped).toEqual([
      expect.stringMatching(/^reconcile_sync\/pg_commits: .* \(reference .*, 50%\)$/),
    ]);
    expect(verdict.lines).toHaveLength(2);
  });

  it("lists the reference's ratios a run did not measure", () => {
    const reference = guardedRatios(run(250, 0.5));
    const partial = run(250, 0.5).filter((f) => f.id !== "reconcile_sync");
    expect(judge(reference, guardedRatios(partial)).missing).toEqual(["reconcile_sync/pg_commits"]);
  });

  it("measures what dropped once more, with its baselines, and keeps the better of the two", () => {
    expect(
      partsOf(["reconcile_sync/pg_commits", "verify/pg_commits", "rebuild_mixed/pg_commits"]),
    ).toEqual(["baselines", "log", "reconcile"]);
    expect(best({ a: 1, b: 2 }, { b: 3 })).toEqual({ a: 1, b: 3 });
    expect(best({ a: 1, b: 2 }, { b: 1 })).toEqual({ a: 1, b: 2 });
  });
});
