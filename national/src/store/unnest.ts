import type { PendingQuery, Row, Sql, TransactionSql } from "postgres";

/** The PostgreSQL type of a column written by `unnestRows`. */
export type ColumnType = "text" | "uuid" | "int" | "bigint" | "jsonb" | "bytea" | "timestamptz";

export type Columns = Readonly<Record<string, ColumnType>>;

type Fragment = PendingQuery<Row[]>;

/** A value as the text its column's cast reads (bytea as base64, jsonb as JSON). */
function textOf(value: unknown, type: ColumnType): string | null {
  if (value === null || value === undefined) return null;
  switch (type) {
    case "jsonb":
      return JSON.stringify(value);
    case "bytea":
      return Buffer.from(value as Uint8Array).toString("base64");
    case "timestamptz":
      return value instanceof Date ? value.toISOString() : String(value);
    default:
      return String(value);
  }
}

function commaList(sql: Sql | TransactionSql, parts: Fragment[]): Fragment {
  return parts.reduce((list, part) => sql`${list}, ${part}`);
}

/**
 * The `(columns) SELECT … FROM unnest(…)` of an INSERT: the rows travel as one text array per
 * column and are cast back in the statement, so its text does not depend on how many rows
 * there are. postgres.js prepares one statement per text and connection; a multi-row VALUES
 * list made a new one for every row count, each costing a describe round trip and a plan,
 * and kept in the server for the life of the connection. Rows keep their order.
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
  const casts: Record<ColumnType, (column: Fragment) => Fragment> = {
    text: (c) => c,
    uuid: (c) => sql`${c}::uuid`,
    int: (c) => sql`${c}::int`,
    bigint: (c) => sql`${c}::bigint`,
    jsonb: (c) => sql`${c}::jsonb`,
    bytea: (c) => sql`decode(${c}, 'base64')`,
    timestamptz: (c) => sql`${c}::timestamptz`,
  };
  const identifiers = commaList(
    sql,
    names.map((n) => sql`${sql(n)}`),
  );
  const selected = commaList(
    sql,
    names.map((n) => casts[columns[n] as ColumnType](sql`${sql(n)}`)),
  );
  const arrays = commaList(
    sql,
    names.map((n) => {
      const type = columns[n] as ColumnType;
      return sql`${rows.map((r) => textOf(r[n], type))}::text[]`;
    }),
  );
  return sql`(${identifiers}) SELECT ${selected} FROM unnest(${arrays}) AS u(${identifiers})`;
}
