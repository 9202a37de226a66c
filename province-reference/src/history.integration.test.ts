import { createClient } from "@connectrpc/connect";
import { AuditService } from "@evc-interop/gen/evc/national/v1/audit_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import { ClinicService } from "@evc-interop/gen/evc/province/v1/clinic_service_pb";
import {
  closeTestProvince,
  codeOf,
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
 * #28 story 5, as reported: a child from another province walks into a clinic, and the clinic
 * cannot read the child's doses, so it cannot tell which vaccine is due.
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

const clinic = (p: Province, scope = "records:write") =>
  createClient(ClinicService, readerTransport(p, { scope, caller: `clinic:${p.code}-07` }));
const forCare = { headers: { "evc-purpose": "care" } };

describe("a child's immunization history at a clinic of any province", () => {
  it("is read from the hub with every dose and where it was given, and logged at both", async () => {
    const child = newIdentity("Visiting Child");
    const birth = newDose("110000");
    const { recordId } = await clinic(bj).registerBirth({ identity: child, doses: [birth] });
    await clinic(gd).recordDose({ identity: child, dose: newDose("440000", { doseNumber: 2 }) });

    // Guangdong's clinic: the record is Beijing's; the hub holds its doses.
    const h = await until("the Guangdong dose at the hub", async () => {
      const r = await clinic(gd).getImmunizationHistory({ identity: child }, forCare);
      return r.doses.length === 2 ? r : undefined;
    });
    expect(h).toEqual(
      expect.objectContaining({ recordId, ownerProvinceCode: "110000", source: "hub" }),
    );
    expect(h.doses.map((d) => d.administeredProvinceCode).sort()).toEqual(["110000", "440000"]);

    // Beijing's own clinic reads its own record.
    const own = await clinic(bj).getImmunizationHistory({ identity: child }, forCare);
    expect(own.source).toBe("province");
    expect(own.ownerProvinceCode).toBe("110000");

    const [read] = await gd.sql<{ caller: string; purpose: string; record_id: string }[]>`
      SELECT caller, purpose, record_id FROM record_reads
      WHERE method = 'GetImmunizationHistory' ORDER BY position DESC LIMIT 1`;
    expect(read).toEqual({ caller: "clinic:440000-07", purpose: "care", record_id: recordId });
    const { reads } = await env
      .client(AuditService, "operator:ops")
      .listPersonReads({ identity: child });
    expect(reads.map((r) => [r.caller, r.method, r.purpose])).toContainEqual([
      "province:440000",
      "evc.national.v1.RecordService/GetImmunizationHistory",
      "care",
    ]);
  });

  it("is refused without the clinic scope or a purpose, and NotFound for a person with no record", async () => {
    const child = newIdentity("Unread Child");
    await clinic(bj).registerBirth({ identity: child });
    expect(
      await codeOf(clinic(gd, "records:read").getImmunizationHistory({ identity: child }, forCare)),
    ).toBe("PermissionDenied");
    expect(await codeOf(clinic(gd).getImmunizationHistory({ identity: child }))).toBe(
      "InvalidArgument",
    );
    expect(
      await codeOf(
        env.client(RecordService, "province:440000").getImmunizationHistory({ identity: child }),
      ),
    ).toBe("InvalidArgument");
    expect(
      await codeOf(
        env
          .client(RecordService, "operator:ops")
          .getImmunizationHistory({ identity: child }, forCare),
      ),
    ).toBe("PermissionDenied");
    expect(
      await codeOf(clinic(gd).getImmunizationHistory({ identity: newIdentity() }, forCare)),
    ).toBe("NotFound");
  });
});
