import { once } from "node:events";
import { finished } from "node:stream/promises";
import { Worker } from "node:worker_threads";
import { canClone, connectionOf, ownConnection, workerScript } from "@evc-interop/runtime";
import type postgres from "postgres";
import type { Sql, TransactionSql } from "postgres";
import {
  ALL_TABLES,
  type CopyChunk,
  replayRange,
  type StateForm,
  type StreamRange,
  TABLES,
  type Table,
  useSnapshot,
} from "./replay.js";

export interface RebuildResult {
  events: number;
  persons: number;
  /** Rows that differ between the live snapshot and the replay, per table (compare mode). */
  differences: Record<"records" | "certificates" | "migrations" | "persons", number>;
  /** True when the replay equals the live projection. */
  equal: boolean;
  seconds: number;
  /** Seconds spent replaying into the scratch tables, comparing, and replacing the live rows. */
  phases: { replay: number; compare: number; replace: number };
}

/** Writes COPY text (UTF-8) into a table. */
async function copyText(
  tx: TransactionSql,
  schema: string,
  table: string,
  text: Uint8Array,
): Promise<void> {
  if (text.length === 0) return;
  const stream = await tx`COPY ${tx(schema)}.${tx(table)} FROM STDIN`.writable();
  try {
    for (let at = 0; at < text.length; at += COPY_CHUNK) {
      if (!stream.write(text.subarray(at, at + COPY_CHUNK))) await once(stream, "drain");
    }
    stream.end();
    await finished(stream);
  } catch (error) {
    // Abort the COPY (CopyFail), so the transaction can roll back and the cause is reported.
    stream.destroy(error as Error);
    throw error;
  }
}

const COPY_CHUNK = 1 << 20;

/**
 * Writes the replay's COPY text into the scratch tables on the rebuild's own connection, one
 * chunk after another, while the replay goes on; `push` waits while two chunks are queued.
 */
class CopyWriter {
  private tail: Promise<void> = Promise.resolve();
  private queued = 0;
  private failure: unknown;
  private waiters: (() => void)[] = [];

  constructor(
    private readonly tx: TransactionSql,
    private readonly schema: string,
  ) {}

  async push(text: CopyChunk): Promise<void> {
    this.check();
    this.queued += 1;
    this.tail = this.tail.then(async () => {
      try {
        if (this.failure === undefined) {
          for (const t of ALL_TABLES) await copyText(this.tx, this.schema, t, text[t]);
        }
      } catch (error) {
        this.failure ??= error;
      } finally {
        this.queued -= 1;
        for (const wake of this.waiters.splice(0)) wake();
      }
    });
    while (this.queued > 2 && this.failure === undefined) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    this.check();
  }

  async drain(): Promise<void> {
    await this.tail;
    this.check();
  }

