#!/usr/bin/env node
import { ConfigError, createLogger, openDb } from "@evc-interop/runtime";
import { sealAll, verifyChain } from "./chain/chain.js";
import { hubConfigFromEnv } from "./config.js";
import { Hub } from "./hub.js";
import { rebuildSnapshot } from "./store/rebuild.js";
import { migrate } from "./store/schema.js";

const USAGE = `usage: evc-hub [command]
  serve            run the hub (default)
  migrate          apply schema migrations and exit
  rebuild          replay the event log and compare with the live snapshot (exit 1 if different)
  rebuild --replace  replace the live snapshot with the replay
  verify-log       seal pending events and verify the hash chain (exit 1 if broken)
Configuration is by environment; see national/README.md.`;

async function main(argv: string[]): Promise<number> {
  const log = createLogger("evc-hub");
  const command = argv[0] ?? "serve";
  if (command === "--help" || command === "-h" || command === "help") {
    console.log(USAGE);
    return 0;
  }
  const config = hubConfigFromEnv();
  if (command === "serve") {
    const hub = await Hub.start(config, { logger: log });
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        log.info({ signal }, "shutting down");
        hub.stop().then(resolve, (err: unknown) => {
          log.error({ err }, "shutdown failed");
          resolve();
        });
      };
      process.once("SIGINT", () => stop("SIGINT"));
      process.once("SIGTERM", () => stop("SIGTERM"));
    });
    return 0;
  }
  const sql = openDb({ url: config.databaseUrl, schema: config.schema, max: 2 });
  try {
    if (command === "migrate") {
      const applied = await migrate(sql, config.schema);
      log.info({ applied }, applied.length ? "migrations applied" : "schema is current");
      return 0;
    }
    await migrate(sql, config.schema);
    if (command === "rebuild") {
      const r = await rebuildSnapshot(sql, argv.includes("--replace") ? "replace" : "compare");
      log.info(
        r,
        r.equal ? "snapshot equals the replay of the log" : "snapshot differs from the replay",
      );
      return r.equal || argv.includes("--replace") ? 0 : 1;
    }
    if (command === "verify-log") {
      await sealAll(sql);
      const r = await verifyChain(sql);
      log.info(r, r.ok ? "hash chain verified" : "hash chain BROKEN");
      return r.ok ? 0 : 1;
    }
    console.error(USAGE);
    return 2;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) console.error(`configuration error: ${err.message}`);
    else console.error(err);
    process.exitCode = 1;
  },
);
