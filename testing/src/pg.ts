import { randomBytes } from "node:crypto";
import postgres from "postgres";

/** PostgreSQL URL for tests: $DATABASE_URL or the machine's local server, database `test`. */
export const TEST_DATABASE_URL =
  process.env.EVC_TEST_DATABASE_URL ??
  process.env.DATABASE_URL ??
  "postgres://postgres@127.0.0.1:5432/test";

/** A fresh schema name, unique per test run, so tests run in parallel and rerun cleanly. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`;
}

/** Drops a test schema (best effort). */
export async function dropSchema(schema: string): Promise<void> {
  const sql = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    await sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`;
  } finally {
    await sql.end();
  }
}
