#!/usr/bin/env node
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type Client, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { DoseService } from "@evc-interop/gen/evc/national/v1/dose_service_pb";
import { MigrationService } from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { ProvinceService } from "@evc-interop/gen/evc/province/v1/province_service_pb";
import { rebuildSnapshot, sealAll, verifyChain } from "@evc-interop/national";
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
import { connect } from "nats";
import postgres, { type Sql } from "postgres";
import {
  closedLoop,
  cpuPerOp,
  cpuSnapshot,
  type Figure,
  figure,
  median,
  pool,
  quantile,
  quiet,
  rssOf,
  spawnChild,
  until,
} from "./measure.js";
import {
  type NaiveOptions,
  type NaivePipeline,
  naiveFigure,
  startNaivePipeline,
} from "./naive-pipeline.js";

/**
 * `npm run bench`: end-to-end figures of the hub and reference provinces on this machine, with
 * the machine's own baselines in the same run (PostgreSQL commits, JetStream publish/consume,
 * a trivial Connect call) and every headline divided by the baseline that bounds it.
 */
const ROUNDS = Number(process.env.EVC_BENCH_ROUNDS ?? 3);
const SCALE = Number(process.env.EVC_BENCH_SCALE ?? 1);
const LOG_EVENTS = Math.round(1_000_000 * SCALE);
const RECONCILE_CERTS = Math.round(1_000_000 * SCALE);
const MIGRATIONS = Math.round(2000 * SCALE);
const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const PROVINCES = ["110000", "440000", "510000", "310000"];
const PARTS = ["baselines", "migrations", "doses", "reads", "log", "reconcile"];
/** EVC_BENCH_ONLY=migrations,log runs just those parts (default: all). */
const ONLY = (process.env.EVC_BENCH_ONLY ?? "")
  .split(",")
  .map((x) => x.trim())
  .filter(Boolean);
for (const part of ONLY) {
  if (!PARTS.includes(part)) {
    throw new Error(`EVC_BENCH_ONLY: unknown part ${part}; known: ${PARTS.join(", ")}`);
  }
}
function want(part: string): boolean {
  return ONLY.length === 0 || ONLY.includes(part);
}

const here = dirname(fileURLToPath(import.meta.url));

/** The reference province's program (its `evc-province` bin), beside its built entry point. */
function provinceProgram(): string {
  return fileURLToPath(
    new URL("./main.js", import.meta.resolve("@evc-interop/province-reference")),
  );
}
const t0 = Date.now();
function progress(msg: string): void {
  process.stderr.write(`[bench ${((Date.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${msg}\n`);
}

async function rounds(
  label: string,
  n: number,
  fn: (round: number) => Promise<number>,
): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    out.push(await fn(i));
    const v = out.at(-1) ?? 0;
    progress(`${label}: round ${i + 1}/${n}: ${v >= 100 ? v.toFixed(0) : v.toPrecision(3)}`);
  }
  return out;
}

/**
 * Rounds of calls from 64 concurrent callers, for the trivial-call baseline and the status
 * reads it bounds alike: first an untimed warm-up of each (a server's first seconds go to
 * compiling its hot code: the first timed round used to come out 10–25% below the others),
 * then timed rounds of 5 seconds, the callers' rounds taking turns so that each sees the
 * machine as the others do. Returns each caller's calls/s per round and last latencies.
 */
async function callRounds(
  callers: { label: string; call: (i: number) => Promise<void> }[],
): Promise<{ perSecond: number[]; latencies: number[] }[]> {
  for (const c of callers) {
    const warm = await closedLoop(64, 3_000, c.call);
    progress(`${c.label}: warm-up ${warm.perSecond.toFixed(0)} (not counted)`);
  }
  const out = callers.map(() => ({ perSecond: [] as number[], latencies: [] as number[] }));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, c] of callers.entries()) {
      const res = await closedLoop(64, 5_000, c.call);
      const o = out[i] as (typeof out)[number];
      o.perSecond.push(res.perSecond);
      o.latencies = res.latencies;
      progress(`${c.label}: round ${round + 1}/${ROUNDS}: ${res.perSecond.toFixed(0)}`);
    }
  }
  return out;
}

// ---------------------------------------------------------------- baselines

