import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { ReceiptOutcome, ReceiptSchema } from "@evc-interop/gen/evc/directive/v1/directive_pb";
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
 * A certificate number is issued once. Found in review: a province reusing one (or an operator's
 * typo) had the hub write the new certificate over another child's row in its projection — that
 * child's status, owner and record status replaced, the phones told the wrong thing.
 */
let env: TestHubEnv;

beforeAll(async () => {
  env = await startTestHub();
});

afterAll(async () => {
  await env?.close();
});

const register = (province: string, certificate: string, name: string) =>
  env.client(RecordService, `province:${province}`).registerRecord({
    idempotencyKey: randomUUID(),
    identity: newIdentity(name),
    certificateNumber: certificate,
  });

async function certificateRow(number: string) {
  const [r] = await env.hub.sql<{ record_id: string; status: string; owner_province: string }[]>`
    SELECT record_id, status, owner_province FROM certificates WHERE certificate_number = ${number}`;
  return r;
}

describe("a certificate number another child holds", () => {
  it("is refused at registration, and that child's certificate is untouched", async () => {
    const number = certificateNumber("110000");
    const first = await register("110000", number, "First Child");
    const before = await certificateRow(number);
    const again = await register("110000", number, "Second Child").catch((e: unknown) =>
      ConnectError.from(e),
    );
    expect(again instanceof ConnectError && [again.code, again.rawMessage]).toEqual([
      Code.AlreadyExists,
      expect.stringMatching(/certificate_number|another person's/),
    ]);
    expect(await certificateRow(number)).toEqual(before);
    expect(before?.record_id).toBe(first.recordId);
  });

  it("two children registered at once with one new number: one is refused, every time", async () => {
    for (let round = 0; round < 8; round++) {
      const number = certificateNumber("110000");
      const results = await Promise.all(
        ["Racing One", "Racing Two"].map((name) =>
          register("110000", number, name).then(
            (r) => r.recordId,
            (e: unknown) => ConnectError.from(e).code,
          ),
        ),
      );
      const won = results.filter((r) => typeof r === "string");
      expect(won.length).toBe(1);
      expect(results.filter((r) => r === Code.AlreadyExists).length).toBe(1);
      expect((await certificateRow(number))?.record_id).toBe(won[0]);
    }
  });

  it("is refused in an activation receipt, naming the field; the migration waits on", async () => {
    const taken = certificateNumber("440000");
    await register("440000", taken, "Guangdong Child");
    const before = await certificateRow(taken);
    const guangdong = await FakeProvince.start(env, "440000");
    const beijing = await FakeProvince.start(env, "110000");
    try {
      // Guangdong answers the activation with a number it gave another child.
      guangdong.answer = (d) =>
        d.action.case === "activateMigratedRecord"
          ? create(ReceiptSchema, {
              directiveId: d.directiveId,
              attempt: d.attempt,
              appliedAt: timestampFromDate(new Date()),
              outcome: ReceiptOutcome.APPLIED,
              result: { case: "activated", value: { certificateNumber: taken } },
            })
          : guangdong.correctAnswer(d);
      const identity = newIdentity("Moving Child");
      const own = certificateNumber("110000");
      const { recordId } = await env
        .client(RecordService, "province:110000")
        .registerRecord({ idempotencyKey: randomUUID(), identity, certificateNumber: own });
      beijing.records.set(recordId, { identity, doses: [], certificate: own, status: "ACTIVE" });
      const { migration } = await env
        .client(MigrationService, "province:440000")
        .requestMigration({ identity, idempotencyKey: randomUUID() });
      const refused = await until("the receipt refused", async () => guangdong.submitErrors[0]);
      const e = ConnectError.from(refused);
      expect([e.code, e.rawMessage]).toEqual([
        Code.AlreadyExists,
        expect.stringContaining("receipts[0].activated.certificate_number"),
      ]);
      expect(await certificateRow(taken)).toEqual(before);
      const { migration: now } = await env
        .client(MigrationService, "operator:ops")
        .getMigration({ migrationId: migration?.migrationId ?? "" });
      expect(now?.targetCertificateNumber).toBe("");
    } finally {
      await guangdong.stop();
      await beijing.stop();
    }
  });
});
