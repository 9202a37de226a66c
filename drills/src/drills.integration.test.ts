import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TEST_DATABASE_URL } from "@evc-interop/testing";
import { describe, expect, it } from "vitest";
import { runDrills } from "./drills.js";

/**
 * The short seeded set CI runs on every push: hub, provinces and nats-server as separate
 * processes, each drill killing one of them with SIGKILL under load — or a province, whose
 * database is then restored from an older backup or lost, or the hub, restored from an older
 * backup (fenced), then from its newest state; the oracle must find nothing lost, doubled,
 * violated or stuck. The drills run the built programs (`tsc -b`).
 */
describe("fault drills", () => {
  it("seeds 7000-7006: nothing lost, doubled, violated or stuck; the hub restored from an older backup is fenced", async () => {
    expect(existsSync(new URL("../../national/dist/main.js", import.meta.url))).toBe(true);
    const dir = mkdtempSync(join(tmpdir(), "evc-drills-test-"));
    const lines: string[] = [];
    try {
      const s = await runDrills({
        seed: 7000,
        drills: 7,
        opsPerDrill: 12,
        dir,
        adminUrl: TEST_DATABASE_URL,
        provinces: ["110000", "440000", "510000"],
        quietTimeoutMs: 45_000,
        print: (l) => lines.push(l),
      });
      expect(s.drills).toBe(7);
      expect(Object.values(s.faults).reduce((a, b) => a + b, 0)).toBe(7);
      // These seeds set a province back both ways and the hub once (#28), and kill processes.
      expect(Object.keys(s.faults)).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/^restore province/),
          expect.stringMatching(/^lose province/),
          expect.stringMatching(/^restore the hub/),
          expect.stringMatching(/^kill -9/),
        ]),
      );
      expect(s.hubRestores).toEqual({ fenced: 1, nothingToDetect: 0 });
      expect(s.operations.acknowledged).toBeGreaterThan(30);
      expect({
        violations: s.violations,
        stuck: s.stuck,
        lost: s.lost,
        doubled: s.doubled,
      }).toEqual({
        violations: [],
        stuck: [],
        lost: 0,
        doubled: 0,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
