import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { closedLoop } from "./measure.js";

/** Settings of a bench run, from the environment, and helpers every part uses. */
export const ROUNDS = Number(process.env.EVC_BENCH_ROUNDS ?? 3);
export const SCALE = Number(process.env.EVC_BENCH_SCALE ?? 1);
export const LOG_EVENTS = Math.round(1_000_000 * SCALE);
export const RECONCILE_CERTS = Math.round(1_000_000 * SCALE);
export const ONBOARD_RECORDS = Math.round(1_000_000 * SCALE);
/** Migrations, and cross-province doses, per round (EVC_BENCH_OPERATIONS, else 2,000 x scale). */
export const MIGRATIONS = Number(process.env.EVC_BENCH_OPERATIONS ?? Math.round(2000 * SCALE));
/** Length of a timed round of calls (status reads and the trivial call), EVC_BENCH_CALL_MS. */
export const CALL_ROUND_MS = Number(process.env.EVC_BENCH_CALL_MS ?? 5000);
export const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
export const PROVINCES = ["110000", "440000", "510000", "310000"];
const PARTS = [
  "baselines",
  "migrations",
  "doses",
  "reads",
  "log",
  "reconcile",
  "onboard",
  "security",
];
/** EVC_BENCH_ONLY=migrations,log runs just those parts (default: all). */
const ONLY = (process.env.EVC_BENCH_ONLY ?? "")
  .split(",")
  .map((x) => x.trim())
  .filter(Boolean);
for (const part of ONLY) {
  if (!PARTS.includes(part)) {
    throw new Error(`EVC_BENCH_ONLY: unknown part ${part}; known: ${PARTS.join(", ")}`);
  }
}
export function want(part: string): boolean {
  return ONLY.length === 0 || ONLY.includes(part);
}

export const here = dirname(fileURLToPath(import.meta.url));

/** The reference province's program (its `evc-province` bin), beside its built entry point. */
export function provinceProgram(): string {
  return fileURLToPath(
    new URL("./main.js", import.meta.resolve("@evc-interop/province-reference")),
  );
}
export const t0 = Date.now();
export function progress(msg: string): void {
  process.stderr.write(`[bench ${((Date.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${msg}\n`);
}

export async function rounds(
  label: string,
  n: number,
  fn: (round: number) => Promise<number>,
): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    out.push(await fn(i));
    const v = out.at(-1) ?? 0;
    progress(`${label}: round ${i + 1}/${n}: ${v >= 100 ? v.toFixed(0) : v.toPrecision(3)}`);
  }
  return out;
}

/**
 * Rounds of calls from 64 concurrent callers, for the trivial-call baseline and the status
 * reads it bounds alike: first an untimed warm-up of each (a server's first seconds go to
 * compiling its hot code: the first timed round used to come out 10–25% below the others),
 * then timed rounds of CALL_ROUND_MS (5 seconds unless set), the callers' rounds taking turns so that each sees the
 * machine as the others do. Returns each caller's calls/s per round and last latencies.
 */
export async function callRounds(
  callers: { label: string; call: (i: number) => Promise<void> }[],
): Promise<{ perSecond: number[]; latencies: number[] }[]> {
  for (const c of callers) {
    const warm = await closedLoop(64, Math.min(3_000, CALL_ROUND_MS), c.call);
    progress(`${c.label}: warm-up ${warm.perSecond.toFixed(0)} (not counted)`);
  }
  const out = callers.map(() => ({ perSecond: [] as number[], latencies: [] as number[] }));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, c] of callers.entries()) {
      const res = await closedLoop(64, CALL_ROUND_MS, c.call);
      const o = out[i] as (typeof out)[number];
      o.perSecond.push(res.perSecond);
      o.latencies = res.latencies;
      progress(`${c.label}: round ${round + 1}/${ROUNDS}: ${res.perSecond.toFixed(0)}`);
    }
  }
  return out;
}
