import { randomUUID } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createClient,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  DirectiveService,
  ReceiptDisposition,
  type SubmitReceiptsRequest,
  SubmitReceiptsResponseSchema,
} from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import {
  MigrationService,
  type RequestMigrationRequest,
  RequestMigrationResponseSchema,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { listen } from "@evc-interop/runtime";
import { dropSchema, TEST_DATABASE_URL, transport, uniqueName } from "@evc-interop/testing";
import { AckPolicy, type JetStreamClient, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import postgres from "postgres";
import { spawnChild, stopChild } from "./children.js";
import { cpuPerOp, cpuSnapshot, type Figure, figure, median, pool, until } from "./measure.js";

/**
 * The naive migration pipeline the migration target is stated against: what a hub and its
 * provinces cost on this machine when every step is done one at a time, with no batching and
 * no business logic. Per migration: 3 Connect calls (the request, the source's receipt, the
 * target's receipt), 4 commits (the hub records the request, the source suspends, the target
 * activates, the hub records the completion), 3 JetStream publishes awaited for their ack
 * (suspend, activate, completed) and 3 consumes acked one by one. Same layout as the real
 * system in the bench: the hub side and the load generator in this process, the four provinces
 * together in a child process (`naive-province.ts`), the same PostgreSQL and NATS, the same
 * wire format (the real services' messages, binary Connect over HTTP/2), the same number of
 * requests in flight.
 */

const here = dirname(fileURLToPath(import.meta.url));

/** Header naming the calling province (the real hub authenticates a bearer token instead). */
const PROVINCE_HEADER = "x-naive-province";

/** Interceptor making calls as `code` to the naive hub. */
export function asProvince(code: string): Interceptor {
  return (next) => (req) => {
    req.header.set(PROVINCE_HEADER, code);
    return next(req);
  };
}

/** What the naive hub publishes to a province; the province answers with `kind:migrationId`. */
export interface NaiveDirective {
  kind: "s" | "a" | "c";
  migration: string;
  person: string;
}

export interface NaiveOptions {
  migrations: number;
  inFlight: number;
  provinces: string[];
  natsUrl: string;
  /** PostgreSQL connections of the naive hub's pool, and of its provinces' (one process). */
  dbPool: number;
  provincesDbPool: number;
}

/** A running naive pipeline: rounds of `migrations` migrations on demand, then stopped. */
export interface NaivePipeline {
  /**
   * Round `r` (distinct persons per round): its migrations/s and CPU ms per migration (both up
   * to the last completion); returns once `settle` has, after it.
   */
  round(
    r: number,
    settle: () => Promise<void>,
  ): Promise<{ rate: number; cpu: Record<string, number> }>;
  /** The provinces' process. */
  pid: number | undefined;
  stop(): Promise<void>;
}

/** The naive pipeline's figure from its timed rounds (the CPU split of the median round). */
export function naiveFigure(
  o: NaiveOptions,
  rounds: { rate: number; cpu: Record<string, number> }[],
): Figure {
  const rates = rounds.map((r) => r.rate);
  return figure(
    "naive_pipeline",
    `Naive migration pipeline, ${o.inFlight} in flight: per migration 3 Connect calls, 4 commits, 3 JetStream publishes with ack, 3 consumes with ack, no batching (baseline)`,
    "migrations/s",
    rates,
    rounds[rates.indexOf(median(rates))]?.cpu ?? {},
  );
}

/** Sets up the naive hub (here), its provinces (a child process), tables and stream. */
export async function startNaivePipeline(o: NaiveOptions): Promise<NaivePipeline> {
  const schema = uniqueName("bench_naive");
  const stream = schema.toUpperCase();
  const sql = postgres(TEST_DATABASE_URL, {
    max: o.dbPool,
    onnotice: () => {},
    connection: { search_path: schema },
  });
  const nc = await connect({ servers: o.natsUrl });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  let completed = 0;
  let lastCompletion = 0;

  const handler = connectNodeAdapter({
    routes: (router: ConnectRouter) => {
      router.service(MigrationService, {
        requestMigration: (req, ctx) => requestMigration(req, ctx),
      });
      router.service(DirectiveService, {
        submitReceipts: (req, ctx) => submitReceipts(req, ctx),
      });
    },
  });

  async function requestMigration(req: RequestMigrationRequest, ctx: HandlerContext) {
    const target = caller(ctx);
    const person = req.identity?.idNumber ?? "";
    const id = randomUUID();
    const [row] = await sql<{ source: string }[]>`
      INSERT INTO migrations (id, person, source, target)
      SELECT ${id}, id, owner, ${target} FROM persons WHERE id = ${person}
      RETURNING source`;
    if (!row) throw new ConnectError(`no person ${person}`, Code.NotFound);
    await publish(js, stream, row.source, { kind: "s", migration: id, person });
    return create(RequestMigrationResponseSchema, {
      migration: { migrationId: id, sourceProvinceCode: row.source, targetProvinceCode: target },
    });
  }

  async function submitReceipts(req: SubmitReceiptsRequest, ctx: HandlerContext) {
    caller(ctx);
    const results = [];
    for (const r of req.receipts) {
      const [kind, id] = r.directiveId.split(":");
      if (kind === "s") {
        const [m] = await sql<{ person: string; target: string }[]>`
          SELECT person, target FROM migrations WHERE id = ${id ?? ""}`;
        if (!m) throw new ConnectError(`no migration ${id}`, Code.NotFound);
        await publish(js, stream, m.target, { kind: "a", migration: id ?? "", person: m.person });
      } else if (kind === "a") {
        const [m] = await sql<{ person: string; source: string }[]>`
          WITH m AS (
            UPDATE migrations SET completed_at = clock_timestamp()
            WHERE id = ${id ?? ""} AND completed_at IS NULL
            RETURNING person, source, target)
          UPDATE persons p SET owner = m.target FROM m WHERE p.id = m.person
          RETURNING m.person, m.source`;
        if (m) {
          completed++;
          lastCompletion = performance.now();
          await publish(js, stream, m.source, { kind: "c", migration: id ?? "", person: m.person });
        }
      } else {
        throw new ConnectError(`unknown directive ${r.directiveId}`, Code.InvalidArgument);
      }
      results.push({ directiveId: r.directiveId, disposition: ReceiptDisposition.RECORDED });
    }
    return create(SubmitReceiptsResponseSchema, { results });
  }

  let server: Awaited<ReturnType<typeof listen>> | undefined;
  let child: ReturnType<typeof spawnChild> | undefined;
  const stop = async () => {
    if (child) await stopChild(child);
    await server?.close(0);
    await jsm.streams.delete(stream).catch(() => undefined);
    await nc.close();
    await sql.end();
    await dropSchema(schema);
  };
  try {
    await sql`CREATE SCHEMA ${sql(schema)}`;
    await sql`CREATE TABLE persons (id text PRIMARY KEY, owner text NOT NULL)`;
    await sql`CREATE TABLE migrations (
      id uuid PRIMARY KEY, person text NOT NULL, source text NOT NULL, target text NOT NULL,
      requested_at timestamptz NOT NULL DEFAULT clock_timestamp(), completed_at timestamptz)`;
    await sql`CREATE TABLE records (
      province text, person text, state text NOT NULL, PRIMARY KEY (province, person))`;
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
    for (const code of o.provinces) {
      await jsm.consumers.add(stream, {
        durable_name: `p${code}`,
        ack_policy: AckPolicy.Explicit,
        filter_subject: `${stream}.${code}`,
        max_ack_pending: 10_000,
      });
    }
    const hub = await listen(handler, "127.0.0.1", 0);
    server = hub;
    const provinces = spawnChild(process.execPath, [join(here, "naive-province.js")], {
      env: {
        ...process.env,
        NAIVE_DATABASE_URL: TEST_DATABASE_URL,
        NAIVE_SCHEMA: schema,
        NAIVE_NATS_URL: o.natsUrl,
        NAIVE_STREAM: stream,
        NAIVE_PROVINCES: o.provinces.join(","),
        NAIVE_HUB_URL: hub.url,
        NAIVE_DB_POOL: String(o.provincesDbPool),
      },
      stdio: ["ignore", "pipe", "inherit"],
    });
    child = provinces;
    await new Promise<void>((resolve, reject) => {
      provinces.stdout?.once("data", () => resolve());
      provinces.once("exit", (code) => reject(new Error(`naive provinces exited with ${code}`)));
    });
    const clients = o.provinces.map((code) =>
      createClient(MigrationService, transport(hub.url, [asProvince(code)])),
    );
    const round = async (r: number, settle: () => Promise<void>) => {
      const people = Array.from({ length: o.migrations }, (_, i) => ({
        id: `r${r}-${i}`,
        owner: i % o.provinces.length,
      }));
      const owners = people.map((p) => o.provinces[p.owner] as string);
      await sql`INSERT INTO persons (id, owner)
        SELECT * FROM unnest(${people.map((p) => p.id)}::text[], ${owners}::text[])`;
      await sql`INSERT INTO records (province, person, state)
        SELECT o, p, 'ACTIVE' FROM unnest(${owners}::text[], ${people.map((p) => p.id)}::text[]) AS t(o, p)`;
      await sql`ANALYZE persons, records, migrations`;
      const wanted = completed + o.migrations;
      const before = cpuSnapshot({ hub: process.pid, provinces: provinces.pid });
      const start = performance.now();
      await pool(people, o.inFlight, async (p, i) => {
        const target = (p.owner + 1 + (i % (o.provinces.length - 1))) % o.provinces.length;
        await (clients[target] as (typeof clients)[number]).requestMigration({
          idempotencyKey: `naive-${p.id}`,
          identity: { idNumber: p.id },
        });
      });
      // The rate runs to the last completion's own time, not to when this poll noticed it.
      await until("naive pipeline migrations completed", async () => completed >= wanted, 300_000);
      const cpu = cpuPerOp(
        before,
        cpuSnapshot({ hub: process.pid, provinces: provinces.pid }),
        o.migrations,
      );
      await settle();
      return { rate: o.migrations / ((lastCompletion - start) / 1000), cpu };
    };
    return { round, stop, pid: provinces.pid };
  } catch (err) {
    await stop();
    throw err;
  }

  function caller(ctx: HandlerContext): string {
    const code = ctx.requestHeader.get(PROVINCE_HEADER);
    if (!code || !o.provinces.includes(code)) {
      throw new ConnectError(`${PROVINCE_HEADER} must name a province`, Code.Unauthenticated);
    }
    return code;
  }
}

async function publish(
  js: JetStreamClient,
  stream: string,
  province: string,
  d: NaiveDirective,
): Promise<void> {
  await js.publish(`${stream}.${province}`, JSON.stringify(d), {
    msgID: `${d.kind}:${d.migration}`,
  });
}
