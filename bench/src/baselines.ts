import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { TEST_DATABASE_URL, uniqueName } from "@evc-interop/testing";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import postgres from "postgres";
import { spawnChild, stopChild } from "./children.js";
import { closedLoop, type Figure, figure, pool } from "./measure.js";

import { callRounds, here, NATS_URL, ROUNDS, rounds } from "./settings.js";

/** The machine's own baselines, measured in the same run: PostgreSQL commits, JetStream publish and consume, a trivial Connect call. */

export async function pgInsertBaseline(): Promise<Figure> {
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

/**
 * PostgreSQL's CPU rather than its disk: one backend turning rows into JSON text and hashing
 * them (as chain verification does with each event), rows/s. Commits are bound by the disk, the
 * verification, rebuild and reconciliation figures by CPU: each is divided by a baseline of its
 * own kind, so a machine with a faster disk but the same cores moves neither ratio.
 */
export async function pgCpuBaseline(): Promise<Figure> {
  const rows = 200_000;
  const sql = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
  try {
    const r = await rounds("postgres rows hashed/s (one backend)", ROUNDS, async () => {
      const start = performance.now();
      await sql`SELECT count(*) FROM generate_series(1, ${rows}::int) AS i
        WHERE sha256(convert_to(to_json(i)::text || repeat('x', 400), 'UTF8')) IS NOT NULL`;
      return rows / ((performance.now() - start) / 1000);
    });
    return figure(
      "pg_cpu",
      "PostgreSQL rows turned into JSON text and hashed (SHA-256)/s, one backend (baseline)",
      "rows/s",
      r,
    );
  } finally {
    await sql.end();
  }
}

export async function natsBaselines(): Promise<Figure[]> {
  const nc = await connect({ servers: NATS_URL });
  const jsm = await jetstreamManager(nc);
  const stream = uniqueName("BENCH").toUpperCase();
  await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
  const js = jetstream(nc);
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

export const TRIVIAL_LABEL = "trivial Connect unary calls/s (64 in flight)";

export function trivialFigure(perSecond: number[]): Figure {
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
export async function withTrivialServer<T>(
  use: (call: () => Promise<void>) => Promise<T>,
): Promise<T> {
  const child = spawnChild(process.execPath, [join(here, "trivial-server.js")], {
    stdio: ["ignore", "pipe", "inherit"],
  });
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
    await stopChild(child);
  }
}

/** The trivial-call baseline alone (when the status reads, which measure it too, do not run). */
export async function connectBaseline(): Promise<Figure> {
  return withTrivialServer(async (call) => {
    const [r] = await callRounds([{ label: TRIVIAL_LABEL, call }]);
    return trivialFigure(r?.perSecond ?? []);
  });
}
