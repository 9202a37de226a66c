import type { CertificateRow } from "./rows.js";

/**
 * Certificate status rows for the phone read path, kept honest by the store's change
 * notifications: every writer of a certificate sends NOTIFY on commit, which drops the entry
 * here. A write in this process also bypasses the cache from its first statement until its
 * notification arrives, so a read after a local commit never sees the old status; a read that
 * raced with any change is not cached; a reconnect of the notification stream empties it.
 */
export class CertificateCache {
  private readonly rows = new Map<string, CertificateRow>();
  /** Certificates with a write in flight here, and since when (ms). */
  private readonly writing = new Map<string, number>();
  /** Bumped on every change seen; a read that spans a bump is not cached. */
  private epoch = 0;
  /** Only while change notifications are being received. */
  private live = false;

  constructor(
    private readonly maxEntries = 100_000,
    /** A write whose notification never came (rolled back) stops bypassing after this. */
    private readonly writeWindowMs = 30_000,
  ) {}

  get size(): number {
    return this.rows.size;
  }

  /** A statement of a not yet committed transaction changes this certificate. */
  willChange(certificateNumber: string): void {
    this.epoch += 1;
    this.rows.delete(certificateNumber);
    this.writing.set(certificateNumber, Date.now());
  }

  /** A committed change (its NOTIFY). */
  changed(certificateNumber: string): void {
    this.epoch += 1;
    this.rows.delete(certificateNumber);
    this.writing.delete(certificateNumber);
  }

  /** The notification stream (re)connected: changes may have been missed. */
  listening(): void {
    this.epoch += 1;
    this.rows.clear();
    this.live = true;
  }

  /** Notifications stopped: read through from now on. */
  stopped(): void {
    this.live = false;
    this.epoch += 1;
    this.rows.clear();
  }

  async get(
    certificateNumber: string,
    load: () => Promise<CertificateRow | undefined>,
  ): Promise<CertificateRow | undefined> {
    if (!this.live) return load();
    const hit = this.rows.get(certificateNumber);
    if (hit) return hit;
    const since = this.writing.get(certificateNumber);
    const inFlight = since !== undefined && Date.now() - since < this.writeWindowMs;
    if (since !== undefined && !inFlight) this.writing.delete(certificateNumber);
    const epoch = this.epoch;
    const row = await load();
    if (row && !inFlight && epoch === this.epoch) {
      this.rows.set(certificateNumber, row);
      if (this.rows.size > this.maxEntries) {
        const oldest = this.rows.keys().next();
        if (!oldest.done) this.rows.delete(oldest.value);
      }
    }
    return row;
  }
}
