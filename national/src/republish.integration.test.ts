import { MigrationService } from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import {
  certificateNumber,
  FakeProvince,
  newIdentity,
  startTestHub,
  type TestHubEnv,
  until,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * Seen in a drill (seed 31238): a province applied a directive, acknowledged it on the bus and
 * lost its database before the receipt left. The hub republished the directive, but with the
 * same Nats-Msg-Id, and JetStream dropped every copy inside its duplicate window (two minutes
 * by default): the record's next directive waited on a gap for as long. A republish is a new
 * message now; a copy published again after a crash (same publish count) is still dropped.
 */
let env: TestHubEnv;
let src: FakeProvince;
let dst: FakeProvince;

beforeAll(async () => {
  env = await startTestHub({
    redeliverAfterMs: 200,
    redeliverMaxMs: 400,
    suspendDeadlineMs: 60_000,
  });
  src = await FakeProvince.start(env, "110000");
  dst = await FakeProvince.start(env, "440000");
});

afterAll(async () => {
  await src?.stop();
  await dst?.stop();
  await env?.close();
});

describe("a directive acknowledged on the bus but never answered", () => {
  it("is delivered again by the hub's republish, inside the bus's duplicate window", async () => {
    const identity = newIdentity();
    const cert = certificateNumber(src.code);
    await env.client(RecordService, `province:${src.code}`).registerRecord({
      idempotencyKey: `r-${cert}`,
      identity,
      certificateNumber: cert,
    });
    src.answer = () => undefined;
    const { migration } = await env
      .client(MigrationService, `province:${dst.code}`)
      .requestMigration({ idempotencyKey: `m-${cert}`, identity });
    const id = migration?.migrationId ?? "";
    const copies = await until(
      "the suspension delivered twice",
      async () => {
        const n = src.received.filter((d) => d.correlationId === id).length;
        return n >= 2 ? n : undefined;
      },
      5_000,
    );
    expect(copies).toBeGreaterThanOrEqual(2);
    const ids = new Set(
      src.received.filter((d) => d.correlationId === id).map((d) => d.directiveId),
    );
    expect(ids.size).toBe(1);
  });
});
