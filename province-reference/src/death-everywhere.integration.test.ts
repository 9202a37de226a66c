import { createClient } from "@connectrpc/connect";
import { CertificateStatus, CloseReason } from "@evc-interop/gen/evc/common/v1/record_pb";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { CertificateService } from "@evc-interop/gen/evc/national/v1/certificate_service_pb";
import {
  MigrationService,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { ProvinceService } from "@evc-interop/gen/evc/province/v1/province_service_pb";
import {
  closeTestProvince,
  controlTransport,
  newIdentity,
  readerTransport,
  startTestHub,
  startTestProvince,
  type TestHubEnv,
  transport,
  until,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Province } from "./province.js";

/**
 * #27 story 4, as reported: a certificate is permanently revoked (已注销) on death everywhere
 * the person has one. Before, a death after a migration left the former owner's certificate
 * SUSPENDED for ever, and a death during an open migration could not be recorded at all.
 */
let env: TestHubEnv;
const started: Province[] = [];

beforeAll(async () => {
  env = await startTestHub({
    activateDeadlineMs: 400,
    compensateDeadlineMs: 150,
    compensateRounds: 1,
    redeliverAfterMs: 100,
  });
  for (const code of ["110000", "440000"]) started.push(await startTestProvince(env, code));
});

afterAll(async () => {
  for (const p of started) await closeTestProvince(p);
  await env?.close();
});

function province(code: string): Province {
  const p = started.find((x) => x.code === code);
  if (!p) throw new Error(`province ${code} is not running`);
  return p;
}
const control = (code: string) => createClient(ControlService, controlTransport(province(code)));
const phone = (code: string) => createClient(ProvinceService, transport(province(code).url));
const hubCertificates = () => env.client(CertificateService, "province:510000");
const operator = () => env.client(MigrationService, "operator:ops");

async function migrationState(id: string): Promise<MigrationState | undefined> {
  return (await operator().getMigration({ migrationId: id })).migration?.state;
}

/** Status of a certificate at the hub and at a province's phone tier. */
async function statuses(number: string, at: string): Promise<[string, string]> {
  const hub = (await hubCertificates().getCertificateStatus({ certificateNumber: number }))
    .certificate?.status;
  const local = (await phone(at).getCertificateStatus({ certificateNumber: number })).certificate
    ?.status;
  return [CertificateStatus[hub ?? 0] ?? "?", CertificateStatus[local ?? 0] ?? "?"];
}

describe("a death revokes every certificate of the person, everywhere", () => {
  it("after a migration: the former owner's suspended certificate is revoked, and its watchers told", async () => {
    const child = newIdentity("Moved Child");
    const registered = await control("110000").registerRecord({ identity: child });
    const { migrationId } = await control("440000").migrateIn({ identity: child });
    await until(
      "the migration completed",
      async () =>
        (await migrationState(migrationId)) === MigrationState.COMPLETED ? true : undefined,
      10_000,
    );
    const newNumber = (await operator().getMigration({ migrationId })).migration
      ?.targetCertificateNumber;
    expect(newNumber).toMatch(/^440000-/);
    expect(await statuses(registered.certificateNumber, "110000")).toEqual([
      "SUSPENDED",
      "SUSPENDED",
    ]);

    // A phone still watching the old number at the former owner.
    const seen: string[] = [];
    const abort = new AbortController();
    const watching = (async () => {
      for await (const m of phone("110000").watchCertificate(
        { certificateNumber: registered.certificateNumber },
        { signal: abort.signal },
      ))
        seen.push(CertificateStatus[m.certificate?.status ?? 0] ?? "?");
    })().catch(() => undefined);

    await control("440000").closeRecord({
      recordId: registered.recordId,
      reason: CloseReason.DECEASED,
    });

    await until(
      "both certificates revoked at the hub and at both provinces",
      async () => {
        const old = await statuses(registered.certificateNumber, "110000");
        const now = await statuses(newNumber ?? "", "440000");
        return [...old, ...now].every((s) => s === "REVOKED") ? true : undefined;
      },
      10_000,
    );
    await until(
      "the watching phone told",
      async () => (seen.includes("REVOKED") ? true : undefined),
      5_000,
    );
    abort.abort();
    await watching;
    const old = await phone("110000").getCertificateStatus({
      certificateNumber: registered.certificateNumber,
    });
    expect(old.certificate?.revocationReason).toBe(CloseReason.DECEASED);
  });

  it("during a migration the target never answers: the source records the death, the migration ends, and the target coming back never issues a valid certificate", async () => {
    const child = newIdentity("Child Dying While Migrating");
    const registered = await control("110000").registerRecord({ identity: child });
    // 510000 has credentials and no running system yet.
    const { migration } = await env
      .client(MigrationService, "province:510000")
      .requestMigration({ identity: child, idempotencyKey: `death-${registered.recordId}` });
    const migrationId = migration?.migrationId ?? "";
    await until(
      "the migration handed to an operator",
      async () =>
        (await migrationState(migrationId)) === MigrationState.NEEDS_OPERATOR ? true : undefined,
      20_000,
    );

    await control("110000").closeRecord({
      recordId: registered.recordId,
      reason: CloseReason.DECEASED,
    });
    const ended = (await operator().getMigration({ migrationId })).migration;
    expect(ended?.state).toBe(MigrationState.CANCELLED);
    expect(ended?.endReason).toMatch(/closed during the migration \(DECEASED\)/);
    await until(
      "the certificate revoked at the hub and at the source",
      async () =>
        (await statuses(registered.certificateNumber, "110000")).every((s) => s === "REVOKED")
          ? true
          : undefined,
      10_000,
    );

    // The target's system starts: it applies the activation it was sent, then the revoke.
    started.push(await startTestProvince(env, "510000"));
    await until(
      "the target's copy revoked and closed",
      async () => {
        const local = await createClient(ProvinceService, readerTransport(province("510000")))
          .getCertificateStatusByIdentity({ identity: child })
          .catch(() => undefined);
        return local?.certificate?.status === CertificateStatus.REVOKED ? local : undefined;
      },
      20_000,
    );
    // The hub never learned of a NORMAL certificate for the child, and never will.
    const [row] = await env.hub.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM certificates c JOIN records r USING (record_id)
      WHERE r.record_id = ${registered.recordId} AND c.status <> 'REVOKED'`;
    expect(row?.n).toBe(0);
    expect(await migrationState(migrationId)).toBe(MigrationState.CANCELLED);
  });
});
