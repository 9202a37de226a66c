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

async function insertRows(tx: TransactionSql, schema: string, rows: ProjectionRows): Promise<void> {
  for (const table of TABLES) {
    const list = rows[table];
    for (let i = 0; i < list.length; i += 2000) {
      await tx`INSERT INTO ${tx(schema)}.${tx(table)} ${tx(list.slice(i, i + 2000) as never)}`;
    }
  }
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
      await tx`CREATE TABLE ${tx(scratch)}.${tx(t)} (LIKE ${tx(live)}.${tx(t)} INCLUDING DEFAULTS)`;
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
      await insertRows(tx, scratch, pending);
      for (let i = 0; i < pendingPersons.length; i += 2000) {
        const part = pendingPersons
          .slice(i, i + 2000)
          .map((p) => ({ ...p, state: tx.json(p.state as never) }));
        await tx`INSERT INTO ${tx(scratch)}.persons ${tx(part as never)}`;
      }
      pending = { records: [], certificates: [], migrations: [] };
      pendingPersons = [];
    };
    let after: { stream: string; version: number } = { stream: "", version: 0 };
    for (;;) {
      const rows = await tx<Row[]>`
        SELECT stream_id, stream_version, position, type, data FROM ${tx(live)}.events
        WHERE (stream_id, stream_version) > (${after.stream}, ${after.version})
        ORDER BY stream_id, stream_version
        LIMIT ${BATCH}`;
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
      if (pending.certificates.length + pending.records.length > 10_000) await flushRows();
      const last = rows.at(-1);
      if (!last || rows.length < BATCH) break;
      after = { stream: last.stream_id, version: last.stream_version };
    }
    flushPerson();
    await flushRows();

    const differences = { records: 0, certificates: 0, migrations: 0, persons: 0 };
    for (const t of [...TABLES, "persons"] as const) {
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
      for (const t of [...TABLES, "persons"] as const) {
        await tx`DELETE FROM ${tx(live)}.${tx(t)}`;
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
