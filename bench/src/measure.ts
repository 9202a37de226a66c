/** Small statistics helpers for the benchmark. */
import { readdirSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";

export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] ?? 0;
}

export function median(xs: number[]): number {
  return quantile(
    [...xs].sort((a, b) => a - b),
    0.5,
  );
}

/** One headline figure: rounds, their median/min/max, and how it compares with its baseline. */
export interface Figure {
  id: string;
  name: string;
  unit: string;
  rounds: number[];
  median: number;
  min: number;
  max: number;
  /** Extra numbers of the median round (latency percentiles, memory...). */
  extra: Record<string, number>;
  /** Id of the baseline figure that bounds this one, if any. */
  baseline?: string;
  ratio?: number;
  target?: string;
  met?: boolean;
}

export function figure(
  id: string,
  name: string,
  unit: string,
  rounds: number[],
  extra: Record<string, number> = {},
): Figure {
  return {
    id,
    name,
    unit,
    rounds,
    median: median(rounds),
    min: Math.min(...rounds),
    max: Math.max(...rounds),
    extra,
  };
}

/**
 * Runs `worker` from `concurrency` loops until `durationMs` passed; returns operations per
 * second and the sorted latencies in milliseconds.
 */
export async function closedLoop(
  concurrency: number,
  durationMs: number,
  worker: (i: number) => Promise<void>,
): Promise<{ perSecond: number; latencies: number[] }> {
  const latencies: number[] = [];
  const start = performance.now();
  const end = start + durationMs;
  let n = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        await worker(n++);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  return { perSecond: latencies.length / seconds, latencies: latencies.sort((a, b) => a - b) };
}

/** Runs `items` through `worker` with at most `concurrency` in flight. */
export async function pool<T>(
  items: T[],
  concurrency: number,
  worker: (item: T, i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      for (let i = next++; i < items.length; i = next++) await worker(items[i] as T, i);
    }),
  );
}

export async function until(
  what: string,
  fn: () => Promise<boolean>,
  timeoutMs = 120_000,
  stepMs = 20,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** CPU seconds used so far, by part of the system under test (Linux; empty elsewhere). */
export interface CpuSnapshot {
  [part: string]: number;
}

const CLOCK_TICKS = 100;

function processTicks(pid: string): { comm: string; ticks: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm is in parentheses and may contain spaces: fields after it are counted from its end.
    const close = stat.lastIndexOf(")");
    const comm = stat.slice(stat.indexOf("(") + 1, close);
    const fields = stat.slice(close + 2).split(" ");
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after comm and state.
    return { comm, ticks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds of the given processes (by name) and of every PostgreSQL and NATS server process
 * on this machine (a backend that exits takes its time with it, so measure while pools stay
 * open). Reads /proc; returns an empty snapshot where there is none.
 */
export function cpuSnapshot(processes: Record<string, number | undefined>): CpuSnapshot {
  const out: CpuSnapshot = {};
  let entries: string[];
  try {
    entries = readdirSync("/proc").filter((e) => /^\d+$/.test(e));
  } catch {
    return out;
  }
  for (const [part, pid] of Object.entries(processes)) {
    const t = pid === undefined ? undefined : processTicks(String(pid));
    if (t) out[part] = t.ticks / CLOCK_TICKS;
  }
  let pg = 0;
  let nats = 0;
  for (const pid of entries) {
    const t = processTicks(pid);
    if (t?.comm === "postgres") pg += t.ticks;
    else if (t?.comm === "nats-server") nats += t.ticks;
  }
  out.postgres = pg / CLOCK_TICKS;
  out.nats = nats / CLOCK_TICKS;
  return out;
}

/**
 * Waits until the given processes, PostgreSQL and NATS together use under `share` of the
 * machine's cores over half a second (the tail of a round: sealing, autovacuum, collection),
 * for at most `maxMs` (at once where /proc is missing).
 */
export async function quiet(
  processes: Record<string, number | undefined>,
  share = 0.05,
  maxMs = 10_000,
): Promise<void> {
  const start = Date.now();
  const cores = availableParallelism();
  let before = cpuSnapshot(processes);
  if (Object.keys(before).length === 0) return;
  while (Date.now() - start < maxMs) {
    await new Promise((r) => setTimeout(r, 500));
    const after = cpuSnapshot(processes);
    let used = 0;
    for (const [part, t] of Object.entries(after)) used += t - (before[part] ?? t);
    before = after;
    if (used / 0.5 / cores < share) return;
  }
}

/** Milliseconds of CPU per operation of each part between two snapshots. */
export function cpuPerOp(
  before: CpuSnapshot,
  after: CpuSnapshot,
  ops: number,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [part, t] of Object.entries(after)) {
    const t0 = before[part];
    if (t0 === undefined || ops <= 0) continue;
    out[`cpu_ms_${part}`] = Math.round(((t - t0) * 1000 * 100) / ops) / 100;
  }
  return out;
}

/** Resident set size of a process in bytes (Linux /proc; undefined elsewhere or once gone). */
export function rssOf(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m?.[1] ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}
