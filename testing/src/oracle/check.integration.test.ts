import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { IdentitySchema, IdType } from "@evc-interop/gen/evc/common/v1/identity_pb";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { DoseService } from "@evc-interop/gen/evc/national/v1/dose_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  certificateNumber,
  newDose,
  newIdentity,
  startTestHub,
  type TestHubEnv,
} from "../harness.js";
import { closeTestProvince, controlTransport, startTestProvince } from "../provinces.js";
import { until } from "../until.js";
import { checkOracle } from "./check.js";
import { Ledger } from "./ledger.js";

/**
 * The oracle checks I1 per person across documents: a child the driver knows under the birth
 * certificate and the resident ID who is two persons at the hub is a finding.
 */
let env: TestHubEnv;

beforeAll(async () => {
  env = await startTestHub();
});

afterAll(async () => {
  await env?.close();
});

async function child(knownAs: boolean): Promise<{ ledger: Ledger }> {
  const residentId = newIdentity("Oracle Child");
  const birthCertificate = create(IdentitySchema, {
    ...residentId,
    idType: IdType.BIRTH_CERTIFICATE,
    idNumber: `O${randomUUID().replaceAll("-", "").slice(0, 10).toUpperCase()}`,
  });
  const records = env.client(RecordService, "province:110000");
  for (const [identity, evidence] of [
    [birthCertificate, []],
    [residentId, knownAs ? [birthCertificate] : []],
  ] as const)
    await records.registerRecord({
      idempotencyKey: randomUUID(),
      identity,
      certificateNumber: certificateNumber("110000"),
      knownAs: [...evidence],
    });
  const ledger = new Ledger();
  ledger.registered(birthCertificate.idNumber, "110000", true);
  ledger.linked(residentId.idNumber, birthCertificate.idNumber);
  return { ledger };
}

describe("the oracle, along a life", () => {
  it("finds a child registered again under the resident ID without evidence: two persons", async () => {
    const { ledger } = await child(false);
    const report = await checkOracle(ledger, env.hub.sql, []);
    expect(report.findings.filter((f) => f.rule === "I1").map((f) => f.detail)).toEqual([
      expect.stringMatching(/is two persons at the hub/),
    ]);
  });

  it("finds nothing when the resident ID was linked to the child", async () => {
    const { ledger } = await child(true);
    expect((await checkOracle(ledger, env.hub.sql, [])).findings).toEqual([]);
  });
});

describe("the oracle, along a recovery", () => {
  it("excuses a directive missing from the inbox of a province set back after it was answered, and only that", async () => {
    const province = await startTestProvince(env, "510000");
    try {
      const identity = newIdentity("Recovered Child");
      const control = createClient(ControlService, controlTransport(province));
      const { recordId } = await control.registerRecord({ identity });
      await env
        .client(DoseService, "province:440000")
        .reportDose({ identity, dose: newDose("440000") });
      const answeredAt = await until("the dose directive answered", async () => {
        const [d] = await env.hub.sql<{ acknowledged_at: Date | null }[]>`
          SELECT acknowledged_at FROM directives WHERE record_id = ${recordId}`;
        return d?.acknowledged_at ?? undefined;
      });
      const ledger = new Ledger();
      ledger.registered(identity.idNumber, "510000", true);
      const i4 = async (setBackUntil?: Date) =>
        (
          await checkOracle(ledger, env.hub.sql, [
            { code: "510000", sql: province.sql, ...(setBackUntil ? { setBackUntil } : {}) },
          ])
        ).findings.filter((f) => f.rule === "I4");
      expect(await i4()).toEqual([]);
      // The store loses the directive it applied (its effect stays: only the inbox row goes).
      await province.sql`DELETE FROM inbox`;
      expect(await i4()).toEqual([
        expect.objectContaining({ detail: expect.stringMatching(/inbox 0 times/) }),
      ]);
      // Set back (and started again) after the answer: forgotten, not a breach.
      expect(await i4(new Date(answeredAt.getTime() + 1000))).toEqual([]);
      // Set back before the answer: the province answered it afterwards and must hold it.
      expect(await i4(new Date(answeredAt.getTime() - 1000))).toHaveLength(1);
      // Given up on by the hub, no receipt (its saga ended), published before the set-back:
      // it may have been applied and lost with the store; published after, it must be here.
      await env.hub.sql`UPDATE directives SET state = 'SUPERSEDED', receipt = NULL,
        acknowledged_at = NULL, last_published_at = ${answeredAt} WHERE record_id = ${recordId}`;
      expect(await i4(new Date(answeredAt.getTime() + 1000))).toEqual([]);
      expect(await i4(new Date(answeredAt.getTime() - 1000))).toHaveLength(1);
    } finally {
      await closeTestProvince(province);
    }
  });
});
