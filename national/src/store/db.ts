import postgres, { type Sql } from "postgres";

export interface DbOptions {
  /** postgres:// URL. */
  url: string;
  /** Schema holding the hub's tables (created if missing). */
  schema: string;
  /** Pool size. */
  max?: number;
  /** application_name seen in pg_stat_activity. */
  applicationName?: string;
}

/** Type options of every connection: int8 read as number. */
export const DB_TYPES = {
  // int8 positions, versions and counts fit easily in a double for this system's lifetime.
  int8: {
    to: 20,
    from: [20],
    serialize: (x: number | bigint | string) => String(x),
    parse: (x: string) => Number(x),
  },
};

/** Opens a pool whose connections use `schema` as their search path (int8 read as number). */
export function openDb(opts: DbOptions): Sql {
  return postgres(opts.url, {
    max: opts.max ?? 10,
    onnotice: () => {},
    connection: { search_path: opts.schema, application_name: opts.applicationName ?? "evc-hub" },
    types: DB_TYPES,
  });
}