  private check(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}

export interface RebuildOptions {
  /**
   * Worker threads replaying ranges of persons in parallel, each on its own connection
   * (default: two for logs of 50,000 events or more; 0 replays in this thread).
   */
  workers?: number;
}

/**
 * Replays the whole event log from empty into a scratch schema and compares it with the live
 * snapshot (I5); with `replace`, the live rows that differ are then replaced by the replay's.
 * Runs in one REPEATABLE READ transaction, so it sees one consistent log.
 *
 * Person states are compared by the SHA-256 of their jsonb text (computed here, see
 * jsonb-text.ts; PostgreSQL computes it of the live states), so the million states of a large
 * log are neither parsed into jsonb nor sent in full only to be compared. `replace` writes the
 * replayed states in full, to replace the live ones with; when every table of the live snapshot
 * is empty (a wiped or lost snapshot), it writes the replay straight into them, skipping the
 * scratch tables and the comparison.
 */
export async function rebuildSnapshot(
  sql: Sql,
  mode: "compare" | "replace" = "compare",
  opts: RebuildOptions = {},
): Promise<RebuildResult> {
  const started = process.hrtime.bigint();
  return sql.begin("ISOLATION LEVEL REPEATABLE READ", async (tx) => {
    const [cur] = await tx<{ schema: string }[]>`SELECT current_schema() AS schema`;
    const live = cur?.schema ?? "public";
    const states: StateForm = mode === "replace" ? "text" : "digest";
    // Refilling a wholly empty snapshot: every replayed row is new, so the replay is written
    // straight into the live tables instead of into scratch tables and then copied over.
    const refill = mode === "replace" && (await snapshotEmpty(tx, live));
    const scratch = `${live}_rebuild`;
    if (!refill) {
      await tx`DROP SCHEMA IF EXISTS ${tx(scratch)} CASCADE`;
      await tx`CREATE SCHEMA ${tx(scratch)}`;
      for (const t of TABLES) {
        // Unlogged: a scratch copy needs no WAL.
        await tx`CREATE UNLOGGED TABLE ${tx(scratch)}.${tx(t)} (LIKE ${tx(live)}.${tx(t)} INCLUDING DEFAULTS)`;
      }
      await tx`CREATE UNLOGGED TABLE ${tx(scratch)}.persons
        (person_key text, version bigint, state ${states === "text" ? tx`text` : tx`bytea`})`;
    }

    // Every range is replayed on its own connection in this transaction's snapshot, while
    // this connection writes the scratch tables (refilling: the live ones).
    const [exported] = await tx<{ id: string }[]>`SELECT pg_export_snapshot() AS id`;
    const snapshot = exported?.id ?? "";
    const [top] = await tx<{ n: number }[]>`
      SELECT coalesce(max(position), 0)::int8 AS n FROM ${tx(live)}.events`;
    const approxEvents = top?.n ?? 0;
    // Workers cannot be handed a password given as a function: such a pool replays here.
    const workers = canClone(sql) ? (opts.workers ?? (approxEvents >= 50_000 ? 2 : 0)) : 0;
    const ranges = await splitStreams(tx, live, Math.max(1, workers), approxEvents);
    const job = { schema: live, snapshot, states };
    /** Replays every range, writing the COPY text into the tables of `into`. */
    const replay = async (into: string): Promise<Counts[]> => {
      const writer = new CopyWriter(tx, into);
      const counts =
        workers > 0
          ? await replayInWorkers(sql, job, ranges, writer)
          : [await replayHere(sql, job, writer)];
      await writer.drain();
      return counts;
    };

    if (refill) {
      const counts = await replay(live);
      const replayed = process.hrtime.bigint();
      // Every row written differs from the empty snapshot it refilled.
      const differences = { records: 0, certificates: 0, migrations: 0, persons: 0 };
      for (const t of ALL_TABLES) {
        const [r] = await tx<{ n: number }[]>`SELECT count(*)::int AS n FROM ${tx(live)}.${tx(t)}`;
        differences[t] = r?.n ?? 0;
      }
      await restoreDocumentLinks(tx, live);
      return result(counts, differences, started, replayed, replayed);
    }

    // Equal row multisets have equal counts and sums of row hashes: one scan of each side.
    // The live side's are worked out while the log is replayed, on a connection of their own.
    const liveSums = settle(sumsInSnapshot(sql, live, snapshot, states));
    let counts: Counts[];
    let replayed: bigint;
    let replaySums: Sums;
    try {
      counts = await replay(scratch);
      replayed = process.hrtime.bigint();
      replaySums = await sums(tx, scratch, false, states);
    } finally {
      // Whatever happened, the live side's scan has ended when this returns.
      await liveSums;
    }
    const liveSettled = await liveSums;
    if ("error" in liveSettled) throw liveSettled.error;

    // Only tables that differ are compared row by row, to count the differences.
    const rowsOf = (schema: string, t: Table) =>
      rowsCompared(tx, schema, t, schema === live, states);
    const differences = { records: 0, certificates: 0, migrations: 0, persons: 0 };
    const sizes = { live: { ...differences }, replay: { ...differences } };
    for (const t of ALL_TABLES) {
      const a = liveSettled.value[t];
      const b = replaySums[t];
      sizes.live[t] = a.n;
      sizes.replay[t] = b.n;
      if (a.n === b.n && a.h === b.h) continue;
      if (sizes.live[t] === 0 || sizes.replay[t] === 0) {
        // One side is empty (a wiped or new snapshot): every row of the other differs.
        differences[t] = sizes.live[t] + sizes.replay[t];
        continue;
      }
      const [d] = await tx<{ n: number }[]>`
        SELECT count(*)::int AS n FROM (
          (${rowsOf(live, t)} EXCEPT ALL ${rowsOf(scratch, t)})
          UNION ALL
          (${rowsOf(scratch, t)} EXCEPT ALL ${rowsOf(live, t)})
        ) d`;
      differences[t] = d?.n ?? 0;
    }
    const compared = process.hrtime.bigint();

    if (mode === "replace") {
      for (const t of ALL_TABLES) {
        if (differences[t] === 0) continue;
        const inCommon = differences[t] < sizes.live[t] + sizes.replay[t];
        await replaceRows(tx, live, scratch, t, rowsOf, inCommon);
      }
      await restoreDocumentLinks(tx, live);
    }
    await tx`DROP SCHEMA ${tx(scratch)} CASCADE`;
    return result(counts, differences, started, replayed, compared);
  });
}

/**
 * Puts back the identity documents the log made known and the table lost: each person's first
 * document (its stream key) and every DocumentLinked. Without them a linked resident ID would
 * be taken for a new person. Rows it holds are left alone (a document belongs to one person).
 */
async function restoreDocumentLinks(tx: TransactionSql, schema: string): Promise<void> {
  await tx`INSERT INTO ${tx(schema)}.document_links (document_key, person_key)
    SELECT person_key, person_key FROM ${tx(schema)}.persons
    UNION ALL
    SELECT data->>'documentKey', stream_id FROM ${tx(schema)}.events WHERE type = 'DocumentLinked'
    ON CONFLICT (document_key) DO NOTHING`;
}

/** Whether the live snapshot holds no row in any of its tables. */
async function snapshotEmpty(tx: TransactionSql, schema: string): Promise<boolean> {
  const [r] = await tx<{ empty: boolean }[]>`
    SELECT NOT EXISTS (SELECT FROM ${tx(schema)}.records)
      AND NOT EXISTS (SELECT FROM ${tx(schema)}.certificates)
      AND NOT EXISTS (SELECT FROM ${tx(schema)}.migrations)
      AND NOT EXISTS (SELECT FROM ${tx(schema)}.persons) AS empty`;
  return r?.empty === true;
}

/** A rebuild's result: the phases end at `replayed`, `compared` and now. */
function result(
  counts: Counts[],
  differences: RebuildResult["differences"],
  started: bigint,
  replayed: bigint,
  compared: bigint,
): RebuildResult {
  const done = process.hrtime.bigint();
  const seconds = (a: bigint, b: bigint) => Number(b - a) / 1e9;
  return {
    events: counts.reduce((n, c) => n + c.events, 0),
    persons: counts.reduce((n, c) => n + c.persons, 0),
    differences,
    equal: Object.values(differences).every((n) => n === 0),
    seconds: seconds(started, done),
    phases: {
      replay: seconds(started, replayed),
      compare: seconds(replayed, compared),
      replace: seconds(compared, done),
    },
  };
}

const KEYS: Record<Table, string> = {
  records: "record_id",
  certificates: "certificate_number",
  migrations: "migration_id",
  persons: "person_key",
};

/**
 * Makes a live table equal to the replay: the live rows the replay lacks are deleted, then the
 * replay's rows the live table lacks are inserted. The transaction holds the rows it changes
 * until it commits; a table with no row in common is emptied and refilled.
 */
async function replaceRows(
  tx: TransactionSql,
  live: string,
  scratch: string,
  t: Table,
  rowsOf: (schema: string, t: Table) => postgres.PendingQuery<postgres.Row[]>,
  inCommon: boolean,
): Promise<void> {
  const key = KEYS[t];
  if (inCommon) {
    await tx`
      DELETE FROM ${tx(live)}.${tx(t)} WHERE ${tx(key)} IN (
        SELECT ${tx(key)} FROM (${rowsOf(live, t)} EXCEPT ALL ${rowsOf(scratch, t)}) d)`;
  } else {
    await tx`DELETE FROM ${tx(live)}.${tx(t)}`;
  }
  const added = inCommon
    ? tx`${rowsOf(scratch, t)} EXCEPT ALL ${rowsOf(live, t)}`
    : rowsOf(scratch, t);
  if (t === "persons") {
    await tx`
      INSERT INTO ${tx(live)}.persons (person_key, version, state)
      SELECT person_key, version, state::jsonb FROM (${added}) d`;
  } else {
    await tx`INSERT INTO ${tx(live)}.${tx(t)} SELECT * FROM (${added}) d`;
  }
}

/**
 * Splits the streams into `parts` ranges of about as many events each, at stream ids sampled
 * from the log (a few thousand rows, whatever its size).
 */
async function splitStreams(
  tx: TransactionSql,
  schema: string,
  parts: number,
  approxEvents: number,
): Promise<StreamRange[]> {
  if (parts < 2 || approxEvents === 0) return [{}];
  const percent = Math.min(100, (100 * 4000) / approxEvents);
  const sample = await tx<{ s: string }[]>`
    SELECT stream_id AS s FROM ${tx(schema)}.events TABLESAMPLE SYSTEM (${percent})
    ORDER BY stream_id`;
  const bounds: string[] = [];
  for (let i = 1; i < parts; i++) {
    const b = sample[Math.floor((i * sample.length) / parts)]?.s;
    if (b !== undefined && b !== bounds.at(-1)) bounds.push(b);
  }
  if (bounds.length === 0) return [{}];
  return [...bounds, undefined].map((upto, i) => ({ after: bounds[i - 1], upto }));
}

type Counts = { events: number; persons: number };

/**
 * A table's rows as compared: person states as their jsonb text, or its SHA-256 (the replay
 * writes one or the other, see StateForm); the other tables row for row.
 */
function rowsCompared(
  q: Sql | TransactionSql,
  schema: string,
  t: Table,
  live: boolean,
  states: StateForm,
): postgres.PendingQuery<postgres.Row[]> {
  if (t !== "persons") return q`SELECT * FROM ${q(schema)}.${q(t)}`;
  if (!live) return q`SELECT person_key, version, state FROM ${q(schema)}.persons`;
  return states === "text"
    ? q`SELECT person_key, version, state::text AS state FROM ${q(schema)}.persons`
    : q`SELECT person_key, version, sha256(convert_to(state::text, 'UTF8')) AS state
        FROM ${q(schema)}.persons`;
}

type Sums = Record<Table, { n: number; h: string | null }>;

/** Row count and sum of row hashes of each table, one scan each. */
async function sums(
  q: Sql | TransactionSql,
  schema: string,
  live: boolean,
  states: StateForm,
): Promise<Sums> {
  const out = {} as Sums;
  for (const t of ALL_TABLES) {
    const [r] = await q<{ n: number; h: string | null }[]>`
      SELECT count(*)::int AS n, sum(hash_record_extended(t, 0)::numeric)::text AS h
      FROM (${rowsCompared(q, schema, t, live, states)}) t`;
    out[t] = { n: r?.n ?? 0, h: r?.h ?? null };
  }
  return out;
}

/** The live tables' sums, on a connection of their own, in the rebuild's exported snapshot. */
async function sumsInSnapshot(
  sql: Sql,
  schema: string,
  snapshot: string,
  states: StateForm,
): Promise<Sums> {
  const own = ownConnection(sql);
  try {
    return await own.begin("ISOLATION LEVEL REPEATABLE READ READ ONLY", async (rx) => {
      await useSnapshot(rx, snapshot);
      return sums(rx, schema, true, states);
    });
  } finally {
    await own.end({ timeout: 5 });
  }
}

/** A promise that never rejects: its failure is kept to be thrown where it is awaited. */
function settle<T>(p: Promise<T>): Promise<{ value: T } | { error: unknown }> {
  return p.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
}

/** What every range's replay reads and how it writes states. */
interface ReplayJob {
  schema: string;
  snapshot: string;
  states: StateForm;
}

/** One range replayed in this thread, on a connection of its own. */
async function replayHere(sql: Sql, job: ReplayJob, writer: CopyWriter): Promise<Counts> {
  const own = ownConnection(sql);
  try {
    return await replayRange(own, job.schema, job.snapshot, {}, job.states, (text) =>
      writer.push(text),
    );
  } finally {
    await own.end({ timeout: 5 });
  }
}

/** Each range replayed by a worker thread; their COPY text is written here as it comes. */
async function replayInWorkers(
  sql: Sql,
  job: ReplayJob,
  ranges: StreamRange[],
  writer: CopyWriter,
): Promise<Counts[]> {
  const connection = connectionOf(sql);
  const workers = ranges.map(
    (range) =>
      new Worker(workerScript(import.meta.url, "./replay-worker.js"), {
        workerData: { connection, ...job, range },
      }),
  );
  const exits = workers.map((w) => new Promise<void>((r) => w.once("exit", () => r())));
  let ok = false;
  try {
    const counts = await Promise.all(
      workers.map(
        (w) =>
          new Promise<Counts>((resolve, reject) => {
            w.on("message", (m: { text?: CopyChunk; done?: Counts; error?: string }) => {
              if (m.text) {
                writer.push(m.text).then(() => w.postMessage({ taken: true }), reject);
              } else if (m.done) {
                resolve(m.done);
              } else {
                reject(new Error(`rebuild worker: ${m.error ?? "no result"}`));
              }
            });
            w.once("error", reject);
            w.once("exit", (code) => reject(new Error(`rebuild worker exited early (${code})`)));
          }),
      ),
    );
    ok = true;
    return counts;
  } finally {
    // Done workers close their connections and exit; after a failure they are stopped.
    if (!ok) await Promise.all(workers.map((w) => w.terminate()));
    await Promise.all(exits);
  }
}
