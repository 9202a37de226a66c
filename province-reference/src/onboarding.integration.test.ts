import { randomUUID } from "node:crypto";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { OnboardingService } from "@evc-interop/gen/evc/national/v1/onboarding_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import {
  certificateNumber,
  closeTestProvince,
  controlTransport,
  newDose,
  newIdentity,
  startTestHub,
  startTestProvince,
  type TestHubEnv,
  until,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { onboard } from "./onboard.js";
import type { Province } from "./province.js";
import { insertLegacyRecords, type LegacyRecord } from "./store/legacy.js";

/**
 * #28 story 4, the province's half, as reported: no existing record could be loaded, and the
 * reference province's reconciliation deleted every certificate the hub did not know — on a
 * first connection, all of them. Here 110000 holds records from before the hub, one of them a
 * child 440000 registered at the hub already.
 */
let env: TestHubEnv;
let bj: Province;
let gd: Province;

beforeAll(async () => {
  env = await startTestHub();
  bj = await startTestProvince(env, "110000", { extraGraceMs: 0 });
  gd = await startTestProvince(env, "440000");
});

afterAll(async () => {
  for (const p of [bj, gd]) if (p) await closeTestProvince(p);
  await env?.close();
});

const control = (p: Province) => createClient(ControlService, controlTransport(p));

/** Record ids of one run in a known order (onboarding goes by id). */
const run = randomUUID().slice(0, 24);
let counter = 0;

function legacy(identity = newIdentity("Legacy Child")): LegacyRecord {
  counter += 1;
  return {
    recordId: `${run}${String(counter).padStart(12, "0")}`,
    identity,
    certificateNumber: certificateNumber("110000"),
    doses: [newDose("110000"), newDose("510000", { doseNumber: 2 })],
  };
}

/** The hub's client, losing the answer of the `lose`-th call after the hub committed it. */
function losingAnswer(lose: number): Client<typeof OnboardingService> {
  const real = env.client(OnboardingService, "province:110000");
  let calls = 0;
  return {
    async onboardRecords(req, options) {
      calls += 1;
      const res = await real.onboardRecords(req, options);
      if (calls === lose) throw new ConnectError("connection reset (test)", Code.Unavailable);
      return res;
    },
  };
}

async function onboardingOf(ids: readonly string[]): Promise<(string | null)[]> {
  const rows = await bj.sql<{ record_id: string; onboarding: string | null }[]>`
    SELECT record_id, onboarding FROM records WHERE record_id = ANY(${ids}::text[])`;
  const by = new Map(rows.map((r) => [r.record_id, r.onboarding]));
  return ids.map((id) => (by.has(id) ? (by.get(id) ?? null) : "missing"));
}

describe("a province's records from before the hub", () => {
  it("survive reconciliation until onboarded; onboarding resumes after a lost answer, loads each once and lists the conflict", async () => {
    const heldElsewhere = newIdentity("Held Child");
    const held = await env.client(RecordService, "province:440000").registerRecord({
      idempotencyKey: randomUUID(),
      identity: heldElsewhere,
      certificateNumber: certificateNumber("440000"),
    });
    const records = [legacy(), legacy(), legacy(), legacy(), legacy(heldElsewhere)];
    await insertLegacyRecords(bj.sql, "110000", records);
    const ids = records.map((r) => r.recordId);

    const before = await control(bj).reconcile({});
    expect(before.extraRepaired).toBe(0n);
    const kept = await bj.sql`SELECT 1 FROM certificates WHERE record_id = ANY(${ids}::text[])`;
    expect(kept.length).toBe(5);

    // The second batch's answer is lost after the hub committed it: the run fails there.
    await expect(onboard(bj.sql, losingAnswer(2), { batch: 2, concurrency: 1 })).rejects.toThrow(
      /connection reset/,
    );
    expect(await onboardingOf(ids)).toEqual([null, null, "pending", "pending", "pending"]);
    const again = await onboard(bj.sql, env.client(OnboardingService, "province:110000"), {
      batch: 2,
      concurrency: 2,
    });
    expect(again).toEqual(
      expect.objectContaining({ total: 3, onboarded: 0, already: 2, conflicts: 1, invalid: 0 }),
    );
    expect(await onboardingOf(ids)).toEqual([null, null, null, null, "conflict"]);
    const [conflict] = await bj.sql`SELECT conflict, holder_province, holder_record_id
      FROM onboarding_conflicts WHERE record_id = ${ids[4] ?? ""}`;
    expect(conflict).toEqual({
      conflict: "PERSON_HELD",
      holder_province: "440000",
      holder_record_id: held.recordId,
    });
    const [loaded] = await env.hub.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM events
      WHERE type = 'RecordRegistered' AND data->>'recordId' = ANY(${ids}::text[])`;
    expect(loaded?.n).toBe(4);

    // Onboarded, the records are like any other: in sync, and a dose given elsewhere arrives.
    const after = await control(bj).reconcile({});
    expect(after.extraRepaired).toBe(0n);
    expect(after.missingRepaired).toBe(0n);
    const dose = newDose("440000", { doseNumber: 3 });
    await control(gd).recordDose({ identity: records[0]?.identity, dose });
    await until("the dose at the onboarded record", async () => {
      const rows = await bj.sql`SELECT 1 FROM doses WHERE dose_id = ${dose.doseId}`;
      return rows.length === 1 ? true : undefined;
    });
  });

  it("a record the hub refuses as malformed is set aside alone; the rest of its batch loads", async () => {
    const bad = legacy();
    bad.doses = [newDose("110000", { vaccineCode: "" })];
    const good = [legacy(), legacy(), legacy()];
    await insertLegacyRecords(bj.sql, "110000", [...good, bad]);
    const p = await onboard(bj.sql, env.client(OnboardingService, "province:110000"), {
      batch: 4,
      concurrency: 1,
    });
    expect(p).toEqual(expect.objectContaining({ onboarded: 3, invalid: 1 }));
    const [row] = await bj.sql`SELECT r.onboarding, c.detail FROM records r
      JOIN onboarding_conflicts c USING (record_id) WHERE record_id = ${bad.recordId}`;
    expect(row?.onboarding).toBe("invalid");
    expect(String(row?.detail)).toContain("vaccine_code");
  });
});
