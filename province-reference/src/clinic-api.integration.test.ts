import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { CloseReason } from "@evc-interop/gen/evc/common/v1/record_pb";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import {
  MigrationService,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { ClinicService } from "@evc-interop/gen/evc/province/v1/clinic_service_pb";
import {
  closeTestProvince,
  codeOf,
  controlTransport,
  newDose,
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
 * The reference province's clinic-facing write API (#15 part 5): a production surface of its
 * own, on the public port, for callers with a `records:write` token — distinct from the kit's
 * control API, which listens elsewhere and only with its own token.
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
const clinic = (p: Province, scope = "records:write") =>
  createClient(ClinicService, readerTransport(p, { scope, caller: `clinic:${p.code}-01` }));

describe("the clinic API", () => {
  it("registers a birth, records doses, takes a record over and closes it, for a records:write caller", async () => {
    const child = newIdentity("Clinic Child");
    const born = await clinic(bj).registerBirth({ identity: child, doses: [newDose("110000")] });
    expect(born.certificateNumber).toMatch(/^110000-/);
    const given = await clinic(gd).recordDose({ identity: child, dose: newDose("440000") });
    expect(given.reportedToHub).toBe(true);
    const { migrationId } = await clinic(gd).requestMigration({ identity: child });
    await until("migration completed", async () => {
      const { migration } = await env
        .client(MigrationService, "operator:ops")
        .getMigration({ migrationId });
      return migration?.state === MigrationState.COMPLETED ? true : undefined;
    });
    await clinic(gd).closeRecord({ recordId: born.recordId, reason: CloseReason.DECEASED });
    const row = await until("record closed at Guangdong", async () => {
      const [r] = await gd.sql<{ status: string; doses: number }[]>`
        SELECT r.status, (SELECT count(*)::int FROM doses d WHERE d.record_id = r.record_id) AS doses
        FROM records r WHERE r.record_id = ${born.recordId}`;
      return r?.status === "CLOSED" ? r : undefined;
    });
    expect(row.doses).toBe(2);
  });

  it("refuses callers without a write token, and says which field is wrong", async () => {
    const anonymous = createClient(ClinicService, transport(bj.url));
    expect(await codeOf(anonymous.registerBirth({ identity: newIdentity() }))).toBe(
      "Unauthenticated",
    );
    expect(
      await codeOf(clinic(bj, "records:read").registerBirth({ identity: newIdentity() })),
    ).toBe("PermissionDenied");
    const err = await clinic(bj)
      .recordDose({ identity: newIdentity(), dose: newDose("440000") })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    if (err instanceof ConnectError) {
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toMatch(/^dose\.administered_province_code/);
    }
    const [{ n } = { n: -1 }] = await bj.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM records`;
    expect(n).toBe(1); // only the birth registered above
  });

  it("passes the hub's refusal on with its code and words (#29: it was Internal, an HTTP/2 error)", async () => {
    const child = newIdentity("Owned Elsewhere");
    await clinic(gd).registerBirth({ identity: child });
    for (const flow of [
      () => clinic(bj).registerBirth({ identity: child }),
      () => control(bj).registerRecord({ identity: child }),
    ]) {
      const err = await flow().catch((e: unknown) => ConnectError.from(e));
      expect(err).toBeInstanceOf(ConnectError);
      if (!(err instanceof ConnectError)) continue;
      expect(Code[err.code]).toBe("AlreadyExists");
      expect(err.rawMessage).toContain("440000");
    }
    const nobody = newIdentity("Nobody");
    for (const [flow, code] of [
      [() => clinic(bj).requestMigration({ identity: nobody }), "NotFound"],
      [() => control(bj).migrateIn({ identity: nobody }), "NotFound"],
      [
        () => clinic(bj).closeRecord({ recordId: "no-such-record", reason: CloseReason.DECEASED }),
        "NotFound",
      ],
    ] as const) {
      const err = await flow().catch((e: unknown) => ConnectError.from(e));
      expect(err instanceof ConnectError ? Code[err.code] : err).toBe(code);
    }
  });
});
