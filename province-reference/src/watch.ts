import type { Sql } from "postgres";
import type { CertificateCache } from "./store/cache.js";

type Listener = (certificateNumber: string) => void;

/**
 * Fans out certificate changes committed in the province store (NOTIFY on one channel) to the
 * phones watching them. One LISTEN connection per province, however many watchers.
 */
export class CertificateChanges {
  private readonly listeners = new Map<string, Set<Listener>>();
  private unlisten: (() => Promise<void>) | undefined;

  constructor(
    private readonly sql: Sql,
    readonly channel: string,
    private readonly cache?: CertificateCache,
  ) {}

  async start(): Promise<void> {
    const sub = await this.sql.listen(
      this.channel,
      (number) => {
        this.cache?.changed(number);
        for (const l of this.listeners.get(number) ?? []) l(number);
      },
      // Called on every (re)connection: notifications may have been missed in between.
      () => this.cache?.listening(),
    );
    this.unlisten = () => sub.unlisten();
  }

  /** Calls `listener` on every committed change of one certificate until the returned function is called. */
  subscribe(certificateNumber: string, listener: Listener): () => void {
    let set = this.listeners.get(certificateNumber);
    if (!set) {
      set = new Set();
      this.listeners.set(certificateNumber, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(certificateNumber);
    };
  }

  get watchers(): number {
    let n = 0;
    for (const s of this.listeners.values()) n += s.size;
    return n;
  }

  async stop(): Promise<void> {
    this.cache?.stopped();
    await this.unlisten?.().catch(() => undefined);
  }
}
