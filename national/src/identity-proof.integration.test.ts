import { randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { ErrorDetailSchema, ErrorReason } from "@evc-interop/gen/evc/common/v1/error_details_pb";
import { MigrationService } from "@evc-interop/gen/evc/national/v1/migration_service_pb";
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
 * Seen on main (#27): a migration was started by document number alone — name, birth date and
 * sex never compared — so anyone with a province's write scope who knew a child's ID number
 * could have the source suspend the child's certificate at once.
 */
let env: TestHubEnv;

beforeAll(async () => {
  env = await startTestHub();
});

afterAll(async () => {
  await env?.close();
});

const requestMigration = (identity: ReturnType<typeof newIdentity>) =>
  env
    .client(MigrationService, "province:440000")
    .requestMigration({ idempotencyKey: randomUUID(), identity });

async function hubCertificate(number: string) {
  const [row] = await env.hub.sql<{ status: string }[]>`
    SELECT status FROM certificates WHERE certificate_number = ${number}`;
  return row?.status;
}

describe("a migration request", () => {
  it("with the right ID number but another name and birth date is refused, naming them, and nothing is suspended", async () => {
    const child = newIdentity("Zhang Wei");
    const number = certificateNumber("110000");
    await env.client(RecordService, "province:110000").registerRecord({
      idempotencyKey: randomUUID(),
      identity: child,
      certificateNumber: number,
    });
    const forged = {
      ...child,
      name: "Li Na",
      birthDate: timestampFromDate(new Date("2019-03-01")),
    };
    const err = await errorOf(requestMigration(forged));
    const [detail] = err?.findDetails(ErrorDetailSchema) ?? [];
    expect([err?.code, detail?.reason, detail?.field]).toEqual([
      Code.FailedPrecondition,
      ErrorReason.IDENTITY_MISMATCH,
      "identity.name",
    ]);
    expect(err?.rawMessage).toMatch(/identity\.name, identity\.birth_date differ/);
    const [pending] = await env.hub.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM migrations WHERE person_key = (
        SELECT person_key FROM certificates WHERE certificate_number = ${number})`;
    expect(pending?.n).toBe(0);
    expect(await hubCertificate(number)).toBe("NORMAL");

    // The child's own identity, written with other spacing and case, starts the migration.
    const started = await requestMigration({ ...child, name: "  zhang   WEI " });
    expect(started.migration?.sourceProvinceCode).toBe("110000");
  });
});
