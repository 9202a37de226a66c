import { spawn } from "node:child_process";
import { once } from "node:events";
import { describe, expect, it } from "vitest";
import { cpuPerOp, cpuSnapshot, median, quantile, quiet } from "./measure.js";

describe("bench statistics", () => {
  it("takes quantiles of sorted samples as the nearest rank", () => {
    const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(quantile(xs, 0.5)).toBe(5);
    expect(quantile(xs, 0.99)).toBe(10);
    expect(quantile([], 0.5)).toBe(0);
    expect(median([30, 10, 20])).toBe(20);
  });

  it("turns two CPU snapshots into milliseconds per operation, part by part", () => {
    const before = { hub: 10, provinces: 4, postgres: 100 };
    const after = { hub: 12, provinces: 5, postgres: 101.5, nats: 3 };
    // A part missing from the first snapshot has no delta and is left out.
    expect(cpuPerOp(before, after, 1000)).toEqual({
      cpu_ms_hub: 2,
      cpu_ms_provinces: 1,
      cpu_ms_postgres: 1.5,
    });
    expect(cpuPerOp(before, after, 0)).toEqual({});
  });

  it("reads this process's CPU time and the database server's from /proc", () => {
    const first = cpuSnapshot({ self: process.pid, gone: 2 ** 30 });
    if (process.platform !== "linux") {
      expect(first).toEqual({});
      return;
    }
    // Busy for a while: this process's CPU time moves on (ticks are 10 ms).
    let x = 0;
    const end = process.cpuUsage().user + 200_000;
    while (process.cpuUsage().user < end) x += Math.sqrt(x + 1);
    const second = cpuSnapshot({ self: process.pid });
    expect(x).toBeGreaterThan(0);
    expect(first.gone).toBeUndefined();
    expect(first.self).toBeDefined();
    expect(second.self).toBeGreaterThan(first.self as number);
    // The tests run against a local PostgreSQL: its processes are found by name.
    expect(second.postgres).toBeGreaterThan(0);
    expect(second.nats).toBeGreaterThanOrEqual(0);
  });

  it.runIf(process.platform === "linux")(
    "waits for a busy process to go idle before calling the machine quiet",
    async () => {
      // Busy for 1.5 s of wall time, then idle (but alive) until killed.
      const child = spawn(
        process.execPath,
        [
          "-e",
          `const end = Date.now() + 1500; let x = 0;
           while (Date.now() < end) x += Math.sqrt(x + 1);
           process.stdout.write("idle\\n"); setInterval(() => {}, 1000);`,
        ],
        { stdio: ["ignore", "pipe", "inherit"] },
      );
      try {
        let idleAt: number | undefined;
        child.stdout.once("data", () => {
          idleAt = performance.now();
        });
        await once(child, "spawn");
        await quiet({ child: child.pid }, 0.05, 20_000);
        const returnedAt = performance.now();
        // Not before the child stopped spinning (PostgreSQL and NATS count too: under other
        // tests' load it may wait longer, up to the cap, which is fine).
        expect(idleAt).toBeDefined();
        expect(returnedAt).toBeGreaterThan(idleAt as number);
      } finally {
        child.kill();
        await once(child, "exit");
      }
    },
  );
});
