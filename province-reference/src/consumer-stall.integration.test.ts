import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { type Dose, DoseSchema } from "@evc-interop/gen/evc/common/v1/record_pb";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { DirectiveSchema } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import {
  MigrationService,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { provinceSubject, SIGNATURE_HEADER } from "@evc-interop/runtime";
import {
  activateDirective,
  closeTestProvince,
  controlTransport,
  newDose,
  newIdentity,
  nextDirective,
  startTestHub,
  startTestProvince,
  type TestHubEnv,
  until,
} from "@evc-interop/testing";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Province } from "./province.js";

/**
 * The consumer-stall stories of #14: each ends with the province applying good directives
 * again, and none leaves work retried for ever.
 */
let env: TestHubEnv;
let nc: NatsConnection;
let bj: Province;
let gd: Province;
const BJ = "110000";
const GD = "440000";

beforeAll(async () => {
  env = await startTestHub({ consumerAckWaitMs: 1000, redeliverAfterMs: 500 });
  bj = await startTestProvince(env, BJ, { gapHoldMs: 2000 });
  gd = await startTestProvince(env, GD);
  nc = await connect({ servers: env.config.natsUrl });
});

afterAll(async () => {
  await nc?.close();
  for (const p of [bj, gd]) if (p) await closeTestProvince(p);
  await env?.close();
});

const control = (p: Province) => createClient(ControlService, controlTransport(p));
/** A directive's bytes with the hub's signature, as the relay would publish them. */
const signed = (bytes: Uint8Array): [Uint8Array, { headers: MsgHdrs }] => {
  const h = headers();
  h.set(SIGNATURE_HEADER, env.signer.sign(bytes));
  return [bytes, { headers: h }];
};
const subject = () =>
  provinceSubject({ ...env.config, duplicateWindowMs: env.config.duplicateWindowMs }, BJ);

/** A person owned by Beijing and a dose given in Guangdong: the hub routes it to Beijing. */
async function doseRoutedToBeijing(): Promise<{ recordId: string; dose: Dose }> {
  const identity = newIdentity();
  const { recordId } = await control(bj).registerRecord({ identity });
  const dose = newDose(GD);
  const res = await control(gd).recordDose({ identity, dose });
  expect(res.reportedToHub).toBe(true);
  return { recordId, dose };
}

async function arrives(recordId: string, dose: Dose, ms = 20_000): Promise<void> {
  await until(
    `dose ${dose.doseId} at Beijing`,
    async () => {
      const [r] =
        await bj.sql`SELECT 1 FROM doses WHERE record_id = ${recordId} AND dose_id = ${dose.doseId}`;
      return r ? true : undefined;
    },
    ms,
  );
}

