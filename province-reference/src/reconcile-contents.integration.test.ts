import { createClient } from "@connectrpc/connect";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
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
 * Reconciliation compares record contents, not only certificate rows (#14): a record that lost
 * its identity or a dose (a dead-lettered append, a crash before a fix) is completed from the
 * hub, and a dose only the province held reaches the hub.
 */
let env: TestHubEnv;
let bj: Province;
const BJ = "110000";

beforeAll(async () => {
  env = await startTestHub();
  bj = await startTestProvince(env, BJ, { intentPollMs: 100 });
});

afterAll(async () => {
  if (bj) await closeTestProvince(bj);
  await env?.close();
});

async function hubDoseIds(recordId: string): Promise<string[]> {
  const rows = await env.hub.sql<{ id: string }[]>`
    SELECT d->>'doseId' AS id FROM persons p,
      jsonb_array_elements(p.state->'records'->${recordId}->'doses') d
    WHERE p.state->'records' ? ${recordId} ORDER BY 1`;
  return rows.map((r) => r.id);
}

describe("reconciliation of record contents", () => {
  it("restores a lost identity and dose from the hub and reports a dose only the province held", async () => {
    const control = createClient(ControlService, controlTransport(bj));
    const identity = newIdentity();
    const [kept, lost] = [newDose(BJ), newDose(BJ, { doseNumber: 2 })];
    const { recordId } = await control.registerRecord({ identity, doses: [kept, lost] });
    // The local copy drifts: identity gone, a dose gone, a dose the hub never heard of.
    const onlyHere = newDose(BJ, { doseNumber: 3 });
    await bj.sql`UPDATE records SET identity = NULL, id_number = NULL, id_type = NULL
      WHERE record_id = ${recordId}`;
    await bj.sql`DELETE FROM doses WHERE record_id = ${recordId} AND dose_id = ${lost.doseId}`;
    await bj.sql`INSERT INTO doses (dose_id, record_id, dose, administered_at)
      VALUES (${onlyHere.doseId}, ${recordId}, ${JSON.stringify({
        doseId: onlyHere.doseId,
        vaccineCode: onlyHere.vaccineCode,
        doseNumber: onlyHere.doseNumber,
        administeredAt: "2021-03-01T08:00:00Z",
        administeredProvinceCode: BJ,
      })}::text::jsonb, '2021-03-01T08:00:00Z')`;

    const first = await control.reconcile({});
    expect(first.contentsRepaired).toBe(1n);
    const phone = createClient(ProvinceService, readerTransport(bj));
    const rec = await phone.getRecord({ recordId });
    expect(rec.record?.identity?.idNumber).toBe(identity.idNumber);
    expect(rec.record?.doses.map((d) => d.doseId).sort()).toEqual(
      [kept.doseId, lost.doseId, onlyHere.doseId].sort(),
    );
    await until("the hub learning the province's dose", async () =>
      (await hubDoseIds(recordId)).includes(onlyHere.doseId) ? true : undefined,
    );
    const second = await control.reconcile({});
    expect(second.contentsRepaired).toBe(0n);
  });
});
