#!/usr/bin/env node
import { createClient } from "@connectrpc/connect";
import { ReceiptOutcome } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import { DirectiveService } from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import { transport } from "@evc-interop/testing";
import { type JsMsg, jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import postgres from "postgres";
import { asProvince, type NaiveDirective } from "./naive-pipeline.js";

/**
 * The provinces of the naive migration pipeline (see naive-pipeline.ts), in a process of their
 * own like the reference provinces in the bench. Each directive: one commit, one receipt call,
 * one ack — up to 64 directives at a time per province, as the reference agent. Prints a line
 * when its consumers are running; stops on SIGTERM.
 */
function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
}

const CONCURRENCY = 64;
const stream = env("NAIVE_STREAM");
const sql = postgres(env("NAIVE_DATABASE_URL"), {
  max: Number(env("NAIVE_DB_POOL")),
  onnotice: () => {},
  connection: { search_path: env("NAIVE_SCHEMA") },
});
const nc = await connect({ servers: env("NAIVE_NATS_URL") });
const js = jetstream(nc);
const loops: Promise<void>[] = [];
const stops: (() => void)[] = [];

for (const code of env("NAIVE_PROVINCES").split(",")) {
  const hub = createClient(DirectiveService, transport(env("NAIVE_HUB_URL"), [asProvince(code)]));
  const handle = async (m: JsMsg): Promise<void> => {
    const d = m.json<NaiveDirective>();
    if (d.kind === "s") {
      await sql`UPDATE records SET state = 'SUSPENDED' WHERE province = ${code} AND person = ${d.person}`;
    } else if (d.kind === "a") {
      await sql`INSERT INTO records (province, person, state) VALUES (${code}, ${d.person}, 'ACTIVE')
        ON CONFLICT (province, person) DO UPDATE SET state = 'ACTIVE'`;
    }
    if (d.kind !== "c") {
      await hub.submitReceipts({
        receipts: [
          { directiveId: `${d.kind}:${d.migration}`, attempt: 1, outcome: ReceiptOutcome.APPLIED },
        ],
      });
    }
    m.ack();
  };
  const consumer = await js.consumers.get(stream, `p${code}`);
  const messages = await consumer.consume({ max_messages: CONCURRENCY * 2 });
  stops.push(() => messages.stop());
  loops.push(
    (async () => {
      const inFlight = new Set<Promise<void>>();
      for await (const m of messages) {
        const task = handle(m).catch((err: unknown) => {
          console.error(`naive province ${code}:`, err);
          m.nak();
        });
        inFlight.add(task);
        void task.finally(() => inFlight.delete(task));
        if (inFlight.size >= CONCURRENCY) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
    })(),
  );
}
process.stdout.write("ready\n");
process.once("SIGTERM", () => {
  for (const stop of stops) stop();
  void Promise.all(loops)
    .then(() => nc.close())
    .then(() => sql.end())
    .then(() => process.exit(0));
});
