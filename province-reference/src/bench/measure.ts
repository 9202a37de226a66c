/** Small statistics helpers for the benchmark. */

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
