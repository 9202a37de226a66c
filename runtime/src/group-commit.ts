/**
 * Group commit, as the hub and the provinces use it: work that arrives while a transaction is
 * in flight goes together into the next one, up to `maxBatch` items whose keys are disjoint (a
 * person, a record, an idempotency key: two items sharing a key never share a transaction, the
 * later waits for the next). A batch runs in the order `compare` gives (so that transactions
 * take their locks in one order and wait for each other instead of deadlocking). If a batch
 * cannot commit as a whole, each of its items runs again on its own, so batching never changes
 * what a caller sees. Items settle themselves: `runBatch` and `runAlone` resolve or reject them.
 */
export interface GroupCommitOptions<T> {
  /** Items in one transaction at most; 1 runs each on its own, at once. */
  maxBatch: number;
  keys: (item: T) => readonly string[];
  compare: (a: T, b: T) => number;
  /** One transaction for the batch; throws if it could not commit as a whole. */
  runBatch: (items: T[]) => Promise<void>;
  /** One item on its own (with whatever retries it needs); settles the item, never throws. */
  runAlone: (item: T) => Promise<void>;
}

export class GroupCommit<T> {
  private queue: T[] = [];
  private draining = false;

  constructor(private readonly opts: GroupCommitOptions<T>) {}

  /** Queues an item for the next transaction (at once, on its own, when maxBatch is 1). */
  submit(item: T): void {
    if (this.opts.maxBatch <= 1) {
      void this.opts.runAlone(item);
      return;
    }
    this.queue.push(item);
    if (!this.draining) {
      this.draining = true;
      setImmediate(() => void this.drain());
    }
  }

  /** Runs these items now, beside the queue, in as few transactions as their keys allow. */
  async runNow(items: readonly T[]): Promise<void> {
    let rest = [...items];
    while (rest.length > 0) {
      const { batch, left } = this.take(rest, Number.POSITIVE_INFINITY);
      rest = left;
      await this.run(batch);
    }
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const { batch, left } = this.take(this.queue, this.opts.maxBatch);
        this.queue = left;
        await this.run(batch);
      }
    } finally {
      this.draining = false;
    }
  }

  /** Up to `max` items with disjoint keys, in arrival order; the rest keep their order. */
  private take(items: readonly T[], max: number): { batch: T[]; left: T[] } {
    const taken = new Set<string>();
    const batch: T[] = [];
    const left: T[] = [];
    for (const item of items) {
      const keys = this.opts.keys(item);
      if (batch.length < max && keys.every((k) => !taken.has(k))) {
        for (const k of keys) taken.add(k);
        batch.push(item);
      } else left.push(item);
    }
    return { batch, left };
  }

  private async run(unordered: T[]): Promise<void> {
    const batch = [...unordered].sort(this.opts.compare);
    if (batch.length === 1) {
      await this.opts.runAlone(batch[0] as T);
      return;
    }
    try {
      await this.opts.runBatch(batch);
    } catch {
      await Promise.all(batch.map((item) => this.opts.runAlone(item)));
    }
  }
}
