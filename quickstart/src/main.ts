#!/usr/bin/env node
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  CannotStartService,
  ensureNats,
  ensurePostgres,
  type Service,
} from "@evc-interop/local-services";
import { Hub, hubConfigFromEnv } from "@evc-interop/national";
import { Province, provinceConfigFromEnv } from "@evc-interop/province-reference";
import {
  ConfigError,
  createBusUsers,
  createDevCredentials,
  credentialFile,
  DEFAULT_LAYOUT,
  ensureReaderIssuer,
  ensureSigningKey,
  natsAccountsConfig,
  provinceName,
} from "@evc-interop/runtime";
import { pino } from "pino";
import { busUsers } from "./bus-users.js";
import { runDemo } from "./demo.js";

/**
 * `npm start`: the hub and three reference provinces (Beijing, Guangdong, Sichuan) with a demo
 * of both scenarios of the paper, then serves until Ctrl-C (`--once`: exit after the demo).
 */
const PROVINCES = ["110000", "440000", "510000"];

function isAddrInUse(err: unknown): boolean {
  return (
    typeof err === "object" && err !== null && (err as { code?: string }).code === "EADDRINUSE"
  );
}

async function main(argv: string[]): Promise<number> {
  const once = argv.includes("--once");
  const print = (line: string) => process.stdout.write(`${line}\n`);
  const dataDir = resolve(process.env.EVC_DATA_DIR ?? ".data");
  mkdirSync(dataDir, { recursive: true });
  const logFile = join(dataDir, "evc.log");
  const logger = pino(
    { level: process.env.EVC_LOG_LEVEL ?? "info" },
    pino.destination({ dest: logFile, sync: false }),
  );
  const services: Service[] = [];
  const running: { stop(): Promise<void> }[] = [];
  const shutdown = async () => {
    for (const r of running.reverse()) await r.stop().catch(() => undefined);
    for (const s of services.reverse()) await s.stop().catch(() => undefined);
  };
  let interrupted: (() => void) | undefined;
  const stopped = new Promise<void>((r) => {
    interrupted = r;
  });
  process.once("SIGINT", () => interrupted?.());
  process.once("SIGTERM", () => interrupted?.());

  try {
    print(
      "evc-interop: national hub + three reference provinces, playing both scenarios of the paper",
    );
    const pg = await ensurePostgres(
      process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres",
      dataDir,
    );
    services.push(pg);
    print(`  ${pg.note}`);
    const credentialsDir = resolve(process.env.EVC_CREDENTIALS_DIR ?? join(dataDir, "credentials"));
    if (!existsSync(join(credentialsDir, "trust.json"))) {
      await createDevCredentials(credentialsDir);
      print(`  credentials: created development keys for the 31 provinces in ${credentialsDir}`);
    } else if (await ensureSigningKey(credentialsDir)) {
      print(`  credentials: created the hub's directive signing key in ${credentialsDir}`);
    }
    await ensureReaderIssuer(credentialsDir);
    // On the bus the quick start starts, each takes its own user (nats-users.json), the
    // province users limited to their own consumer and inbox (natsAccountsConfig).
    let users = busUsers(credentialsDir);
    if (users.all.some((u) => !u.seedFile)) {
      // Credentials made before the bus moved to NKeys: new bus users, the rest kept.
      await createBusUsers(credentialsDir);
      users = busUsers(credentialsDir);
    }
    const nats = await ensureNats(
      process.env.NATS_URL,
      natsAccountsConfig(DEFAULT_LAYOUT, users.all),
    );
    services.push(nats);
    print(`  ${nats.note}`);
    const natsUsers = process.env.NATS_URL ? undefined : users.of;
    const controlToken = process.env.EVC_CONTROL_TOKEN || randomBytes(18).toString("base64url");
    const env = {
      ...process.env,
      DATABASE_URL: pg.url,
      NATS_URL: nats.url,
      EVC_CREDENTIALS_DIR: credentialsDir,
    };
    const hubConfig = { ...hubConfigFromEnv(env), ...natsUsers?.("hub") };
    let hub: Hub;
    try {
      hub = await Hub.start(hubConfig, { logger: logger.child({ component: "hub" }) });
    } catch (err) {
      if (!isAddrInUse(err)) throw err;
      hub = await Hub.start(
        { ...hubConfig, port: 0 },
        { logger: logger.child({ component: "hub" }) },
      );
    }
    running.push(hub);
    const provinces: Province[] = [];
    for (const [i, code] of PROVINCES.entries()) {
      const config = {
        ...provinceConfigFromEnv(code, i, env),
        ...natsUsers?.(`province-${code}`),
        // The hub provisions the consumers; a province's user may not.
        ...(natsUsers ? { provisionConsumer: false } : {}),
        hubUrl: hub.url,
        // The demo drives the provinces through their control API, open to this run alone.
        controlToken: controlToken,
      };
      const log = logger.child({ component: `province-${code}` });
      let p: Province;
      try {
        p = await Province.start(config, { logger: log });
      } catch (err) {
        if (!isAddrInUse(err)) throw err;
        p = await Province.start({ ...config, port: 0, controlPort: 0 }, { logger: log });
      }
      provinces.push(p);
      running.push(p);
    }
    print(`  hub      ${hub.url}`);
    for (const p of provinces) print(`  ${p.code}   ${p.url}  (${provinceName(p.code)})`);

    const results = await runDemo(hub, provinces, print);
    const ok = results.every((r) => r.ok);

    print("");
    print("Where to look next");
    print(
      `  hub API (Connect, gRPC, gRPC-Web)  ${hub.url}   e.g. evc.national.v1.CertificateService`,
    );
    print(`  hub health and metrics             ${hub.url}/readyz   ${hub.url}/metrics`);
    print(
      `  operator console                   ${hub.url}/console/   sign in with the token of: npm run -s operator -- --hub ${hub.url} --key ${join(credentialsDir, credentialFile("operator:ops"))} token`,
    );
    for (const p of provinces)
      print(`  province ${p.code} API and metrics     ${p.url}   ${p.url}/metrics`);
    print(
      `  provinces' control API             ${provinces.map((p) => p.controlUrl).join("  ")}, Authorization: Bearer <EVC_CONTROL_TOKEN>${process.env.EVC_CONTROL_TOKEN ? "" : " (made for this run; set EVC_CONTROL_TOKEN to choose it)"}`,
    );
    print(`  logs                               ${logFile}`);
    print(
      "  conformance kit                    npx evc-conformance --help   (conformance/README.md)",
    );
    print("  benchmark                          npm run bench");
    if (once) return ok ? 0 : 1;
    print("");
    print("Serving. Press Ctrl-C to stop.");
    await stopped;
    print("Stopping...");
    return ok ? 0 : 1;
  } finally {
    await shutdown();
    logger.flush();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) console.error(`configuration error: ${err.message}`);
    else if (err instanceof CannotStartService) console.error(`cannot start: ${err.message}`);
    else console.error(err);
    process.exitCode = 1;
  },
);
