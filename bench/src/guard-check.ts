import type { Figure } from "./measure.js";

/**
 * What the CI guard watches: each headline divided by an in-run baseline of its own kind, so
 * that a machine twice as fast or as slow moves both alike and the ratio stays: pipelines
 * (migrations, doses) over the naive pipeline, status reads over the trivial Connect call they
 * are a lookup more than, CPU-bound bulk work (verification, rebuild, reconciliation) over
 * PostgreSQL hashing rows (never over commits, which are the disk's: a faster disk would have
 * failed them). A figure in seconds (reconciliation) is turned into a rate first. The trivial
 * call is bound by latency, not throughput: on one machine it ran at 1,100/s and at 2,700/s on
 * two days while the pipelines and the bulk work moved by a fifth, so it bounds only what is
 * like it (the guard of a15d1c4 failed that code itself on the second day).
 */
export const GUARDED: readonly Guarded[] = [
  { id: "migrations", over: "naive_pipeline", part: "migrations", overPart: "migrations" },
  { id: "doses", over: "naive_pipeline", part: "doses", overPart: "migrations" },
  { id: "status_reads", over: "connect_trivial", part: "reads", overPart: "reads" },
  { id: "verify", over: "pg_cpu", part: "log", overPart: "baselines" },
  { id: "rebuild_mixed", over: "pg_cpu", part: "log", overPart: "baselines" },
  { id: "reconcile_sync", over: "pg_cpu", part: "reconcile", overPart: "baselines" },
];

/**
 * A headline, the baseline it is divided by, and the bench parts (EVC_BENCH_ONLY) measuring
 * each as a full run does (the trivial call with the system running, in the reads part).
 */
export interface Guarded {
  id: string;
  over: string;
  part: string;
  overPart: string;
}

/** A ratio drops too far when it falls below this share of its reference (a third lost). */
export const LEAST_SHARE = 2 / 3;

/** The guarded ratios of a bench run's figures (those it measured). */
export function guardedRatios(figures: readonly Figure[]): Record<string, number> {
  const by = new Map(figures.map((f) => [f.id, f]));
  const rate = (f: Figure) => (f.unit === "s" ? 1 / f.median : f.median);
  const out: Record<string, number> = {};
  for (const g of GUARDED) {
    const f = by.get(g.id);
    const b = by.get(g.over);
    if (f && b && f.median > 0 && b.median > 0) out[ratioName(g)] = rate(f) / rate(b);
  }
  return out;
}

/** How a guarded ratio is named in the reference and in every message. */
export function ratioName(g: { id: string; over: string }): string {
  return `${g.id}/${g.over}`;
}

export interface GuardVerdict {
  /** One line per ratio compared: its value, the reference, the share of it. */
  lines: string[];
  /** The ratios that fell below LEAST_SHARE of their reference, each with its figures. */
  dropped: string[];
  /** Ratios of the reference this run did not measure (a part left out or failed). */
  missing: string[];
}

/** The bench parts (with the baselines) that measure the ratios named, both their sides. */
export function partsOf(names: readonly string[]): string[] {
  const parts = GUARDED.filter((g) => names.includes(ratioName(g))).flatMap((g) => [
    g.part,
    g.overPart,
  ]);
  return [...new Set(["baselines", ...parts])];
}

/**
 * Each ratio at the median of several runs: the reference. One run is a sample of a noisy
 * machine (a baseline measured at a busy moment moved a ratio by 1.7x); its median is not.
 */
export function medianRatios(
  runs: readonly Readonly<Record<string, number>>[],
): Record<string, number> {
  const names = [...new Set(runs.flatMap((r) => Object.keys(r)))];
  const out: Record<string, number> = {};
  for (const name of names) {
    const xs = runs.flatMap((r) => (r[name] === undefined ? [] : [r[name]])).sort((a, b) => a - b);
    const mid = Math.floor(xs.length / 2);
    const m = xs.length % 2 === 1 ? xs[mid] : ((xs[mid - 1] ?? 0) + (xs[mid] ?? 0)) / 2;
    if (m !== undefined) out[name] = m;
  }
  return out;
}

/** Each ratio at the best of two runs (a confirming run measures only what dropped). */
export function best(
  first: Readonly<Record<string, number>>,
  second: Readonly<Record<string, number>>,
): Record<string, number> {
  const out = { ...first };
  for (const [name, value] of Object.entries(second)) out[name] = Math.max(out[name] ?? 0, value);
  return out;
}

/** Compares a run's ratios with the committed reference. */
export function judge(
  reference: Readonly<Record<string, number>>,
  measured: Readonly<Record<string, number>>,
): GuardVerdict {
  const verdict: GuardVerdict = { lines: [], dropped: [], missing: [] };
  for (const [name, ref] of Object.entries(reference)) {
    const value = measured[name];
    if (value === undefined) {
      verdict.missing.push(name);
      continue;
    }
    const share = value / ref;
    const line = `${name}: ${format(value)} (reference ${format(ref)}, ${(share * 100).toFixed(0)}%)`;
    verdict.lines.push(line);
    if (share < LEAST_SHARE) verdict.dropped.push(line);
  }
  return verdict;
}

function format(x: number): string {
  return x >= 100 ? x.toFixed(0) : x.toPrecision(3);
}