async function poisonCount(like: string): Promise<number> {
  const [r] = await bj.sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM poison WHERE reason LIKE ${like}`;
  return r?.n ?? 0;
}

describe("a directive consumer that cannot be stalled", () => {
  it("records poison once, even on a server that ignores term(), and goes on", async () => {
    const garbage = new TextEncoder().encode(`not a directive ${randomUUID()}`);
    await jetstream(nc).publish(subject(), garbage);
    await until("the poison recorded", async () =>
      (await bj.sql`SELECT 1 FROM poison WHERE payload = ${garbage}`).length ? true : undefined,
    );
    // Three ack_waits later it has not come back to be stored again.
    await new Promise((r) => setTimeout(r, 3500));
    const rows = await bj.sql`SELECT 1 FROM poison WHERE payload = ${garbage}`;
    expect(rows.length).toBe(1);
    const { recordId, dose } = await doseRoutedToBeijing();
    await arrives(recordId, dose);
  });

  it("a thousand directives with a sequence gap block nothing, and are dead-lettered after the hold", async () => {
    const before = await poisonCount("sequence gap%");
    const js = jetstream(nc);
    const gaps = Array.from({ length: 1000 }, () => {
      const base = activateDirective(BJ);
      return nextDirective(base, 5n, {
        case: "appendDose",
        value: { dose: create(DoseSchema, newDose(GD)) },
      });
    });
    await Promise.all(
      gaps.map((d) => js.publish(subject(), ...signed(toBinary(DirectiveSchema, d)))),
    );
    // A good directive published after all of them is applied within seconds.
    const { recordId, dose } = await doseRoutedToBeijing();
    await arrives(recordId, dose, 15_000);
    await until(
      "the gap directives dead-lettered",
      async () => ((await poisonCount("sequence gap%")) - before >= 1000 ? true : undefined),
      30_000,
    );
    const [parked] = await bj.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM parked`;
    expect(parked?.n).toBe(0);
  });

  it("a directive that arrives before its predecessor waits parked and is applied after it", async () => {
    const first = activateDirective(BJ);
    const second = nextDirective(first, 2n, {
      case: "appendDose",
      value: { dose: create(DoseSchema, newDose(GD)) },
    });
    const js = jetstream(nc);
    await js.publish(subject(), ...signed(toBinary(DirectiveSchema, second)));
    await until("the second parked", async () =>
      (await bj.sql`SELECT 1 FROM parked WHERE directive_id = ${second.directiveId}`).length
        ? true
        : undefined,
    );
    await js.publish(subject(), ...signed(toBinary(DirectiveSchema, first)));
    await until("both applied", async () => {
      const rows = await bj.sql`
        SELECT 1 FROM inbox WHERE directive_id = ANY(${[first.directiveId, second.directiveId]}::uuid[])`;
      return rows.length === 2 ? true : undefined;
    });
    const [rec] = await bj.sql<{ last_sequence: string }[]>`
      SELECT last_sequence FROM records WHERE record_id = ${first.recordId}`;
    expect(Number(rec?.last_sequence)).toBe(2);
  });

  it("records are bounded so the largest still travels; a dose beyond the bound is refused at its source", async () => {
    const identity = newIdentity();
    const wide = (c: string, n: number) => c.repeat(n);
    const doses = Array.from({ length: 1000 }, (_, i) =>
      newDose(BJ, {
        doseId: `${String(i).padStart(4, "0")}-${wide("x", 59)}`,
        vaccineCode: wide("\u{1D4B1}", 32),
        siteCode: wide("\u{1D4B1}", 64),
        lotNumber: wide("\u{1D4B1}", 64),
      }),
    );
    const tooMany = await control(bj)
      .registerRecord({ identity, doses: [...doses, newDose(BJ)] })
      .catch((err: unknown) => ConnectError.from(err));
    expect(tooMany instanceof ConnectError && tooMany.code).toBe(Code.InvalidArgument);
    await control(bj).registerRecord({ identity, doses });
    const full = await control(gd)
      .recordDose({ identity, dose: newDose(GD) })
      .catch((err: unknown) => ConnectError.from(err));
    expect(full instanceof ConnectError && full.code).toBe(Code.ResourceExhausted);
    // The largest record migrates: its activation fits the bus.
    const { migrationId } = await control(gd).migrateIn({ identity });
    await until(
      "the migration completed",
      async () => {
        const { migration } = await env
          .client(MigrationService, "operator:ops")
          .getMigration({ migrationId });
        return migration?.state === MigrationState.COMPLETED ? true : undefined;
      },
      45_000,
    );
  });

  it("a directive larger than the bus takes is dead-lettered at once, never retried", async () => {
    const huge = new Uint8Array(2 * 1024 * 1024);
    const id = randomUUID();
    await env.hub.sql`
      INSERT INTO directives (directive_id, province, person_key, record_id, record_sequence,
        action, attempt, payload, created_at, next_publish_at)
      VALUES (${id}, ${BJ}, 'test-oversized', ${randomUUID()}, 1, 'appendDose', 1, ${huge}, now(), now())`;
    const row = await until("the oversized directive dead-lettered", async () => {
      const [r] = await env.hub.sql<
        { state: string; disposition: string; publish_count: number }[]
      >`
        SELECT state, disposition, publish_count FROM directives WHERE directive_id = ${id}`;
      return r?.state === "FAILED" ? r : undefined;
    });
    expect(row).toEqual({ state: "FAILED", disposition: "TOO_LARGE", publish_count: 0 });
    const { recordId, dose } = await doseRoutedToBeijing();
    await arrives(recordId, dose);
  });
  // Last: it takes the stream (and every consumer on it) away from the tests after it.
  it("after the bus lost its stream, the hub provisions it again and delivery resumes", async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(env.config.stream);
    const { recordId, dose } = await doseRoutedToBeijing();
    await arrives(recordId, dose, 30_000);
  });
});
