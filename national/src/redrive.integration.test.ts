import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { AuditService } from "@evc-interop/gen/evc/national/v1/audit_service_pb";
import { DirectiveState } from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import { DoseService } from "@evc-interop/gen/evc/national/v1/dose_service_pb";
import { OperatorService } from "@evc-interop/gen/evc/national/v1/operator_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import {
  certificateNumber,
  FakeProvince,
  newDose,
  newIdentity,
  startTestHub,
  type TestHubEnv,
  until,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * #18: dead letters are not final. A directive given up while its province was away is sent
 * again by an operator once the province is back, with an event naming them; the province
 * applies it once.
 */
let env: TestHubEnv;

beforeAll(async () => {
  env = await startTestHub({ maxPublishes: 2, redeliverAfterMs: 100, redeliverMaxMs: 200 });
});

afterAll(async () => {
  await env?.close();
});

const state = async (id: string) => {
  const [r] = await env.hub.sql<{ state: string; publish_count: number }[]>`
    SELECT state, publish_count FROM directives WHERE directive_id = ${id}`;
  return r;
};

describe("re-driving a dead-lettered directive", () => {
  it("sends it again once its province is back; only an operator may, and says why", async () => {
    // Sichuan owns the person and runs no system: the dose routed to it is given up.
    const identity = newIdentity();
    await env.client(RecordService, "province:510000").registerRecord({
      idempotencyKey: randomUUID(),
      identity,
      certificateNumber: certificateNumber("510000"),
    });
    const dose = newDose("440000");
    await env.client(DoseService, "province:440000").reportDose({ identity, dose });
    const { directive_id: id } = await until("the dose's directive dead-lettered", async () => {
      const [r] = await env.hub.sql<{ directive_id: string }[]>`
        SELECT directive_id::text FROM directives
        WHERE province = '510000' AND action = 'appendDose' AND state = 'FAILED'`;
      return r;
    });

    const refusal = (who: string, directiveId: string) =>
      env
        .client(OperatorService, who)
        .redriveDirective({ directiveId, reason: "t9" })
        .then(
          () => "allowed",
          (e: unknown) => Code[ConnectError.from(e).code],
        );
    expect(await refusal("viewer:watch", id)).toBe("PermissionDenied");
    expect(await refusal("province:510000", id)).toBe("PermissionDenied");
    expect(await refusal("operator:ops", randomUUID())).toBe("NotFound");
    expect(await state(id)).toEqual({ state: "FAILED", publish_count: 2 });

    // Sichuan's system is back; the operator re-drives the dose.
    const sichuan = await FakeProvince.start(env, "510000");
    try {
      const { directive } = await env
        .client(OperatorService, "operator:ops")
        .redriveDirective({ directiveId: id, reason: "ticket 9: 510000 is back" });
      expect(directive?.directive?.directiveId).toBe(id);
      // On its way again (or, the relay and the province being quick, already answered).
      expect(directive?.state).not.toBe(DirectiveState.FAILED);
      await until("the re-driven dose answered", async () =>
        (await state(id))?.state === "ACKNOWLEDGED" ? true : undefined,
      );
      const received = sichuan.received.filter((d) => d.directiveId === id);
      expect(received.length).toBeGreaterThanOrEqual(1);
      // Now acknowledged, it is not re-driven again.
      expect(await refusal("operator:ops", id)).toBe("FailedPrecondition");
    } finally {
      await sichuan.stop();
    }
    const { events } = await env
      .client(AuditService, "operator:ops")
      .getPersonHistory({ identity });
    const redriven = events.find((e) => e.type === "DirectiveRedriven");
    expect(redriven?.data).toMatchObject({
      directiveId: id,
      by: "operator:ops",
      reason: "ticket 9: 510000 is back",
    });
  });
});
