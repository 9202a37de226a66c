import type { PendingQuery, Row, Sql, TransactionSql } from "postgres";

/** The PostgreSQL type of a column written by `unnestRows`. */
export type ColumnType = "text" | "uuid" | "int" | "bigint" | "jsonb" | "bytea" | "timestamptz";

export type Columns = Readonly<Record<string, ColumnType>>;

type Fragment = PendingQuery<Row[]>;

/** A value as JSON its recordset column reads (bytea as base64, 64-bit integers as text). */
function jsonOf(value: unknown, type: ColumnType): unknown {
  if (value === null || value === undefined) return null;
  switch (type) {
    case "jsonb":
      return value;
    case "bytea":
      return Buffer.from(value as Uint8Array).toString("base64");
    case "timestamptz":
      return value instanceof Date ? value.toISOString() : String(value);
    case "int":
    case "bigint":
      return typeof value === "bigint" ? value.toString() : value;
    default:
      return String(value);
  }
}

function commaList(sql: Sql | TransactionSql, parts: Fragment[]): Fragment {
  return parts.reduce((list, part) => sql`${list}, ${part}`);
}

/** How a column is declared in the recordset (bytea travels as base64 text). */
const DECLARED: Record<ColumnType, string> = {
  text: "text",
  uuid: "uuid",
  int: "int",
  bigint: "bigint",
  jsonb: "jsonb",
  bytea: "text",
  timestamptz: "timestamptz",
};

/**
 * The `(columns) SELECT … FROM jsonb_to_recordset(…)` of an INSERT: the rows travel as one JSON
 * array, typed back in the statement, so its text does not depend on how many rows there are.
 * postgres.js prepares one statement per text and connection; a multi-row VALUES list made a
 * new one for every row count, each costing a describe round trip and a plan, and kept in the
 * server for the life of the connection. One JSON document (JSON.stringify, native) instead of
 * a text array per column (postgres.js escapes every element in JavaScript) took the Node.js
 * CPU of writing 1000 person states from 21 to 6 ms; jsonb values are embedded, not
 * re-stringified. Rows keep their order.
 */
export function unnestRows(
  sql: Sql | TransactionSql,
  columns: Columns,
  rows: readonly Record<string, unknown>[],
): Fragment {
  const names = Object.keys(columns);
  if (names.length === 0) throw new Error("unnestRows: no columns");
  // A row field without a column would be dropped silently: a programming error.
  const first = rows[0];
  for (const k of first ? Object.keys(first) : []) {
    if (!(k in columns)) throw new Error(`unnestRows: ${k} is not one of the columns`);
  }
  const identifiers = commaList(
    sql,
    names.map((n) => sql`${sql(n)}`),
  );
  const selected = commaList(
    sql,
    names.map((n) => (columns[n] === "bytea" ? sql`decode(${sql(n)}, 'base64')` : sql`${sql(n)}`)),
  );
  const declared = commaList(
    sql,
    names.map((n) => sql`${sql(n)} ${sql.unsafe(DECLARED[columns[n] as ColumnType])}`),
  );
  const json = JSON.stringify(
    rows.map((r) => {
      const out: Record<string, unknown> = {};
      for (const n of names) out[n] = jsonOf(r[n], columns[n] as ColumnType);
      return out;
    }),
  );
  return sql`(${identifiers}) SELECT ${selected}
    FROM jsonb_to_recordset((${json}::text)::jsonb) AS u(${declared})`;
}
