import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { ErrorDetailSchema, ErrorReason } from "@evc-interop/gen/evc/common/v1/error_details_pb";
import { type Identity, IdentitySchema, IdType } from "@evc-interop/gen/evc/common/v1/identity_pb";
import { CertificateStatus } from "@evc-interop/gen/evc/common/v1/record_pb";
import {
  MigrationService,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import {
  certificateNumber,
  errorOf,
  newIdentity,
  startTestHub,
  type TestHubEnv,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * #27 story 1, as reported: a newborn registered at birth under the birth medical certificate
 * (出生医学证明) and weeks later under the resident ID became two persons with two records and two
 * NORMAL certificates, while every invariant check passed.
 */
let env: TestHubEnv;

beforeAll(async () => {
  env = await startTestHub();
});

afterAll(async () => {
  await env?.close();
});

const records = (code: string) => env.client(RecordService, `province:${code}`);

/** A newborn: the resident ID they will get, and the birth certificate they have now. */
function newborn(): { residentId: Identity; birthCertificate: Identity } {
  const residentId = newIdentity("Newborn Child");
  const birthCertificate = create(IdentitySchema, {
    ...residentId,
    idType: IdType.BIRTH_CERTIFICATE,
    idNumber: `O${Math.floor(Math.random() * 1e9)
      .toString()
      .padStart(9, "0")}`,
  });
  return { residentId, birthCertificate };
}

async function registerAtBirth(child: ReturnType<typeof newborn>, code = "110000") {
  const number = certificateNumber(code);
  const res = await records(code).registerRecord({
    idempotencyKey: randomUUID(),
    identity: child.birthCertificate,
    certificateNumber: number,
  });
  return { recordId: res.recordId, number };
}

async function normalCertificates(recordIds: string[]): Promise<number> {
  const [row] = await env.hub.sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM certificates
    WHERE status = 'NORMAL' AND person_key IN (
      SELECT person_key FROM records WHERE record_id = ANY(${recordIds}::text[]))`;
  return row?.n ?? -1;
}

describe("a child registered under the birth certificate and later the resident ID", () => {
  it("stays one person: the resident ID is linked, the same record answered, every lookup reaches it", async () => {
    const child = newborn();
    const atBirth = await registerAtBirth(child);

    const later = await records("110000").registerRecord({
      idempotencyKey: randomUUID(),
      identity: child.residentId,
      certificateNumber: certificateNumber("110000"),
      knownAs: [child.birthCertificate],
    });
    expect([later.linked, later.recordId, later.certificate?.certificateNumber]).toEqual([
      true,
      atBirth.recordId,
      atBirth.number,
    ]);
    expect(await normalCertificates([atBirth.recordId])).toBe(1);

    // Under either document, from anywhere: the one record.
    for (const identity of [child.residentId, child.birthCertificate]) {
      const located = await records("510000").locateRecord({ identity });
      expect([located.recordId, located.certificate?.status]).toEqual([
        atBirth.recordId,
        CertificateStatus.NORMAL,
      ]);
    }
    // Registered again under the resident ID, with no evidence: the person's record, refused.
    const again = await errorOf(
      records("440000").registerRecord({
        idempotencyKey: randomUUID(),
        identity: child.residentId,
        certificateNumber: certificateNumber("440000"),
      }),
    );
    const [detail] = again?.findDetails(ErrorDetailSchema) ?? [];
    expect([again?.code, detail?.reason, detail?.recordId]).toEqual([
      Code.AlreadyExists,
      ErrorReason.RECORD_EXISTS,
      atBirth.recordId,
    ]);

    // The family moves: the target asks under the resident ID; the record moves, carrying it.
    const { migration } = await env
      .client(MigrationService, "province:440000")
      .requestMigration({ idempotencyKey: randomUUID(), identity: child.residentId });
    expect([migration?.recordId, migration?.sourceProvinceCode, migration?.state]).toEqual([
      atBirth.recordId,
      "110000",
      MigrationState.REQUESTED,
    ]);
  });

  it("registered with the evidence by another province is refused naming the owner, and nothing is linked", async () => {
    const child = newborn();
    const atBirth = await registerAtBirth(child);
    const err = await errorOf(
      records("440000").registerRecord({
        idempotencyKey: randomUUID(),
        identity: child.residentId,
        certificateNumber: certificateNumber("440000"),
        knownAs: [child.birthCertificate],
      }),
    );
    const [detail] = err?.findDetails(ErrorDetailSchema) ?? [];
    expect([err?.code, detail?.ownerProvinceCode, detail?.recordId]).toEqual([
      Code.AlreadyExists,
      "110000",
      atBirth.recordId,
    ]);
    expect(
      (await errorOf(records("440000").locateRecord({ identity: child.residentId })))?.code,
    ).toBe(Code.NotFound);
  });

  it("with a birth date that is not the child's is refused naming the field, and nothing is linked", async () => {
    const child = newborn();
    await registerAtBirth(child);
    const err = await errorOf(
      records("110000").registerRecord({
        idempotencyKey: randomUUID(),
        identity: { ...child.residentId, birthDate: timestampFromDate(new Date("2019-03-01")) },
        certificateNumber: certificateNumber("110000"),
        knownAs: [child.birthCertificate],
      }),
    );
    const [detail] = err?.findDetails(ErrorDetailSchema) ?? [];
    expect([err?.code, detail?.reason, detail?.field]).toEqual([
      Code.FailedPrecondition,
      ErrorReason.IDENTITY_MISMATCH,
      "identity.birth_date",
    ]);
    expect(
      (await errorOf(records("110000").locateRecord({ identity: child.residentId })))?.code,
    ).toBe(Code.NotFound);
  });

  it("linked by concurrent calls is linked once, and every call is answered with the one record", async () => {
    const child = newborn();
    const atBirth = await registerAtBirth(child);
    const answers = await Promise.all(
      Array.from({ length: 6 }, () =>
        records("110000")
          .registerRecord({
            idempotencyKey: randomUUID(),
            identity: child.residentId,
            certificateNumber: certificateNumber("110000"),
            knownAs: [child.birthCertificate],
          })
          .then(
            (r) => r.recordId,
            (e: unknown) => (e instanceof Error ? e.message : String(e)),
          ),
      ),
    );
    // A call that raced the link's own commit may be asked to call again (Aborted); none made
    // a second person.
    for (const a of answers) expect(a === atBirth.recordId || /call again/.test(a), a).toBe(true);
    expect(answers).toContain(atBirth.recordId);
    const [linked] = await env.hub.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM events
      WHERE type = 'DocumentLinked' AND stream_id = (
        SELECT person_key FROM records WHERE record_id = ${atBirth.recordId})`;
    expect(linked?.n).toBe(1);
    expect(await normalCertificates([atBirth.recordId])).toBe(1);
  });

  it("registered first under the resident ID, naming a birth certificate the hub never saw: the birth certificate is theirs too", async () => {
    const child = newborn();
    const first = await records("110000").registerRecord({
      idempotencyKey: randomUUID(),
      identity: child.residentId,
      certificateNumber: certificateNumber("110000"),
      knownAs: [child.birthCertificate],
    });
    expect(first.linked).toBe(false);
    // The registration under the birth certificate arriving late (a retry after a crash, a
    // clinic's old form) finds the child, never a second person.
    const late = await errorOf(
      records("440000").registerRecord({
        idempotencyKey: randomUUID(),
        identity: child.birthCertificate,
        certificateNumber: certificateNumber("440000"),
      }),
    );
    const [detail] = late?.findDetails(ErrorDetailSchema) ?? [];
    expect([late?.code, detail?.recordId]).toEqual([Code.AlreadyExists, first.recordId]);
    const located = await records("510000").locateRecord({ identity: child.birthCertificate });
    expect(located.recordId).toBe(first.recordId);
  });

  it("whose two documents are already two persons is refused naming the other document: they must be merged, never linked over", async () => {
    const child = newborn();
    await registerAtBirth(child);
    // Registered again under the resident ID without evidence: a second person (to be merged).
    await records("110000").registerRecord({
      idempotencyKey: randomUUID(),
      identity: child.residentId,
      certificateNumber: certificateNumber("110000"),
    });
    const err = await errorOf(
      records("110000").registerRecord({
        idempotencyKey: randomUUID(),
        identity: child.residentId,
        certificateNumber: certificateNumber("110000"),
        knownAs: [newIdentity("Someone Else"), child.birthCertificate],
      }),
    );
    const [detail] = err?.findDetails(ErrorDetailSchema) ?? [];
    expect([err?.code, detail?.field]).toEqual([Code.FailedPrecondition, "known_as[1]"]);
  });
});
