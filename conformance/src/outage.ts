/**
 * The kit's hub playing unreachable for receipts: while an outage lasts, SubmitReceipts is
 * answered Unavailable. It ends two seconds after the first refused call (so the province has
 * met the refusal), or after `maxMs` if the province never called.
 */
export class HubOutage {
  private state?: { refused: number; endsAt: number; maxAt: number };

  start(maxMs = 10_000): void {
    this.state = { refused: 0, endsAt: Number.POSITIVE_INFINITY, maxAt: Date.now() + maxMs };
  }

  /** Whether this receipt call is refused (counted when it is). */
  refuses(): boolean {
    const s = this.state;
    const now = Date.now();
    if (!s || now >= s.endsAt || now >= s.maxAt) return false;
    s.refused++;
    if (s.endsAt === Number.POSITIVE_INFINITY) s.endsAt = now + 2000;
    return true;
  }

  /** Waits for the outage to end by itself; returns how many calls it refused. */
  async over(): Promise<number> {
    for (;;) {
      const s = this.state;
      if (!s) return 0;
      if (Date.now() >= Math.min(s.endsAt, s.maxAt)) {
        this.state = undefined;
        return s.refused;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
