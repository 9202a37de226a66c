import {
  type JetStreamClient,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import type { Sql } from "postgres";

/**
 * The hub's answer to "was my database restored from a backup behind what I already did?"
 * (#28 story 2). The sealer pins the head of the event chain — its sequence and hash — in
 * JetStream, a store the database's backup does not hold: provinces have applied the
 * directives and kept the certificates of everything up to it. At start the hub looks for the
 * pinned link in its own chain: missing (the database is behind) or with another hash (it is
 * another history), the hub is fenced — it answers nothing, publishes nothing, runs no
 * deadline — until the operator restores a database that holds the pin, or accepts the loss
 * by naming the pinned sequence (EVC_ACCEPT_RESTORED_CHAIN; see docs/operations.md). The
 * fence itself is in fence.ts.
 */

export interface ChainHead {
  seq: number;
  /** The link's hash, hex. */
  hash: string;
}

/** The chain's last link, if any. */
export async function chainHead(sql: Sql): Promise<ChainHead | undefined> {
  // Ordered by the bigint column, not by the text alias (where "9" sorts after "43").
  const [row] = await sql<{ seq: string; hash: string }[]>`
    SELECT c.seq::text AS seq, encode(c.hash, 'hex') AS hash FROM event_chain c
    ORDER BY c.seq DESC LIMIT 1`;
  return row ? { seq: Number(row.seq), hash: row.hash } : undefined;
}

/**
 * Why this database cannot be the one that reached the pin, or undefined when it holds the
 * pinned link (or nothing is pinned yet).
 */
export async function behindPin(sql: Sql, pin: ChainHead | undefined): Promise<string | undefined> {
  if (!pin) return undefined;
  const [row] = await sql<{ hash: string }[]>`
    SELECT encode(hash, 'hex') AS hash FROM event_chain WHERE seq = ${pin.seq}`;
  const head = await chainHead(sql);
  if (!row) {
    return `the event chain ends at ${head?.seq ?? 0}, but link ${pin.seq} was sealed and pinned before: the database is behind what the hub already did (restored from an older backup?)`;
  }
  if (row.hash !== pin.hash) {
    return `link ${pin.seq} of the event chain is not the one pinned: the database holds another history than the one the hub published`;
  }
  return undefined;
}

/**
 * The stream holding the pin of the hub on directive stream `stream`. It belongs with the
 * hub's database: whoever drops that database for good (a test, the kit) deletes this stream
 * too, or the next hub on a fresh database is fenced.
 */
export function chainPinStream(stream: string): string {
  return `${stream}_CHAIN_PIN`;
}

/** The pin in JetStream: a stream of its own keeping the last message of one subject. */
export class ChainPin {
  constructor(
    private readonly jsm: JetStreamManager,
    private readonly js: JetStreamClient,
    /** The directive stream's name: the pin belongs to that bus. */
    private readonly stream: string,
    private readonly replicas: number,
  ) {}

  get streamName(): string {
    return chainPinStream(this.stream);
  }

  get subject(): string {
    return `evc-chain-pin.${this.stream}`;
  }

  async provision(): Promise<void> {
    const config = {
      name: this.streamName,
      subjects: [this.subject],
      num_replicas: this.replicas,
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      max_msgs_per_subject: 1,
    };
    const existing = await this.jsm.streams.info(this.streamName).catch(() => undefined);
    if (existing) await this.jsm.streams.update(this.streamName, config);
    else await this.jsm.streams.add(config);
  }

  async read(): Promise<ChainHead | undefined> {
    const m = await this.jsm.streams.getMessage(this.streamName, { last_by_subj: this.subject });
    if (!m) return undefined;
    const v = m.json<Partial<ChainHead>>();
    if (typeof v.seq !== "number" || typeof v.hash !== "string")
      throw new Error(`the chain pin in ${this.streamName} does not parse`);
    return { seq: v.seq, hash: v.hash };
  }

  async write(head: ChainHead): Promise<void> {
    await this.js.publish(this.subject, JSON.stringify(head));
  }

  /** Pins `head`, or nothing when the chain is empty (the operator accepted an empty database). */
  async replace(head: ChainHead | undefined): Promise<void> {
    if (head) await this.write(head);
    else await this.jsm.streams.purge(this.streamName);
  }
}
