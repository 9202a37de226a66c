import * as crypto from "node:crypto";
import type { Sql, TransactionSql } from "postgres";
import { evolve } from "../domain/person.js";
import { type HubEvent, initialState, type PersonState } from "../domain/types.js";
import { IDENTITY_EVENT_TYPES, openIdentities } from "./identity-seal.js";
import { jsonbText } from "./jsonb-text.js";
import { isoText, projectionRows } from "./projection.js";

export const TABLES = ["records", "certificates", "migrations"] as const;

export interface Row {
  stream_id: string;
  stream_version: number;
  position: number;
  type: string;
  data: unknown;
  /** The person's data key (null: erased), for events that carry a sealed identity. */
  dek?: Buffer | null;
}

export type Table = (typeof TABLES)[number] | "persons";
export const ALL_TABLES: readonly Table[] = [...TABLES, "persons"];

/**
 * SHA-256 of a string's UTF-8, in hex. crypto.hash (one call, no Hash object) arrived in
 * Node.js 20.12; older 20.x releases, which package.json still admits, get createHash.
 */
const sha256Hex: (text: string) => string =
  typeof crypto.hash === "function"
    ? (text) => crypto.hash("sha256", text, "hex")
    : (text) => crypto.createHash("sha256").update(text).digest("hex");

/** COPY text of one value. */
function copyValue(v: unknown): string {
  if (v === null || v === undefined) return "\\N";
  // Numbers and timestamps never hold a character COPY escapes.
  if (typeof v === "number") return String(v);
  if (v instanceof Date) return v.toISOString();
  return copyEscape(String(v));
}

/** Escapes backslash, tab, newline and carriage return for COPY text format. */
function copyEscape(text: string): string {
  return /[\\\t\n\r]/.test(text) ? text.replace(/[\\\t\n\r]/g, (c) => COPY_ESCAPES[c] ?? c) : text;
}

/**
 * Escapes JSON text for COPY: JSON escapes every control character inside its strings and
 * jsonb's separators are spaces, so a backslash is the only character COPY would misread.
 */
function copyEscapeJson(json: string): string {
  return json.includes("\\") ? json.replaceAll("\\", "\\\\") : json;
}

const COPY_ESCAPES: Record<string, string> = {
  "\\": "\\\\",
  "\t": "\\t",
  "\n": "\\n",
  "\r": "\\r",
};

/** COPY lines of rows (objects whose keys are the table's columns, in order). */
function copyLines(rows: readonly Record<string, unknown>[]): string {
  let text = "";
  for (const row of rows) {
    let first = true;
    for (const k in row) {
      text += (first ? "" : "\t") + copyValue(row[k]);
      first = false;
    }
    text += "\n";
  }
  return text;
}

/**
 * COPY text of one table as UTF-8 bytes, appended person by person. Each person's text is
 * encoded as soon as it is made, so it dies young instead of being held (and promoted by the
 * garbage collector) until the chunk is handed over; the chunk's memory is then transferred
 * to the writer's thread without a copy.
 */
class CopyBytes {
  private buf = Buffer.allocUnsafeSlow(1 << 16);
  length = 0;

  append(text: string): void {
    if (text === "") return;
    // UTF-8 takes at most 3 bytes per UTF-16 code unit.
    const need = this.length + text.length * 3;
    if (need > this.buf.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(need, this.buf.length * 2));
      this.buf.copy(grown, 0, 0, this.length);
      this.buf = grown;
    }
    this.length += this.buf.write(text, this.length);
  }

  /** The bytes so far, in memory of their own (transferable); the buffer starts empty again. */
  take(): Uint8Array<ArrayBuffer> {
    if (this.length === 0) return new Uint8Array(0);
    const out = this.buf.subarray(0, this.length);
    this.buf = Buffer.allocUnsafeSlow(this.buf.length);
    this.length = 0;
    return out;
  }
}

/** The COPY text of each scratch table, as UTF-8 bytes. */
export type CopyChunk = Record<Table, Uint8Array<ArrayBuffer>>;

/**
 * How the replay writes each person's state: as the text jsonb prints for it (to replace live
 * states with), or as the SHA-256 of that text in UTF-8 (`bytea`, enough to compare with the
 * live states: a tenth of the bytes to send, parse and store).
 */
export type StateForm = "text" | "digest";

/**
 * Folds the log, person by person in stream order, into the COPY text of the scratch tables:
 * the projection rows and each person's state in the given form.
 */
export class Replay {
  events = 0;
  persons = 0;

  constructor(private readonly states: StateForm = "text") {}

