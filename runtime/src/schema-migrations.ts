import type { Sql } from "postgres";

/** One versioned schema change. Never edit a released one: add a new one. */
export interface SchemaMigration {
  version: number;
  name: string;
  sql: string;
}

/**
 * Applies pending migrations to `schema` (created if missing), in order, in one transaction
 * under an advisory lock named after `component` and the schema, so several replicas starting
 * together apply each migration once. Returns the versions applied now.
 */
export async function applyMigrations(
  sql: Sql,
  schema: string,
  component: string,
  migrations: readonly SchemaMigration[],
): Promise<number[]> {
  const applied: number[] = [];
  await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(hashtext(${`${component}-migrate:${schema}`}))`;
    await tx`CREATE SCHEMA IF NOT EXISTS ${tx(schema)}`;
    await tx`SET LOCAL search_path TO ${tx(schema)}`;
    await tx`CREATE TABLE IF NOT EXISTS schema_migrations (
      version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`;
    const done = new Set(
      (await tx<{ version: number }[]>`SELECT version FROM schema_migrations`).map(
        (r) => r.version,
      ),
    );
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      await tx.unsafe(m.sql);
      await tx`INSERT INTO schema_migrations (version, name) VALUES (${m.version}, ${m.name})`;
      applied.push(m.version);
    }
  });
  return applied;
}
