import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import type { Identity } from "@evc-interop/gen/evc/common/v1/identity_pb";
import { CloseReason } from "@evc-interop/gen/evc/common/v1/record_pb";
import {
  OnboardConflict,
  OnboardingService,
  OnboardOutcome,
} from "@evc-interop/gen/evc/national/v1/onboarding_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import { SnapshotService } from "@evc-interop/gen/evc/national/v1/snapshot_service_pb";
import {
  certificateNumber,
  errorOf,
  newDose,
  newIdentity,
  startTestHub,
  type TestHubEnv,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * #28 story 4, the hub's half: a province loads the records it held before the hub existed.
 * Before, the hub started empty and a dose given elsewhere before it existed was refused as
 * history; nothing could be loaded.
 */
let env: TestHubEnv;

beforeAll(async () => {
  env = await startTestHub();
});

afterAll(async () => {
  await env?.close();
});

const onboarding = (code: string) => env.client(OnboardingService, `province:${code}`);

/** A record as a province held it: its own id, its number, doses given here and elsewhere. */
function existing(code: string, identity: Identity = newIdentity("Existing Child")) {
  return {
    recordId: randomUUID(),
    identity,
    certificateNumber: certificateNumber(code),
    doses: [newDose(code), newDose("440000", { doseNumber: 2 })],
  };
}

async function eventCount(): Promise<number> {
  const [row] = await env.hub.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM events`;
  return row?.n ?? 0;
}

describe("onboarding a province's existing records", () => {
  it("loads each record with its number and every dose, wherever given; sending the batch again changes nothing", async () => {
    const batch = [existing("110000"), existing("110000"), existing("110000")];
    const first = await onboarding("110000").onboardRecords({ records: batch });
    expect(first.results.map((r) => [r.recordId, r.outcome])).toEqual(
      batch.map((r) => [r.recordId, OnboardOutcome.ONBOARDED]),
    );
    const [one] = batch;
    const contents = await env
      .client(SnapshotService, "province:110000")
      .getRecordContents({ recordId: one?.recordId ?? "" });
    expect(contents.record?.doses.map((d) => d.doseId).sort()).toEqual(
      one?.doses.map((d) => d.doseId).sort(),
    );
    const certs = await env.hub.sql<{ status: string; province: string }[]>`
      SELECT status, province FROM certificates WHERE certificate_number = ${one?.certificateNumber ?? ""}`;
    expect(certs).toEqual([{ status: "NORMAL", province: "110000" }]);
    const [event] = await env.hub.sql<{ onboarded: boolean }[]>`
      SELECT (data->>'onboarded')::boolean AS onboarded FROM events
      WHERE type = 'RecordRegistered' AND data->>'recordId' = ${one?.recordId ?? ""}`;
    expect(event?.onboarded).toBe(true);

    // A kill after the hub committed and before the province noted it: sent again.
    const before = await eventCount();
    const again = await onboarding("110000").onboardRecords({ records: batch });
    expect(again.results.map((r) => r.outcome)).toEqual(
      batch.map(() => OnboardOutcome.ALREADY_ONBOARDED),
    );
    expect(await eventCount()).toBe(before);
  });

  it("a person the hub holds already is a conflict for review, naming who holds them; nothing is assigned", async () => {
    const held = newIdentity("Held Child");
    const registered = await env.client(RecordService, "province:440000").registerRecord({
      idempotencyKey: randomUUID(),
      identity: held,
      certificateNumber: certificateNumber("440000"),
    });
    const twin = newIdentity("Twice Child");
    const dead = newIdentity("Died Child");
    const died = await env.client(RecordService, "province:510000").registerRecord({
      idempotencyKey: randomUUID(),
      identity: dead,
      certificateNumber: certificateNumber("510000"),
    });
    await env
      .client(RecordService, "province:510000")
      .closeRecord({ recordId: died.recordId, reason: CloseReason.DECEASED });
    const ok = existing("110000");
    const batch = [
      existing("110000", held),
      existing("110000", twin),
      existing("110000", twin),
      existing("110000", dead),
      ok,
      { ...existing("110000"), certificateNumber: ok.certificateNumber },
    ];
    const before = await eventCount();
    const { results } = await onboarding("110000").onboardRecords({ records: batch });
    expect(results.map((r) => [r.outcome, r.conflict])).toEqual([
      [OnboardOutcome.CONFLICT, OnboardConflict.PERSON_HELD],
      [OnboardOutcome.ONBOARDED, OnboardConflict.UNSPECIFIED],
      [OnboardOutcome.CONFLICT, OnboardConflict.SAME_PERSON_IN_BATCH],
      [OnboardOutcome.CONFLICT, OnboardConflict.DECEASED],
      [OnboardOutcome.ONBOARDED, OnboardConflict.UNSPECIFIED],
      [OnboardOutcome.CONFLICT, OnboardConflict.NUMBER_IN_USE],
    ]);
    expect(results[0]).toEqual(
      expect.objectContaining({
        holderProvinceCode: "440000",
        holderRecordId: registered.recordId,
      }),
    );
    expect(results[2]?.holderRecordId).toBe(batch[1]?.recordId);
    expect(results[5]?.holderRecordId).toBe(ok.recordId);
    expect(await eventCount()).toBe(before + 2);
    const owner = await env.hub.sql<{ owner_province: string }[]>`
      SELECT owner_province FROM records WHERE record_id = ${registered.recordId}`;
    expect(owner).toEqual([{ owner_province: "440000" }]);
  });

  it("refuses what is not the caller's to load, naming the field", async () => {
    const foreign = existing("440000");
    const err = await errorOf(onboarding("110000").onboardRecords({ records: [foreign] }));
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err?.message).toContain("records[0].certificate_number");
    const op = await errorOf(
      env
        .client(OnboardingService, "operator:ops")
        .onboardRecords({ records: [existing("110000")] }),
    );
    expect(op?.code).toBe(Code.PermissionDenied);
    const twice = existing("110000");
    const dup = await errorOf(onboarding("110000").onboardRecords({ records: [twice, twice] }));
    expect(dup?.code).toBe(Code.InvalidArgument);
    expect(dup?.message).toContain("records[1].record_id");
  });
});
