import { openDb } from "@evc-interop/runtime";
import { dropSchema, TEST_DATABASE_URL, uniqueName } from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Columns, unnestRows } from "./unnest.js";

const schema = uniqueName("unnest");
// One connection: prepared statements are per connection.
const sql = openDb({ url: TEST_DATABASE_URL, schema, max: 1 });

const COLUMNS: Columns = {
  id: "uuid",
  name: "text",
  n: "bigint",
  k: "int",
  doc: "jsonb",
  blob: "bytea",
  at: "timestamptz",
};

beforeAll(async () => {
  await sql`CREATE SCHEMA ${sql(schema)}`;
  await sql`CREATE TABLE t (id uuid PRIMARY KEY, name text, n bigint, k int, doc jsonb,
    blob bytea, at timestamptz, seq int GENERATED ALWAYS AS IDENTITY)`;
});

afterAll(async () => {
  await sql.end();
  await dropSchema(schema);
});

function row(i: number) {
  return {
    id: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
    name: i % 2 ? `tab\there "quoted" \\ 北京 ${i}` : null,
    n: 2 ** 40 + i,
    k: -i,
    doc: { a: [1, "x", null], nested: { i } },
    blob: new Uint8Array([0, 255, i % 256]),
    at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)),
  };
}

describe("unnestRows", () => {
  it("writes rows of every column type as they were, in order", async () => {
    const rows = [row(1), row(2), row(3)];
    await sql`INSERT INTO t ${unnestRows(sql, COLUMNS, rows)}`;
    const back = await sql<
      {
        id: string;
        name: string | null;
        n: number;
        k: number;
        doc: unknown;
        blob: Buffer;
        at: Date;
      }[]
    >`SELECT id, name, n, k, doc, blob, at FROM t ORDER BY seq`;
    expect(back.map((r) => ({ ...r, blob: new Uint8Array(r.blob) }))).toEqual(rows);
  });

  it("uses one prepared statement whatever the number of rows", async () => {
    for (const count of [1, 2, 5, 17, 64]) {
      const rows = Array.from({ length: count }, (_, i) => row(1000 * count + i));
      await sql`INSERT INTO t ${unnestRows(sql, COLUMNS, rows)}`;
    }
    const [prepared] = await sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM pg_prepared_statements WHERE statement LIKE 'INSERT INTO t %'`;
    expect(prepared?.n).toBe(1);
    const [stored] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM t`;
    expect(stored?.n).toBe(3 + 1 + 2 + 5 + 17 + 64);
  });

  it("refuses a row field that is not a column (it would be dropped)", () => {
    expect(() => unnestRows(sql, { id: "uuid" }, [{ id: "x", other: 1 }])).toThrow(
      /other is not one of the columns/,
    );
  });
});
