import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Client, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { bearer, credentialFile } from "@evc-interop/runtime";
import {
  dropSchema,
  newDose,
  newIdentity,
  startTestHub,
  TEST_DATABASE_URL,
  type TestHubEnv,
  uniqueName,
} from "@evc-interop/testing";
import postgres, { type Sql } from "postgres";
import { mustBeRunning, spawnChild, stopChild } from "./children.js";
import type { ConnectionPlan } from "./connections.js";
import { pool, until } from "./measure.js";

import { PROVINCES, provinceProgram } from "./settings.js";

/** The system under test: a hub in this process, reference provinces in a child process, persons registered to move around. */

/** A province of the end-to-end run: its API, control client and store, in the child process. */
export interface BenchProvince {
  code: string;
  url: string;
  schema: string;
  sql: Sql;
  control: Client<typeof ControlService>;
}

export interface System {
  env: TestHubEnv;
  provinces: BenchProvince[];
  child: ChildProcess;
  dir: string;
  /** How the run's PostgreSQL connections are shared. */
  plan: ConnectionPlan;
}

/**
 * The hub runs in this process; the four provinces run together in a child process (as
 * `npm run province` would), so the hub and the provinces each have a core of the machine.
 */
export async function startSystem(plan: ConnectionPlan): Promise<System> {
  const env = await startTestHub({ pollMs: 20, consumerAckWaitMs: 30_000, dbPoolSize: plan.hub });
  try {
    const started = await spawnProvinces(env, PROVINCES, {
      EVC_AGENT_CONCURRENCY: "64",
      EVC_RECEIPT_POLL_MS: "50",
      EVC_DB_POOL: String(plan.province),
    });
    return { env, plan, ...started };
  } catch (err) {
    await env.close();
    throw err;
  }
}

/** Reference provinces for `codes` in one child process, wired to `env`'s hub; ready. */
/**
 * A temporary folder holding the provinces' credentials and the hub's directive keys, as
 * EVC_CREDENTIALS_DIR and EVC_DIRECTIVE_KEYS expect them.
 */
export function credentialsDir(env: TestHubEnv, codes: readonly string[]): string {
  const dir = mkdtempSync(join(tmpdir(), "evc-bench-"));
  for (const code of codes) {
    const subject = `province:${code}`;
    writeFileSync(
      join(dir, credentialFile(subject)),
      JSON.stringify(env.creds.credential(subject).privateJwk),
    );
  }
  // The hub's directive keys: the provinces apply only directives signed with them.
  writeFileSync(join(dir, "hub-directive-keys.json"), JSON.stringify(env.directiveKeys));
  return dir;
}

export async function spawnProvinces(
  env: TestHubEnv,
  codes: string[],
  extraEnv: Record<string, string>,
): Promise<Omit<System, "env" | "plan">> {
  const dir = credentialsDir(env, codes);
  const prefix = `${uniqueName("bench_p")}_`;
  const controlToken = randomBytes(18).toString("base64url");
  // One run of free ports: the provinces' API ports, then their control ports.
  const base = await freePortRun(2 * codes.length);
  const controlBase = base + codes.length;
  const child = spawnChild(process.execPath, [...process.execArgv, provinceProgram()], {
    env: {
      ...process.env,
      EVC_PROVINCE_CODES: codes.join(","),
      EVC_PROVINCE_LISTEN: `127.0.0.1:${base}`,
      EVC_CONTROL_LISTEN: `127.0.0.1:${controlBase}`,
      EVC_PROVINCE_SCHEMA_PREFIX: prefix,
      DATABASE_URL: TEST_DATABASE_URL,
      NATS_URL: env.config.natsUrl,
      // The machine's open test bus.
      EVC_NATS_ANONYMOUS: "1",
      EVC_STREAM: env.config.stream,
      EVC_SUBJECT_PREFIX: env.config.subjectPrefix,
      EVC_HUB_URL: env.hub.url,
      EVC_CREDENTIALS_DIR: dir,
      EVC_CONTROL_TOKEN: controlToken,
      EVC_PROVISION_CONSUMER: "0",
      EVC_RECONCILE_INTERVAL_MS: "0",
      EVC_LOG_LEVEL: "warn",
      ...extraEnv,
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const provinces = codes.map((code, i) => {
    const url = `http://127.0.0.1:${base + i}`;
    return {
      code,
      url,
      schema: `${prefix}${code}`,
      sql: postgres(TEST_DATABASE_URL, {
        max: 1,
        onnotice: () => {},
        connection: { search_path: `${prefix}${code}` },
      }),
      control: createClient(
        ControlService,
        createConnectTransport({
          baseUrl: `http://127.0.0.1:${controlBase + i}`,
          httpVersion: "2",
          interceptors: [bearer(controlToken)],
        }),
      ),
    };
  });
  try {
    for (const p of provinces) {
      // A child that dies starting (a port taken meanwhile, a bad setting) fails the bench at
      // once, instead of after the wait and with the bench left hanging on its open pools.
      await until(
        `province ${p.code} ready`,
        async () => {
          mustBeRunning(child, "the provinces' process");
          try {
            await p.control.getFeatures({});
            return true;
          } catch {
            return false;
          }
        },
        30_000,
        100,
      );
    }
  } catch (err) {
    await stopChild(child);
    for (const p of provinces) await p.sql.end();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return { provinces, child, dir };
}

export async function stopSystem(s: Omit<System, "plan">): Promise<void> {
  await stopChild(s.child);
  for (const p of s.provinces) {
    await p.sql.end();
    await dropSchema(p.schema);
  }
  await s.env.close();
  rmSync(s.dir, { recursive: true, force: true });
}

/** The first of `n` consecutive free ports. */
async function freePortRun(n: number): Promise<number> {
  for (;;) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    let ok = true;
    for (let i = 0; i < n && ok; i++) ok = await portFree(base + i);
    if (ok) return base;
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

export async function registerPersons(s: System, n: number) {
  const people: { identity: ReturnType<typeof newIdentity>; owner: number; certificate: string }[] =
    [];
  await pool(
    Array.from({ length: n }, (_, i) => i),
    64,
    async (i) => {
      const owner = i % s.provinces.length;
      const p = s.provinces[owner] as BenchProvince;
      const identity = newIdentity();
      const res = await p.control.registerRecord({ identity, doses: [newDose(p.code)] });
      people[i] = { identity, owner, certificate: res.certificateNumber };
    },
  );
  // The tables grew from nothing within seconds, faster than autovacuum refreshes their
  // statistics: pooled connections keep generic plans made for near-empty tables (sequential
  // scans that grow with every round). A hub that has been running has current statistics;
  // so does this one before a timed round (untimed; the hub's and the provinces' schemas
  // only, not whatever else the database holds).
  const schemas = [s.env.config.schema, ...s.provinces.map((p) => p.schema)];
  const tables = await s.env.hub.sql<{ schema: string; table: string }[]>`
    SELECT schemaname AS schema, tablename AS table FROM pg_tables
    WHERE schemaname = ANY(${schemas}::text[])`;
  for (const t of tables)
    await s.env.hub.sql`ANALYZE ${s.env.hub.sql(t.schema)}.${s.env.hub.sql(t.table)}`;
  return people;
}

export async function completedCount(s: System, since: Date): Promise<number> {
  const [r] = await s.env.hub.sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM migrations WHERE state = 'COMPLETED' AND requested_at >= ${since}`;
  return r?.n ?? 0;
}
