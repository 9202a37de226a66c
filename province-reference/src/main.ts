#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { ConfigError, createLogger } from "@evc-interop/runtime";
import { provinceCodesFromEnv, provinceConfigFromEnv } from "./config.js";
import { runOnboard } from "./onboard-cli.js";
import { Province } from "./province.js";

const USAGE = `usage: evc-province [command]
  serve        run the reference province(s) of EVC_PROVINCE_CODE(S) (default); Ctrl-C stops
  onboard      load the records held before the hub existed into it (onboard --help)
  --version    print the version
Configuration is by environment; see province-reference/README.md.`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

/**
 * `evc-province`: runs one or several reference provinces in this process
 * (EVC_PROVINCE_CODE=110000 or EVC_PROVINCE_CODES=110000,440000,510000). Ctrl-C stops cleanly.
 * `evc-province onboard`: loads the records it held before the hub existed (onboard-cli.ts).
 */
async function main(): Promise<void> {
  const log = createLogger("evc-province");
  const provinces: Province[] = [];
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    for (const p of provinces.reverse())
      await p.stop().catch((err: unknown) => log.error({ err }, "stop failed"));
  };
  process.once("SIGINT", () => void stop("SIGINT"));
  process.once("SIGTERM", () => void stop("SIGTERM"));
  const codes = provinceCodesFromEnv();
  for (const [i, code] of codes.entries()) {
    provinces.push(
      await Province.start(provinceConfigFromEnv(code, i), {
        logger: log.child({ province: code }),
      }),
    );
  }
}

/** Runs what the command line asks for; a usage error sets exit code 2. */
function command(argv: string[]): Promise<void> {
  const [first, ...rest] = argv;
  if (first === "--help" || first === "-h" || first === "help") {
    console.log(USAGE);
    return Promise.resolve();
  }
  if (first === "--version") {
    console.log(version());
    return Promise.resolve();
  }
  if (first === "onboard")
    return runOnboard(rest).then((code) => {
      process.exitCode = code;
    });
  if (first === undefined || first === "serve") return main();
  console.error(`evc-province: unknown command "${first}"\n${USAGE}`);
  process.exitCode = 2;
  return Promise.resolve();
}

const run = command(process.argv.slice(2));
run.catch((err: unknown) => {
  if (err instanceof ConfigError) console.error(`configuration error: ${err.message}`);
  else console.error(err);
  process.exitCode = 1;
});
