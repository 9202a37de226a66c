import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { RecordContentsSchema } from "@evc-interop/gen/evc/common/v1/record_pb";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { ReceiptOutcome, ReceiptSchema } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import {
  MigrationService,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import {
  closeTestProvince,
  controlTransport,
  newIdentity,
  startTestHub,
  startTestProvince,
  type TestHubEnv,
  until,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Province } from "./province.js";

/**
 * Seen in a 300-drill run: one receipt the hub refused as invalid (a suspension carrying a
 * record without identity) made the hub refuse every batch it was in, so no receipt of that
 * province reached the hub again — every migration into or out of it hung. Now the invalid
 * receipt is set aside (poison, alarmed) and the others are recorded.
 */
let env: TestHubEnv;
let from: Province;
let to: Province;

beforeAll(async () => {
  env = await startTestHub();
  from = await startTestProvince(env, "110000");
  to = await startTestProvince(env, "510000");
});

afterAll(async () => {
  for (const p of [from, to]) if (p) await closeTestProvince(p);
  await env?.close();
});

describe("an invalid receipt among valid ones", () => {
  it("is dead-lettered with an alarm; the province's other receipts still reach the hub", async () => {
    // A receipt the hub refuses as invalid, first in the province's queue.
    const bad = create(ReceiptSchema, {
      directiveId: randomUUID(),
      attempt: 1,
      outcome: ReceiptOutcome.APPLIED,
      result: {
        case: "suspended",
        value: { record: create(RecordContentsSchema, { recordId: "rec-without-identity" }) },
      },
    });
    await to.sql`INSERT INTO inbox (directive_id, record_id, action, receipt, applied_at)
      VALUES (${bad.directiveId}, 'rec-without-identity', 'suspendForMigration',
        ${toBinary(ReceiptSchema, bad)}, now() - interval '1 hour')`;

    // A migration into the province: its activation receipt goes in the same batch.
    const child = newIdentity("Moving Child");
    await createClient(ControlService, controlTransport(from)).registerRecord({ identity: child });
    const { migrationId } = await createClient(ControlService, controlTransport(to)).migrateIn({
      identity: child,
    });
    const operator = env.client(MigrationService, "operator:ops");
    const state = await until(
      "the migration completed",
      async () => {
        const m = (await operator.getMigration({ migrationId })).migration;
        return m?.state === MigrationState.COMPLETED ? m.state : undefined;
      },
      15_000,
    );
    expect(state).toBe(MigrationState.COMPLETED);

    const poison = await to.sql<{ reason: string }[]>`
      SELECT reason FROM poison WHERE directive_id = ${bad.directiveId}`;
    expect(poison).toHaveLength(1);
    expect(poison[0]?.reason).toContain("suspended.record.identity");
    expect(await to.store.unsubmitted(10)).toEqual([]);
    const metric = await to.metrics.registry.getSingleMetricAsString(
      "evc_province_receipts_dead_lettered_total",
    );
    expect(metric).toMatch(/evc_province_receipts_dead_lettered_total\{province="510000"\} 1$/m);
  });
});