async function pgInsertBaseline(): Promise<Figure> {
  const schema = uniqueName("bench_pg");
  const sql = postgres(TEST_DATABASE_URL, {
    max: 8,
    onnotice: () => {},
    connection: { search_path: schema },
  });
  try {
    await sql`CREATE SCHEMA ${sql(schema)}`;
    await sql`CREATE TABLE ${sql(schema)}.t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text)`;
    const r = await rounds("postgres single-row insert commits/s (8 clients)", ROUNDS, async () => {
      const res = await closedLoop(8, 2000, async () => {
        await sql`INSERT INTO t (v) VALUES ('x')`;
      });
      return res.perSecond;
    });
    return figure(
      "pg_commits",
      "PostgreSQL single-row INSERT commits/s, 8 clients (baseline)",
      "commits/s",
      r,
    );
  } finally {
    await sql`DROP SCHEMA ${sql(schema)} CASCADE`.catch(() => undefined);
    await sql.end();
  }
}

async function natsBaselines(): Promise<Figure[]> {
  const nc = await connect({ servers: NATS_URL });
  const jsm = await nc.jetstreamManager();
  const stream = uniqueName("BENCH").toUpperCase();
  await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
  const js = nc.jetstream();
  const payload = new Uint8Array(300);
  try {
    const pub = await rounds(
      "jetstream publish-with-ack msgs/s (awaited)",
      ROUNDS,
      async (round) => {
        const res = await closedLoop(1, 1500, async (i) => {
          await js.publish(`${stream}.p`, payload, { msgID: `${round}-${i}` });
        });
        return res.perSecond;
      },
    );
    const total = 20_000;
    await pool(
      Array.from({ length: total }, (_, i) => i),
      256,
      async (i) => {
        await js.publish(`${stream}.c`, payload, { msgID: `c-${i}` });
      },
    );
    const consume = await rounds("jetstream consume-with-ack msgs/s", ROUNDS, async (round) => {
      await jsm.consumers.add(stream, {
        durable_name: `c${round}`,
        ack_policy: "explicit" as never,
        filter_subject: `${stream}.c`,
      });
      const consumer = await js.consumers.get(stream, `c${round}`);
      const msgs = await consumer.consume({ max_messages: 1000 });
      const start = performance.now();
      let n = 0;
      for await (const m of msgs) {
        m.ack();
        if (++n >= total) break;
      }
      return total / ((performance.now() - start) / 1000);
    });
    return [
      figure(
        "js_publish",
        "JetStream publish with ack, awaited one at a time (baseline)",
        "msgs/s",
        pub,
      ),
      figure("js_consume", "JetStream consume + ack (baseline)", "msgs/s", consume),
    ];
  } finally {
    await jsm.streams.delete(stream).catch(() => undefined);
    await nc.close();
  }
}

const TRIVIAL_LABEL = "trivial Connect unary calls/s (64 in flight)";

function trivialFigure(perSecond: number[]): Figure {
  return figure(
    "connect_trivial",
    "Trivial Connect unary call over HTTP/2, 64 in flight, server in another process (baseline)",
    "calls/s",
    perSecond,
  );
}

/**
 * The trivial Connect server in a child process, as the provinces are for the status reads it
 * bounds; `use` gets a call to it, and the server is stopped when `use` ends.
 */
async function withTrivialServer<T>(use: (call: () => Promise<void>) => Promise<T>): Promise<T> {
  const child = spawnChild(process.execPath, [join(here, "trivial-server.js")], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  try {
    const url = await new Promise<string>((resolveUrl, reject) => {
      let out = "";
      child.stdout?.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        const line = out.split("\n")[0];
        if (out.includes("\n") && line) resolveUrl(line.trim());
      });
      child.once("exit", (code) => reject(new Error(`trivial server exited with ${code}`)));
    });
    const client = createClient(
      ControlService,
      createConnectTransport({ baseUrl: url, httpVersion: "2" }),
    );
    return await use(async () => {
      await client.getFeatures({});
    });
  } finally {
    child.kill("SIGTERM");
    await exited;
  }
}

/** The trivial-call baseline alone (when the status reads, which measure it too, do not run). */
async function connectBaseline(): Promise<Figure> {
  return withTrivialServer(async (call) => {
    const [r] = await callRounds([{ label: TRIVIAL_LABEL, call }]);
    return trivialFigure(r?.perSecond ?? []);
  });
}

// ---------------------------------------------------------------- end to end

