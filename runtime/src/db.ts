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

/**
 * What a worker thread needs to open its own connection like this pool's (cloneable: a
 * password given as a function and TLS options given as an object are left out, see
 * `canClone`). An `sslmode` from the URL (a string such as "require") is kept.
 */
export function connectionOf(sql: Sql): ConnectionOptions {
  const o = sql.options;
  // postgres() takes the parsed host and port lists back as they are (its types say string).
  return {
    host: o.host,
    port: o.port,
    path: o.path,
    database: o.database,
    user: o.user,
    pass: typeof o.pass === "string" ? o.pass : null,
    ssl: typeof o.ssl === "object" ? false : o.ssl,
    connection: o.connection,
  } as unknown as ConnectionOptions;
}

/** One connection of its own in this thread, exactly like the pool's (int8 read as number). */
export function ownConnection(sql: Sql): Sql {
  return openConnection({
    ...connectionOf(sql),
    pass: sql.options.pass ?? undefined,
    ssl: sql.options.ssl,
  });
}

/** Options of postgres() for a connection of its own (see connectionOf). */
export type ConnectionOptions = postgres.Options<Record<string, postgres.PostgresType>>;

/** One connection of its own (a worker's, or the rebuild's reader), int8 read as number. */
export function openConnection(options: ConnectionOptions): Sql {
  return postgres({ ...options, max: 1, onnotice: () => {}, types: DB_TYPES });
}

/**
 * The compiled script of a worker next to `moduleUrl` (`import.meta.url` of its caller). Tests
 * run the caller from its TypeScript source; a worker thread needs the build in `dist/`.
 */
export function workerScript(moduleUrl: string, script: string): URL {
  const url = new URL(script, moduleUrl);
  if (!moduleUrl.endsWith(".ts")) return url;
  const at = url.pathname.lastIndexOf("/src/");
  url.pathname = `${url.pathname.slice(0, at)}/dist/${url.pathname.slice(at + 5)}`;
  return url;
}

/**
 * True when worker threads can connect as this pool does: its password is not a function and
 * its TLS settings are not an object of options (which may hold functions).
 */
export function canClone(sql: Sql): boolean {
  return typeof sql.options.pass !== "function" && typeof sql.options.ssl !== "object";
}
