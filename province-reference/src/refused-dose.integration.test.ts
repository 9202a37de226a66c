import { createClient } from "@connectrpc/connect";
import { CloseReason } from "@evc-interop/gen/evc/common/v1/record_pb";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import {
  closeTestProvince,
  controlTransport,
  newDose,
  newIdentity,
  startTestHub,
  startTestProvince,
  type TestHubEnv,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Province } from "./province.js";

/**
 * A dose the owner stored whose report the hub refused (the record closed at the hub, its
 * revocation not applied here yet): the clinic is told the hub does not hold it — and a retry
 * of the same call is told the same. Before, the retry found no report pending and answered
 * reported_to_hub = true: a dose the hub never accepted, confirmed as held.
 */
const CODE = "110000";
let env: TestHubEnv;
let owner: Province;

beforeAll(async () => {
  env = await startTestHub();
  owner = await startTestProvince(env, CODE);
});

afterAll(async () => {
  if (owner) await closeTestProvince(owner);
  await env?.close();
});

describe("a dose report the hub refused", () => {
  it("is answered as refused on the first call and on every retry; the dose stays in the local record", async () => {
    const control = createClient(ControlService, controlTransport(owner));
    const child = newIdentity("Closed Elsewhere");
    const { recordId } = await control.registerRecord({ identity: child });
    // The hub closes the record; the revocation does not reach the province yet.
    await owner.agent.stop();
    await env
      .client(RecordService, `province:${CODE}`)
      .closeRecord({ recordId, reason: CloseReason.DECEASED });

    const dose = newDose(CODE);
    const first = await control.recordDose({ identity: child, dose }).catch((e: unknown) => e);
    expect(String(first)).toMatch(/kept in this province's record, but the hub refused it/);
    const retry = await control.recordDose({ identity: child, dose }).catch((e: unknown) => e);
    expect(String(retry)).toMatch(/\[failed_precondition\].*hub refused it \(NotFound/);

    const held = await owner.sql<{ dose_id: string }[]>`
      SELECT dose_id FROM doses WHERE record_id = ${recordId}`;
    expect(held.map((d) => d.dose_id)).toEqual([dose.doseId]);
  });
});
