/**
 * A token bucket per caller: `perMinute` reads a minute on average, bursts up to `perMinute`.
 * Kept in memory (per process): a province running several replicas divides the rate among them.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perMinute: number,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Takes one read for `caller`: 0 if allowed, else how many ms until the next is. */
  take(caller: string): number {
    if (this.perMinute <= 0) return 0;
    const now = this.clock();
    const perMs = this.perMinute / 60_000;
    const b = this.buckets.get(caller) ?? { tokens: this.perMinute, at: now };
    b.tokens = Math.min(this.perMinute, b.tokens + (now - b.at) * perMs);
    b.at = now;
    if (b.tokens < 1) {
      this.buckets.set(caller, b);
      return Math.ceil((1 - b.tokens) / perMs);
    }
    b.tokens -= 1;
    // Full buckets carry no information: drop them so the map stays bounded by active callers.
    if (this.buckets.size > 100_000) this.sweep(now, perMs);
    this.buckets.set(caller, b);
    return 0;
  }

  private sweep(now: number, perMs: number): void {
    for (const [k, v] of this.buckets)
      if (v.tokens + (now - v.at) * perMs >= this.perMinute) this.buckets.delete(k);
  }
}
