import { once } from "node:events";
import { finished } from "node:stream/promises";
import type { Sql, TransactionSql } from "postgres";
import { evolve } from "../domain/person.js";
import { type HubEvent, initialState, type PersonState } from "../domain/types.js";
import { type ProjectionRows, projectionRows } from "./projection.js";

export interface RebuildResult {
  events: number;
  persons: number;
  /** Rows that differ between the live snapshot and the replay, per table (compare mode). */
  differences: Record<"records" | "certificates" | "migrations" | "persons", number>;
  /** True when the replay equals the live projection. */
  equal: boolean;
  seconds: number;
}

const TABLES = ["records", "certificates", "migrations"] as const;
const BATCH = 20_000;

interface Row {
  stream_id: string;
  stream_version: number;
  position: number;
  type: string;
  data: unknown;
}

/** One value in COPY text format. */
function copyValue(v: unknown): string {
  if (v === null || v === undefined) return "\\N";
  if (v instanceof Date) return v.toISOString();
  const text = typeof v === "object" ? JSON.stringify(v) : String(v);
  return /[\\\t\n\r]/.test(text) ? text.replace(/[\\\t\n\r]/g, (c) => COPY_ESCAPES[c] ?? c) : text;
}

const COPY_ESCAPES: Record<string, string> = {
  "\\": "\\\\",
  "\t": "\\t",
  "\n": "\\n",
  "\r": "\\r",
};

/** Streams rows (objects with the same keys, in column order) into a table with COPY. */
async function copyRows(
  tx: TransactionSql,
  schema: string,
  table: string,
  rows: Record<string, unknown>[],
): Promise<void> {
  const first = rows[0];
  if (!first) return;
  const columns = Object.keys(first);
  const stream = await tx`COPY ${tx(schema)}.${tx(table)} (${tx(columns)}) FROM STDIN`.writable();
  let chunk = "";
  for (const row of rows) {
    chunk += `${columns.map((c) => copyValue(row[c])).join("\t")}\n`;
    if (chunk.length >= 1 << 20) {
      if (!stream.write(chunk)) await once(stream, "drain");
      chunk = "";
    }
  }
  stream.end(chunk);
  await finished(stream);
}

/**
 * Replays the whole event log from empty into a scratch schema and compares it with the live
 * snapshot (I5); with `replace`, the live projection is then replaced by the replay. Runs in
 * one REPEATABLE READ transaction, so it sees one consistent log.
 */
export async function rebuildSnapshot(
  sql: Sql,
  mode: "compare" | "replace" = "compare",
): Promise<RebuildResult> {
  const started = process.hrtime.bigint();
  return sql.begin("ISOLATION LEVEL REPEATABLE READ", async (tx) => {
    const [cur] = await tx<{ schema: string }[]>`SELECT current_schema() AS schema`;
    const live = cur?.schema ?? "public";
    const scratch = `${live}_rebuild`;
    await tx`DROP SCHEMA IF EXISTS ${tx(scratch)} CASCADE`;
    await tx`CREATE SCHEMA ${tx(scratch)}`;
    for (const t of [...TABLES, "persons"]) {
      // Unlogged: a scratch copy needs no WAL.
      await tx`CREATE UNLOGGED TABLE ${tx(scratch)}.${tx(t)} (LIKE ${tx(live)}.${tx(t)} INCLUDING DEFAULTS)`;
    }
    let events = 0;
    let persons = 0;
    let current: { key: string; state: PersonState } | undefined;
    let pending: ProjectionRows = { records: [], certificates: [], migrations: [] };
    let pendingPersons: { person_key: string; version: number; state: PersonState }[] = [];
    const flushPerson = () => {
      if (!current) return;
      const rows = projectionRows(current.key, current.state);
      pending.records.push(...rows.records);
      pending.certificates.push(...rows.certificates);
      pending.migrations.push(...rows.migrations);
      pendingPersons.push({
        person_key: current.key,
        version: current.state.version,
        state: current.state,
      });
      persons += 1;
    };
    const flushRows = async () => {
      for (const table of TABLES) await copyRows(tx, scratch, table, pending[table]);
      await copyRows(
        tx,
        scratch,
        "persons",
        pendingPersons as unknown as Record<string, unknown>[],
      );
      pending = { records: [], certificates: [], migrations: [] };
      pendingPersons = [];
    };
    const page = (after: { stream: string; version: number }) =>
      tx<Row[]>`
        SELECT stream_id, stream_version, position, type, data FROM ${tx(live)}.events
        WHERE (stream_id, stream_version) > (${after.stream}, ${after.version})
        ORDER BY stream_id, stream_version
        LIMIT ${BATCH}`.execute();
    let next: Promise<Row[]> | undefined = page({ stream: "", version: 0 });
    while (next) {
      const rows: Row[] = await next;
      const last = rows.at(-1);
      // The next page is read while this one is folded.
      next =
        last && rows.length === BATCH
          ? page({ stream: last.stream_id, version: last.stream_version })
          : undefined;
      for (const r of rows) {
        if (current?.key !== r.stream_id) {
          flushPerson();
          current = { key: r.stream_id, state: initialState() };
        }
        current.state = evolve(current.state, { type: r.type, data: r.data } as HubEvent, {
          version: r.stream_version,
          position: r.position,
        });
        events += 1;
      }
      if (pending.certificates.length + pending.records.length > 50_000) {
        // COPY needs the connection to itself: let the page read ahead arrive first.
        const ahead = next ? await next : undefined;
        await flushRows();
        if (ahead) next = Promise.resolve(ahead);
      }
    }
    flushPerson();
    await flushRows();

    const differences = { records: 0, certificates: 0, migrations: 0, persons: 0 };
    for (const t of [...TABLES, "persons"] as const) {
      // Equal row multisets have equal counts and sums of row hashes: one scan of each side.
      // Only tables that differ are compared row by row, to count the differences.
      const [same] = await tx<{ same: boolean }[]>`
        SELECT (SELECT (count(*), sum(hashtextextended(t::text, 0)::numeric)) FROM ${tx(live)}.${tx(t)} t)
             = (SELECT (count(*), sum(hashtextextended(t::text, 0)::numeric)) FROM ${tx(scratch)}.${tx(t)} t)
          AS same`;
      if (same?.same) continue;
      const [d] = await tx<{ n: number }[]>`
        SELECT count(*)::int AS n FROM (
          (SELECT * FROM ${tx(live)}.${tx(t)} EXCEPT ALL SELECT * FROM ${tx(scratch)}.${tx(t)})
          UNION ALL
          (SELECT * FROM ${tx(scratch)}.${tx(t)} EXCEPT ALL SELECT * FROM ${tx(live)}.${tx(t)})
        ) d`;
      differences[t] = d?.n ?? 0;
    }
    const equal = Object.values(differences).every((n) => n === 0);
    if (mode === "replace" && !equal) {
      // TRUNCATE: the rebuild's transaction holds the tables exclusively until it commits.
      await tx`TRUNCATE ${tx(live)}.records, ${tx(live)}.certificates, ${tx(live)}.migrations, ${tx(live)}.persons`;
      for (const t of [...TABLES, "persons"] as const) {
        await tx`INSERT INTO ${tx(live)}.${tx(t)} SELECT * FROM ${tx(scratch)}.${tx(t)}`;
      }
    }
    await tx`DROP SCHEMA ${tx(scratch)} CASCADE`;
    return {
      events,
      persons,
      differences,
      equal,
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
    };
  });
}
