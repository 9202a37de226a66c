import type { Logger } from "pino";

/**
 * Runs `flush` again and again: at once when woken during a flush (work arrived meanwhile),
 * else every `pollMs`; after a failure, with backoff (100 ms doubling, at most 10 s). What the
 * receipt submitter and the hub-intent driver both need.
 */
export class FlushLoop {
  private running = false;
  private woken = false;
  private wakeUp: (() => void) | undefined;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly flush: () => Promise<unknown>,
    private readonly pollMs: number,
    private readonly log: Logger,
    /** What a failure is logged as, e.g. "submitting receipts failed; retrying". */
    private readonly failed: string,
  ) {}

  start(): void {
    this.running = true;
    this.loop = this.run();
  }

  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /** Stops the loop after the flush in progress. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake();
    await this.loop;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (this.running) {
      this.woken = false;
      try {
        await this.flush();
        failures = 0;
      } catch (err) {
        failures += 1;
        this.log.warn({ err: String(err), failures }, this.failed);
      }
      if (!this.running) break;
      if (this.woken && failures === 0) continue;
      const delay = failures > 0 ? Math.min(100 * 2 ** failures, 10_000) : this.pollMs;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        this.wakeUp = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wakeUp = undefined;
    }
  }
}
