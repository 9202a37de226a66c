import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const built = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/** Runs the built guard (node --import `preload`), limited to some parts; its exit and output. */
async function guard(
  only: string,
  preload?: string,
): Promise<{ code: number | null; out: string }> {
  const args = [...(preload ? ["--import", preload] : []), built("../dist/guard.js")];
  const child = spawn(process.execPath, args, {
    env: { ...process.env, EVC_BENCH_ONLY: only },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (b: Buffer) => {
    out += b.toString();
  });
  child.stderr.on("data", (b: Buffer) => {
    out += b.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  return { code, out };
}

describe("the bench's CI guard", () => {
  it("fails on a deliberately slowed build, naming the figure that dropped", async () => {
    // The hub's snapshot stream made to spend 50 µs per entry, as a slower encoder would: the
    // reconciliation figure drops to a fraction of the reference measured on the real build.
    const slowed = await guard("baselines,reconcile", built("../test/slowed-build.mjs"));
    expect(slowed.out).toMatch(/FAILED: dropped by more than a third/);
    expect(slowed.out).toMatch(/^\s+reconcile_sync\/pg_cpu: /m);
    expect(slowed.code).toBe(1);
  }, 240_000);
});