  private current: { key: string; state: PersonState } | undefined;
  private text: Record<Table, CopyBytes> = {
    records: new CopyBytes(),
    certificates: new CopyBytes(),
    migrations: new CopyBytes(),
    persons: new CopyBytes(),
  };

  /** Bytes of COPY text held, all tables together. */
  get size(): number {
    let n = 0;
    for (const t of ALL_TABLES) n += this.text[t].length;
    return n;
  }

  /** Folds the next events (ordered by stream, then version). */
  add(rows: readonly Row[]): void {
    for (const r of rows) {
      if (this.current?.key !== r.stream_id) {
        this.flushPerson();
        this.current = { key: r.stream_id, state: initialState() };
      }
      const data = IDENTITY_EVENT_TYPES.has(r.type)
        ? openIdentities(r.data, r.dek, r.stream_id)
        : r.data;
      this.current.state = evolve(this.current.state, { type: r.type, data } as HubEvent, {
        version: r.stream_version,
        position: r.position,
      });
      this.events += 1;
    }
  }

  /** Ends the log: the last person's rows are written. */
  end(): void {
    this.flushPerson();
    this.current = undefined;
  }

  /** The COPY text gathered so far, per table; the buffers start empty again. */
  take(): CopyChunk {
    const out = {} as CopyChunk;
    for (const t of ALL_TABLES) out[t] = this.text[t].take();
    return out;
  }

  private flushPerson(): void {
    const cur = this.current;
    if (!cur) return;
    const rows = projectionRows(cur.key, cur.state, undefined, isoText);
    for (const t of TABLES) this.text[t].append(copyLines(rows[t]));
    const text = jsonbText(cur.state);
    // A bytea in COPY text: \x and hex digits, its backslash escaped.
    const state = this.states === "digest" ? `\\\\x${sha256Hex(text)}` : copyEscapeJson(text);
    this.text.persons.append(`${copyEscape(cur.key)}\t${cur.state.version}\t${state}\n`);
    this.persons += 1;
  }
}

/** Makes a transaction see the snapshot another one exported (pg_export_snapshot). */
export async function useSnapshot(rx: TransactionSql, snapshot: string): Promise<void> {
  if (!/^[0-9A-F-]+$/i.test(snapshot)) throw new Error(`replay: bad snapshot id ${snapshot}`);
  await rx.unsafe(`SET TRANSACTION SNAPSHOT '${snapshot}'`);
}

/** Events read per page. */
const BATCH = 20_000;
/** COPY text gathered before it is handed to the writer. */
export const FLUSH_AT = 8 << 20;

/** A range of streams (person keys): after `after` (exclusive), up to `upto` (inclusive). */
export interface StreamRange {
  after?: string;
  upto?: string;
}

/**
 * Replays the streams of one range on its own connection, in the snapshot exported by the
 * rebuild's transaction (so every range sees the same log), handing COPY text to `emit` as it
 * gathers; the next page is read while one is folded.
 */
export async function replayRange(
  sql: Sql,
  schema: string,
  snapshot: string,
  range: StreamRange,
  states: StateForm,
  emit: (text: CopyChunk) => Promise<void>,
): Promise<{ events: number; persons: number }> {
  return sql.begin("ISOLATION LEVEL REPEATABLE READ READ ONLY", async (rx) => {
    await useSnapshot(rx, snapshot);
    const replay = new Replay(states);
    const upto = range.upto;
    const page = (stream: string, version: number) =>
      rx<Row[]>`
        SELECT e.stream_id, e.stream_version, e.position, e.type, e.data, k.dek
        FROM ${rx(schema)}.events e LEFT JOIN ${rx(schema)}.person_keys k ON k.person_key = e.stream_id
        WHERE (e.stream_id, e.stream_version) > (${stream}, ${version})
          ${upto === undefined ? rx`` : rx`AND e.stream_id <= ${upto}`}
        ORDER BY e.stream_id, e.stream_version
        LIMIT ${BATCH}`.execute();
    // After the range's lower bound: every version of that stream belongs to the range before.
    let next: Promise<Row[]> | undefined = page(
      range.after ?? "",
      range.after === undefined ? 0 : Number.MAX_SAFE_INTEGER,
    );
    while (next) {
      const rows: Row[] = await next;
      const last = rows.at(-1);
      next = last && rows.length === BATCH ? page(last.stream_id, last.stream_version) : undefined;
      replay.add(rows);
      if (replay.size > FLUSH_AT) await emit(replay.take());
    }
    replay.end();
    await emit(replay.take());
    return { events: replay.events, persons: replay.persons };
  });
}
