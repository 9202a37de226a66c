import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { IdentitySchema, IdType } from "@evc-interop/gen/evc/common/v1/identity_pb";
import { CertificateStatus } from "@evc-interop/gen/evc/common/v1/record_pb";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import {
  MigrationService,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { ProvinceService } from "@evc-interop/gen/evc/province/v1/province_service_pb";
import {
  closeTestProvince,
  controlTransport,
  newDose,
  newIdentity,
  readerTransport,
  startTestHub,
  startTestProvince,
  type TestHubEnv,
  until,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Province } from "./province.js";

/**
 * #27 story 1 through the reference province: a newborn registered at birth under the birth
 * medical certificate, registered weeks later under the resident ID with the birth certificate
 * on file, stays one person with one record and one certificate, here and wherever it moves.
 */
let env: TestHubEnv;
let bj: Province;
let gd: Province;

beforeAll(async () => {
  env = await startTestHub();
  bj = await startTestProvince(env, "110000");
  gd = await startTestProvince(env, "440000");
});

afterAll(async () => {
  for (const p of [bj, gd]) if (p) await closeTestProvince(p);
  await env?.close();
});

const control = (p: Province) => createClient(ControlService, controlTransport(p));
const clinic = (p: Province) => createClient(ProvinceService, readerTransport(p));

describe("a newborn under the birth certificate, then the resident ID", () => {
  it("is one record and one certificate here, under either document, and moves as one", async () => {
    const residentId = newIdentity("Newborn Child");
    const birthCertificate = create(IdentitySchema, {
      ...residentId,
      idType: IdType.BIRTH_CERTIFICATE,
      idNumber: `O${Date.now().toString().slice(-9)}`,
    });
    const atBirth = await control(bj).registerRecord({ identity: birthCertificate });
    const visit = newDose("110000");
    const later = await control(bj).registerRecord({
      identity: residentId,
      doses: [visit],
      knownAs: [birthCertificate],
    });
    expect([later.recordId, later.certificateNumber]).toEqual([
      atBirth.recordId,
      atBirth.certificateNumber,
    ]);

    // The record here is found under the resident ID now, with the dose of that visit.
    const byId = await clinic(bj).getCertificateStatusByIdentity({ identity: residentId });
    expect([byId.certificate?.certificateNumber, byId.certificate?.status]).toEqual([
      atBirth.certificateNumber,
      CertificateStatus.NORMAL,
    ]);
    const record = await clinic(bj).getRecord({ recordId: atBirth.recordId });
    expect(record.record?.doses.map((d) => d.doseId)).toContain(visit.doseId);
    expect(record.record?.identity?.idType).toBe(IdType.RESIDENT_ID);
    // The hub and the province agree on it: reconciliation repairs nothing.
    const pass = await control(bj).reconcile({});
    expect([
      pass.missingRepaired,
      pass.extraRepaired,
      pass.statusRepaired,
      pass.ownerRepaired,
      pass.contentsRepaired,
    ]).toEqual([0n, 0n, 0n, 0n, 0n]);

    // The family moves, asked under the resident ID: the one record moves, and only it.
    const { migrationId } = await control(gd).migrateIn({ identity: residentId });
    await until(
      "the migration completed",
      async () => {
        const m = (await env.client(MigrationService, "operator:ops").getMigration({ migrationId }))
          .migration;
        return m?.state === MigrationState.COMPLETED ? m : undefined;
      },
      10_000,
    );
    const moved = await clinic(gd).getRecord({ recordId: atBirth.recordId });
    expect(moved.record?.identity?.idNumber).toBe(residentId.idNumber);
    expect(moved.record?.doses.map((d) => d.doseId)).toContain(visit.doseId);
    const [normal] = await env.hub.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM certificates WHERE status = 'NORMAL' AND person_key =
        (SELECT person_key FROM records WHERE record_id = ${atBirth.recordId})`;
    expect(normal?.n).toBe(1);
  });
});