/** A province of the end-to-end run: its API, control client and store, in the child process. */
interface BenchProvince {
  code: string;
  url: string;
  schema: string;
  sql: Sql;
  control: Client<typeof ControlService>;
}

interface System {
  env: TestHubEnv;
  provinces: BenchProvince[];
  child: ChildProcess;
  dir: string;
}

/**
 * The hub runs in this process; the four provinces run together in a child process (as
 * `npm run province` would), so the hub and the provinces each have a core of the machine.
 */
async function startSystem(): Promise<System> {
  const env = await startTestHub({ pollMs: 20, consumerAckWaitMs: 30_000, dbPoolSize: 20 });
  const started = await spawnProvinces(env, PROVINCES, {
    EVC_AGENT_CONCURRENCY: "64",
    EVC_RECEIPT_POLL_MS: "50",
  });
  return { env, ...started };
}

/** Reference provinces for `codes` in one child process, wired to `env`'s hub; ready. */
async function spawnProvinces(
  env: TestHubEnv,
  codes: string[],
  extraEnv: Record<string, string>,
): Promise<Omit<System, "env">> {
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
        max: 2,
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
  for (const p of provinces) {
    await until(
      `province ${p.code} ready`,
      async () => {
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
  return { provinces, child, dir };
}

async function stopSystem(s: System): Promise<void> {
  const exited = new Promise<void>((r) => s.child.once("exit", () => r()));
  s.child.kill("SIGTERM");
  await exited;
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

async function registerPersons(s: System, n: number) {
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

async function completedCount(s: System, since: Date): Promise<number> {
  const [r] = await s.env.hub.sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM migrations WHERE state = 'COMPLETED' AND requested_at >= ${since}`;
  return r?.n ?? 0;
}

/**
 * Migrations (and cross-province doses) requested at once in the throughput rounds. A migration
 * takes ≈ 120–200 ms end to end under load, so by Little's law 64 at a time cap the rate near
 * 64 / 0.13 s ≈ 500/s with the machine not quite busy (≈ 8% idle); with 128 (or 256, measured
 * alike) it is. Doses gained ≈ 20% the same way.
 */
const IN_FLIGHT = 128;

/**
 * Migrations through the hub and reference provinces, and through the naive pipeline the target
 * is stated against (its own yardstick, so this part has its ratio): each warmed up untimed,
 * then their timed rounds taking turns, so that both see the machine alike (measured one after
 * the other, the ratio moved with the machine's drift between them).
 */
async function migrationFigures(s: System): Promise<Figure[]> {
  const o = {
    migrations: MIGRATIONS,
    inFlight: IN_FLIGHT,
    provinces: PROVINCES,
    natsUrl: NATS_URL,
  };
  const naive = await startNaivePipeline(o);
  try {
    return await migrationRounds(s, naive, o);
  } finally {
    await naive.stop();
  }
}

async function migrationRounds(
  s: System,
  naive: NaivePipeline,
  o: NaiveOptions,
): Promise<Figure[]> {
  const clients = PROVINCES.map((code) => s.env.client(MigrationService, `province:${code}`));
  const processes = { hub: process.pid, provinces: s.child.pid };
  // The naive pipeline's and this system's rounds take turns: each starts on a quiet machine.
  const everything = { ...processes, naive: naive.pid };
  const settle = () => quiet(everything);
  const cpu: Record<string, number>[] = [];
  /** Registers MIGRATIONS persons, moves each to another province; returns migrations/s. */
  const round = async (): Promise<number> => {
    const people = await registerPersons(s, MIGRATIONS);
    const cpuBefore = cpuSnapshot(processes);
    const start = new Date();
    await pool(people, IN_FLIGHT, async (person, i) => {
      const target = (person.owner + 1 + (i % (PROVINCES.length - 1))) % PROVINCES.length;
      await (clients[target] as (typeof clients)[number]).requestMigration({
        idempotencyKey: `bench-${person.identity.idNumber}`,
        identity: person.identity,
      });
    });
    // Polled gently (the count is not free for the database under test); the end is the
    // hub's own time of the last completion, not the time the poll noticed it.
    await until(
      "migrations completed",
      async () => (await completedCount(s, start)) >= MIGRATIONS,
      300_000,
      200,
    );
    cpu.push(cpuPerOp(cpuBefore, cpuSnapshot(processes), MIGRATIONS));
    // The round's tail (sealing its events, autovacuum) must not slow the next round. Its CPU
    // is not counted: the other pipeline's idle timers and polls would be counted with it.
    await settle();
    const [last] = await s.env.hub.sql<{ at: Date }[]>`
      SELECT max(updated_at) AS at FROM migrations
      WHERE state = 'COMPLETED' AND requested_at >= ${start}`;
    return MIGRATIONS / (((last?.at ?? new Date()).getTime() - start.getTime()) / 1000);
  };
  // Untimed: a fresh Node.js process spends a fifth of its CPU compiling hot code for its
  // first tens of seconds; the timed rounds should see the hub and provinces as they run.
  const naiveWarm = await naive.round(0, settle);
  progress(`naive pipeline warm-up: ${naiveWarm.rate.toFixed(0)} migrations/s (not counted)`);
  progress(`warm-up: ${(await round()).toFixed(0)} migrations/s (not counted)`);
  cpu.length = 0;
  const naiveRounds: Awaited<ReturnType<NaivePipeline["round"]>>[] = [];
  const throughput: number[] = [];
  for (let r = 1; r <= ROUNDS; r++) {
    const n = await naive.round(r, settle);
    naiveRounds.push(n);
    progress(`naive pipeline migrations/s: round ${r}/${ROUNDS}: ${n.rate.toFixed(0)}`);
    throughput.push(await round());
    progress(
      `completed migrations/s (${MIGRATIONS} persons, ${IN_FLIGHT} in flight): round ${r}/${ROUNDS}: ${throughput.at(-1)?.toFixed(0)}`,
    );
  }
  const rate = Math.max(
    10,
    Math.round(
      quantile(
        [...throughput].sort((a, b) => a - b),
        0.5,
      ) / 2,
    ),
  );
  progress(`latency at 50% load: ${rate} migrations/s open loop`);
  const n = Math.min(MIGRATIONS, rate * 4);
  const people = await registerPersons(s, n);
  const since = new Date();
  const interval = 1000 / rate;
  const start = performance.now();
  const sends: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) {
    const wait = start + i * interval - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const person = people[i];
    if (!person) continue;
    const target = (person.owner + 1) % PROVINCES.length;
    sends.push(
      (clients[target] as (typeof clients)[number]).requestMigration({
        idempotencyKey: `lat-${person.identity.idNumber}`,
        identity: person.identity,
      }),
    );
  }
  await Promise.all(sends);
  await until(
    "latency migrations completed",
    async () => (await completedCount(s, since)) >= n,
    300_000,
  );
  const lat = await s.env.hub.sql<{ ms: number }[]>`
    SELECT extract(epoch FROM updated_at - requested_at)::float8 * 1000 AS ms FROM migrations
    WHERE state = 'COMPLETED' AND requested_at >= ${since} ORDER BY 1`;
  const ms = lat.map((r) => r.ms);
  const f = figure(
    "migrations",
    `Completed migrations/s end to end (request → suspended → issued → completed), ${IN_FLIGHT} in flight`,
    "migrations/s",
    throughput,
    {
      load_per_s: rate,
      p50_ms: quantile(ms, 0.5),
      p99_ms: quantile(ms, 0.99),
      // CPU per migration by process (the hub process also runs the load generator).
      ...(cpu[throughput.indexOf(median(throughput))] ?? {}),
    },
  );
  return [naiveFigure(o, naiveRounds), f];
}

async function doseFigure(s: System): Promise<Figure> {
  const clients = PROVINCES.map((code) => s.env.client(DoseService, `province:${code}`));
  const people = await registerPersons(s, 400);
  const perRound = Math.round(2000 * SCALE);
  /** Doses held by all the provinces' stores together. */
  const dosesHeld = async () => {
    const counts = await Promise.all(
      s.provinces.map(
        async (p) =>
          (await p.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM doses`)[0]?.n ?? 0,
      ),
    );
    return counts.reduce((a, b) => a + b, 0);
  };
  const r = await rounds(
    `cross-province doses/s (${perRound} doses, ${IN_FLIGHT} in flight)`,
    ROUNDS,
    async () => {
      const doses = Array.from({ length: perRound }, (_, i) => {
        const person = people[i % people.length] as (typeof people)[number];
        const giver = (person.owner + 1) % PROVINCES.length;
        return { person, giver, dose: newDose(PROVINCES[giver] ?? "110000") };
      });
      const expected = (await dosesHeld()) + perRound;
      const start = performance.now();
      await pool(doses, IN_FLIGHT, async ({ person, giver, dose }) => {
        await (clients[giver] as (typeof clients)[number]).reportDose({
          identity: person.identity,
          dose,
        });
      });
      await until(
        "doses appended at the owners",
        async () => (await dosesHeld()) >= expected,
        300_000,
        10,
      );
      return perRound / ((performance.now() - start) / 1000);
    },
  );
  return figure(
    "doses",
    `Cross-province doses/s end to end (report → appended in the owner's store), ${IN_FLIGHT} in flight`,
    "doses/s",
    r,
  );
}

/**
 * Status reads at a province, and the trivial-call baseline that bounds them, measured round
 * for round in turn while the hub and the provinces run: measured apart (the baseline before
 * the system was up), the ratio moved with whatever the machine did in between.
 */
async function readFigures(s: System): Promise<Figure[]> {
  const p = s.provinces[0] as BenchProvince;
  const people = await registerPersons(s, 200);
  const mine = people.filter((x) => x.owner === 0);
  const client = createClient(
    ProvinceService,
    createConnectTransport({ baseUrl: p.url, httpVersion: "2" }),
  );
  const read = async (i: number) => {
    await client.getCertificateStatus({
      certificateNumber: (mine[i % mine.length] as (typeof mine)[number]).certificate,
    });
  };
  const [trivial, reads] = await withTrivialServer((call) =>
    callRounds([
      { label: TRIVIAL_LABEL, call },
      { label: "certificate status reads/s (64 in flight)", call: read },
    ]),
  );
  if (!trivial || !reads) throw new Error("callRounds returned fewer results than callers");
  return [
    trivialFigure(trivial.perSecond),
    figure(
      "status_reads",
      "Certificate status reads/s at a province, Connect over HTTP/2, 64 callers",
      "reads/s",
      reads.perSecond,
      {
        p50_ms: quantile(reads.latencies, 0.5),
        p99_ms: quantile(reads.latencies, 0.99),
      },
    ),
  ];
}

// ---------------------------------------------------------------- scale: log and reconciliation

/**
 * Writes a log straight into the events table: `persons` persons, each with a registration
 * and `perPerson - 1` doses. The snapshot is left empty.
 */
async function generateLog(sql: Sql, persons: number, perPerson: number): Promise<void> {
  progress(`generating ${persons} persons with ${perPerson} event(s) each`);
  const batch = Math.ceil(100_000 / perPerson);
  const starts = Array.from({ length: Math.ceil(persons / batch) }, (_, i) => i * batch);
  // Untimed set-up, CPU-bound in PostgreSQL: two backends at a time (one per core) take it
  // from 35 to 22 s for the million registrations (the rebuild figures did not change).
  await pool(starts, 2, async (from) => {
    const to = Math.min(persons, from + batch) - 1;
    await sql`
      INSERT INTO events (event_id, stream_id, stream_version, type, data, recorded_at)
      SELECT gen_random_uuid(), 'p' || i, v,
        CASE WHEN v = 1 THEN 'RecordRegistered' ELSE 'DoseReported' END,
        CASE WHEN v = 1 THEN
          jsonb_build_object('recordId', 'r' || i, 'owner', '110000',
            'identity', jsonb_build_object('idType', 'ID_TYPE_RESIDENT_ID', 'idNumber', lpad(i::text, 18, '0'),
              'name', 'Bench', 'birthDate', '2020-01-01T00:00:00Z', 'sex', 'SEX_MALE'),
            'certificateNumber', '110000-B' || lpad(i::text, 9, '0'), 'doses', '[]'::jsonb,
            'at', '2026-01-01T00:00:00.000Z')
        ELSE
          jsonb_build_object('recordId', 'r' || i, 'reportedBy', '110000',
            'dose', jsonb_build_object('doseId', 'd' || i || '-' || v, 'vaccineCode', 'HepB',
              'doseNumber', v - 1, 'administeredAt', '2026-0' || v || '-01T00:00:00Z',
              'administeredProvinceCode', '110000'),
            'at', '2026-01-01T00:00:00.000Z')
        END,
        now()
      FROM generate_series(${from}::int, ${to}::int) AS i, generate_series(1, ${perPerson}::int) AS v`;
  });
}

async function logFigures(): Promise<Figure[]> {
  const env = await startTestHub({}, { workers: false });
  const sql = env.hub.sql;
  try {
    await generateLog(sql, LOG_EVENTS, 1);
    const seal0 = performance.now();
    await sealAll(sql);
    const sealRate = LOG_EVENTS / ((performance.now() - seal0) / 1000);
    progress(`sealed the chain at ${sealRate.toFixed(0)} events/s`);
    const verify = await rounds("hash-chain verification events/s", ROUNDS, async () => {
      const start = performance.now();
      const r = await verifyChain(sql);
      if (!r.ok || r.eventsVerified !== LOG_EVENTS)
        throw new Error(`verification failed: ${JSON.stringify(r)}`);
      return LOG_EVENTS / ((performance.now() - start) / 1000);
    });
    return [
      figure(
        "verify",
        `Hash-chain verification over ${LOG_EVENTS.toLocaleString("en")} events`,
        "events/s",
        verify,
        { seal_events_per_s: sealRate },
      ),
      ...(await rebuildFigures(sql, LOG_EVENTS, "rebuild", "one registration per person")),
    ];
  } finally {
    await env.close();
  }
}

/**
 * Rebuild over a log of persons with several events each (a registration and three doses),
 * the shape of a real log: the snapshot written per event is a quarter of the one above.
 */
async function mixedRebuildFigures(): Promise<Figure[]> {
  const env = await startTestHub({}, { workers: false });
  const sql = env.hub.sql;
  const persons = Math.round(LOG_EVENTS / 4);
  try {
    await generateLog(sql, persons, 4);
    return await rebuildFigures(
      sql,
      persons * 4,
      "rebuild_mixed",
      "a registration and three doses per person",
    );
  } finally {
    await env.close();
  }
}

/**
 * The rebuild over a log whose snapshot is empty: refilled in rounds (the snapshot emptied
 * again before each but the first), then replayed and compared with the snapshot it wrote
 * (the I5 check an operator runs), in rounds. The seconds of each phase of the last round
 * are the figures' extra numbers.
 */
async function rebuildFigures(
  sql: Sql,
  events: number,
  id: string,
  shape: string,
): Promise<Figure[]> {
  let phases: Record<string, number> = {};
  const run = async (mode: "compare" | "replace") => {
    const r = await rebuildSnapshot(sql, mode);
    if (r.events !== events) throw new Error(`rebuild replayed ${r.events} of ${events} events`);
    if (mode === "compare" && !r.equal)
      throw new Error("rebuild found a refilled snapshot unequal");
    phases = {
      replay_s: r.phases.replay,
      compare_s: r.phases.compare,
      replace_s: r.phases.replace,
    };
    return r.events / r.seconds;
  };
  let refilled = false;
  const refill = await rounds(`snapshot refill events/s, ${shape}`, ROUNDS, async () => {
    // Untimed: the snapshot the previous round wrote goes, the log stays.
    if (refilled) await sql`TRUNCATE records, certificates, migrations, persons`;
    refilled = true;
    return run("replace");
  });
  const refillPhases = phases;
  const compare = await rounds(`snapshot rebuild events/s, ${shape}`, ROUNDS, () => run("compare"));
  const name = `Snapshot rebuild from the log, ${events.toLocaleString("en")} events, ${shape}`;
  return [
    figure(id, `${name}: replay and compare`, "events/s", compare, phases),
    figure(
      `${id}_refill`,
      `${name}: refilling an empty snapshot`,
      "events/s",
      refill,
      refillPhases,
    ),
  ];
}

async function reconcileFigures(): Promise<Figure[]> {
  const env = await startTestHub({}, { workers: false });
  // The province in a process of its own, as deployed: its seconds and memory are its own,
  // and the hub streaming the snapshot has the other core.
  const system = { env, ...(await spawnProvinces(env, ["110000"], {})) };
  const p = system.provinces[0] as BenchProvince;
  const pid = system.child.pid ?? 0;
  try {
    progress(`generating ${RECONCILE_CERTS} certificates at the hub and the province`);
    // The hub's side and the province's side are written at the same time (two backends).
    await Promise.all([
      (async () => {
        await env.hub.sql`
          INSERT INTO certificates (certificate_number, record_id, person_key, province, owner_province, status, record_status,
            issued_at, status_changed_at, version, position)
          SELECT '110000-R' || lpad(i::text, 9, '0'), 'r' || i, 'p' || i, '110000', '110000', 'NORMAL', 'ACTIVE', now(), now(), 1, i
          FROM generate_series(1, ${RECONCILE_CERTS}::int) AS i`;
        await env.hub.sql`ANALYZE certificates`;
      })(),
      (async () => {
        await p.sql`INSERT INTO records (record_id, status, hub_version)
          SELECT 'r' || i, 'ACTIVE', 1 FROM generate_series(1, ${RECONCILE_CERTS}::int) AS i`;
        await p.sql`INSERT INTO certificates (certificate_number, record_id, status, owner_province, issued_at, status_changed_at, hub_version)
          SELECT '110000-R' || lpad(i::text, 9, '0'), 'r' || i, 'NORMAL', '110000', now(), now(), 1
          FROM generate_series(1, ${RECONCILE_CERTS}::int) AS i`;
        await p.sql`ANALYZE certificates`;
      })(),
    ]);
    const measure = async (diverge: boolean) => {
      if (diverge) {
        await p.sql`UPDATE certificates SET status = 'SUSPENDED'
          WHERE certificate_number IN (SELECT certificate_number FROM certificates ORDER BY random() LIMIT ${Math.round(RECONCILE_CERTS / 100)})`;
      }
      const cpuBefore = cpuSnapshot({ hub: process.pid, province: pid });
      const base = rssOf(pid) ?? 0;
      let peak = base;
      const sampler = setInterval(() => {
        peak = Math.max(peak, rssOf(pid) ?? 0);
      }, 20);
      const start = performance.now();
      const r = await p.control.reconcile({});
      const seconds = (performance.now() - start) / 1000;
      clearInterval(sampler);
      peak = Math.max(peak, rssOf(pid) ?? 0);
      if (r.compared < RECONCILE_CERTS) throw new Error(`compared only ${r.compared}`);
      if (diverge && r.statusRepaired < RECONCILE_CERTS / 100)
        throw new Error(`repaired only ${r.statusRepaired}`);
      // CPU seconds of the pass by process (cpu_ms per "operation" with the pass as 1,000).
      const cpu = Object.fromEntries(
        Object.entries(
          cpuPerOp(cpuBefore, cpuSnapshot({ hub: process.pid, province: pid }), 1000),
        ).map(([k, v]) => [k.replace("cpu_ms_", "cpu_s_"), v]),
      );
      return { seconds, peakMb: (peak - base) / 1e6, cpu };
    };
    type Pass = Awaited<ReturnType<typeof measure>>;
    const inSync: Pass[] = [];
    const diverged: Pass[] = [];
    const medianPass = (xs: Pass[]) =>
      xs.find((x) => x.seconds === median(xs.map((y) => y.seconds)))?.cpu ?? {};
    await rounds("reconciliation in sync, seconds", ROUNDS, async () => {
      const m = await measure(false);
      inSync.push(m);
      return m.seconds;
    });
    await rounds("reconciliation with 1% diverged, seconds", ROUNDS, async () => {
      const m = await measure(true);
      diverged.push(m);
      return m.seconds;
    });
    const peak = (xs: { peakMb: number }[]) => Math.max(...xs.map((x) => x.peakMb));
    return [
      figure(
        "reconcile_sync",
        `Reconciliation of ${RECONCILE_CERTS.toLocaleString("en")} certificates, in sync`,
        "s",
        inSync.map((x) => x.seconds),
        {
          peak_rss_increase_mb: peak(inSync),
          certs_per_s: RECONCILE_CERTS / Math.min(...inSync.map((x) => x.seconds)),
          ...medianPass(inSync),
        },
      ),
      figure(
        "reconcile_diverged",
        `Reconciliation of ${RECONCILE_CERTS.toLocaleString("en")} certificates, 1% diverged`,
        "s",
        diverged.map((x) => x.seconds),
        {
          peak_rss_increase_mb: peak(diverged),
          ...medianPass(diverged),
        },
      ),
    ];
  } finally {
    await stopSystem(system);
  }
}

// ---------------------------------------------------------------- report

function fmt(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString("en") : n.toFixed(n >= 10 ? 1 : 2);
}

function markdown(figures: Figure[]): string {
  const lines = [
    "| figure | median | min | max | unit | vs baseline | target |",
    "|---|---:|---:|---:|---|---:|---|",
  ];
  for (const f of figures) {
    const extra = Object.entries(f.extra)
      .map(([k, v]) => `${k} ${fmt(v)}`)
      .join(", ");
    lines.push(
      `| ${f.name}${extra ? ` (${extra})` : ""} | ${fmt(f.median)} | ${fmt(f.min)} | ${fmt(f.max)} | ${f.unit} | ${
        f.ratio !== undefined ? `${(f.ratio * 100).toFixed(1)}% of ${f.baseline}` : ""
      } | ${f.target ? `${f.target} ${f.met ? "✓" : "✗"}` : ""} |`,
    );
  }
  return `${lines.join("\n")}\n`;
}

async function main(): Promise<void> {
  progress(`rounds ${ROUNDS}, scale ${SCALE}`);
  const figures: Figure[] = [];
  if (want("baselines")) {
    figures.push(await pgInsertBaseline());
    figures.push(...(await natsBaselines()));
    // With the status reads, the trivial call is measured in turn with them (readFigures).
    if (!want("reads")) figures.push(await connectBaseline());
  }
  if (want("migrations") || want("doses") || want("reads")) {
    const system = await startSystem();
    try {
      if (want("migrations")) figures.push(...(await migrationFigures(system)));
      if (want("doses")) figures.push(await doseFigure(system));
      if (want("reads")) figures.push(...(await readFigures(system)));
    } finally {
      await stopSystem(system);
    }
  }
  if (want("log")) {
    figures.push(...(await logFigures()));
    figures.push(...(await mixedRebuildFigures()));
  }
  if (want("reconcile")) figures.push(...(await reconcileFigures()));

  // Baselines first, in the order of the parts that measure them, then the headlines.
  const BASELINES = ["pg_commits", "js_publish", "js_consume", "connect_trivial", "naive_pipeline"];
  const rank = (f: Figure) => {
    const b = BASELINES.indexOf(f.id);
    return b >= 0 ? b : BASELINES.length;
  };
  figures.sort((a, b) => rank(a) - rank(b));
  const by = new Map(figures.map((f) => [f.id, f]));
  const relate = (id: string, baseline: string, target?: string, met?: (f: Figure) => boolean) => {
    const f = by.get(id);
    const b = by.get(baseline);
    if (!f) return;
    if (b) {
      f.baseline = baseline;
      f.ratio = f.median / b.median;
    }
    if (target && met) {
      f.target = target;
      f.met = met(f);
    }
  };
  relate("migrations", "naive_pipeline", "≥ 1,000/s (aim 2,000)", (f) => f.median >= 1000);
  relate("doses", "pg_commits");
  relate("status_reads", "connect_trivial", "≥ 80% of trivial call", (f) => (f.ratio ?? 0) >= 0.8);
  relate("verify", "pg_commits", "≥ 100,000 events/s", (f) => f.median >= 100_000);
  relate("rebuild", "pg_commits", "≥ 100,000 events/s", (f) => f.median >= 100_000);
  relate("rebuild_mixed", "pg_commits", "≥ 100,000 events/s", (f) => f.median >= 100_000);
  relate("rebuild_refill", "pg_commits", "≥ 100,000 events/s", (f) => f.median >= 100_000);
  relate("rebuild_mixed_refill", "pg_commits", "≥ 100,000 events/s", (f) => f.median >= 100_000);
  const sync = by.get("reconcile_sync");
  if (sync) {
    sync.target = "< 10 s, < 300 MB";
    sync.met = sync.median < 10 && (sync.extra.peak_rss_increase_mb ?? 0) < 300;
  }

  const dir = resolve(process.env.EVC_BENCH_OUT ?? "bench-results");
  mkdirSync(dir, { recursive: true });
  const result = {
    at: new Date().toISOString(),
    node: process.version,
    rounds: ROUNDS,
    scale: SCALE,
    seconds: (Date.now() - t0) / 1000,
    figures,
  };
  writeFileSync(join(dir, "bench.json"), `${JSON.stringify(result, null, 2)}\n`);
  const md = markdown(figures);
  writeFileSync(join(dir, "bench.md"), md);
  process.stdout.write(
    `\n${md}\nwritten to ${join(dir, "bench.json")} and bench.md in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`,
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
