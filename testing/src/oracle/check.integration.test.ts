import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { IdentitySchema, IdType } from "@evc-interop/gen/evc/common/v1/identity_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { certificateNumber, newIdentity, startTestHub, type TestHubEnv } from "../harness.js";
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
