#!/usr/bin/env node
import { ConfigError, createLogger } from "@evc-interop/runtime";
import { provinceCodesFromEnv, provinceConfigFromEnv } from "./config.js";
import { runOnboard } from "./onboard-cli.js";
import { Province } from "./province.js";

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

const run =
  process.argv[2] === "onboard"
    ? runOnboard(process.argv.slice(3)).then((code) => {
        process.exitCode = code;
      })
    : main();
run.catch((err: unknown) => {
  if (err instanceof ConfigError) console.error(`configuration error: ${err.message}`);
  else console.error(err);
  process.exitCode = 1;
});
