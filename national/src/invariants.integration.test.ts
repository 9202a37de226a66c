import { Code, ConnectError } from "@connectrpc/connect";
import type { Directive } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import {
  MigrationService,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import {
  certificateNumber,
  FakeProvince,
  newDose,
  newIdentity,
  snapshotFindings,
  startTestHub,
  type TestHubEnv,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Hub } from "./hub.js";

let env: TestHubEnv;
let replica: Hub;
const fakes: FakeProvince[] = [];
const OWNER = "110000";
const OTHERS = ["440000", "510000", "310000"];

beforeAll(async () => {
  env = await startTestHub();
  replica = await env.startReplica();
  for (const code of [OWNER, ...OTHERS]) fakes.push(await FakeProvince.start(env, code));
});

afterAll(async () => {
  for (const f of fakes) await f.stop();
  await env?.close();
});

/** I1 and I2 over the whole hub snapshot: no person with two open records or two NORMAL certificates. */
async function assertSnapshotInvariants() {
  expect(await snapshotFindings(env.hub.sql)).toEqual([]);
}

function codeOf(result: PromiseSettledResult<unknown>): Code | "ok" {
  return result.status === "fulfilled" ? "ok" : ConnectError.from(result.reason).code;
}

describe("I1 one person, one record", () => {
  it("40 concurrent registrations of one person from two provinces on two hub replicas: exactly one wins", async () => {
    const identity = newIdentity();
    const attempts = Array.from({ length: 40 }, (_, i) => {
      const province = i % 2 === 0 ? OWNER : "440000";
      const hub = i % 4 < 2 ? env.hub : replica;
      return env.client(RecordService, `province:${province}`, hub).registerRecord({
        idempotencyKey: `conc-reg-${i}-${identity.idNumber}`,
        identity,
        certificateNumber: certificateNumber(province),
        doses: [newDose(province)],
      });
    });
    const results = await Promise.allSettled(attempts);
    const codes = results.map(codeOf);
    expect(codes.filter((c) => c === "ok")).toHaveLength(1);
    expect(codes.filter((c) => c !== "ok").every((c) => c === Code.AlreadyExists)).toBe(true);
    const refused = results.find((r) => r.status === "rejected");
    expect(refused && ConnectError.from(refused.reason).message).toMatch(
      /owned by province (110000|440000)/,
    );
    await assertSnapshotInvariants();
  });
});

describe("per-person lock and I2 under concurrency", () => {
  it("200 concurrent migration requests for one person from 3 provinces on 2 replicas: exactly one proceeds", async () => {
    const identity = newIdentity();
    const cert = certificateNumber(OWNER);
    const reg = await env.client(RecordService, `province:${OWNER}`).registerRecord({
      idempotencyKey: `lock-reg-${cert}`,
      identity,
      certificateNumber: cert,
    });
    fakes[0]?.records.set(reg.recordId, {
      identity,
      doses: [],
      certificate: cert,
      status: "ACTIVE",
    });

    // The owner holds its answer to the suspend directive until every request is in: the
    // lock must refuse them all while the first migration is open.
    const owner = fakes[0] as FakeProvince;
    const held: Directive[] = [];
    owner.answer = (d) => {
      held.push(d);
      return undefined;
    };
    const requests = Array.from({ length: 200 }, (_, i) => {
      const province = OTHERS[i % OTHERS.length] ?? "440000";
      const hub = i % 2 === 0 ? env.hub : replica;
      return env
        .client(MigrationService, `province:${province}`, hub)
        .requestMigration({ idempotencyKey: `lock-${i}-${cert}`, identity });
    });
    const results = await Promise.allSettled(requests);
    const codes = results.map(codeOf);
    expect(codes.filter((c) => c === "ok")).toHaveLength(1);
    // Every other caller gets a clear refusal naming why: the lock is held.
    for (const r of results) {
      if (r.status === "rejected") {
        const e = ConnectError.from(r.reason);
        expect([Code.FailedPrecondition, Code.Aborted]).toContain(e.code);
        expect(e.message).toMatch(/open migration|concurrent changes/);
      }
    }
    const [open] = await env.hub.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM migrations WHERE record_id = ${reg.recordId}`;
    expect(open?.n).toBe(1);
    await assertSnapshotInvariants();
    owner.answer = (d) => owner.correctAnswer(d);
    await owner.waitFor(
      (d) => d.action.case === "suspendForMigration" && d.recordId === reg.recordId,
    );
    if (held.length > 0) await owner.submit(held.map((d) => owner.correctAnswer(d)));

    const winner = results.find((r) => r.status === "fulfilled");
    const migrationId =
      winner?.status === "fulfilled"
        ? (winner.value as { migration?: { migrationId: string } }).migration?.migrationId
        : "";
    const client = env.client(MigrationService, "operator:ops");
    for (let i = 0; i < 200; i++) {
      const { migration } = await client.getMigration({ migrationId: migrationId ?? "" });
      if (migration?.state === MigrationState.COMPLETED) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    const { migration } = await client.getMigration({ migrationId: migrationId ?? "" });
    expect(migration?.state).toBe(MigrationState.COMPLETED);
    await assertSnapshotInvariants();
  });
});
