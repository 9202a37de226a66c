import { Code, ConnectError } from "@connectrpc/connect";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  certificateNumber,
  newDose,
  newIdentity,
  startTestHub,
  type TestHubEnv,
} from "./testing/harness.js";

/**
 * Group commit: concurrent commands share transactions, yet each caller sees exactly what it
 * would have seen alone — a refusal stays with its own command and nothing else is lost.
 */
let env: TestHubEnv;
const BJ = "110000";

beforeAll(async () => {
  env = await startTestHub();
});

afterAll(async () => {
  await env?.close();
});

function codeOf(r: PromiseSettledResult<unknown>): Code | "ok" {
  return r.status === "fulfilled" ? "ok" : ConnectError.from(r.reason).code;
}

describe("group commit", () => {
  it("commits concurrent registrations together; a refused one fails alone", async () => {
    const client = env.client(RecordService, `province:${BJ}`);
    const existing = newIdentity();
    await client.registerRecord({
      idempotencyKey: `gc-existing-${existing.idNumber}`,
      identity: existing,
      certificateNumber: certificateNumber(BJ),
    });
    const people = Array.from({ length: 40 }, () => newIdentity());
    const calls = [
      ...people.map((identity) =>
        client.registerRecord({
          idempotencyKey: `gc-${identity.idNumber}`,
          identity,
          certificateNumber: certificateNumber(BJ),
          doses: [newDose(BJ)],
        }),
      ),
      // Refused by the rules: this person already has a record.
      client.registerRecord({
        idempotencyKey: `gc-again-${existing.idNumber}`,
        identity: existing,
        certificateNumber: certificateNumber(BJ),
      }),
    ];
    const results = await Promise.allSettled(calls);
    expect(results.slice(0, 40).map(codeOf)).toEqual(people.map(() => "ok"));
    expect(codeOf(results[40] as PromiseSettledResult<unknown>)).toBe(Code.AlreadyExists);

    const rows = await env.hub.sql<{ persons: number; transactions: number }[]>`
      SELECT count(DISTINCT stream_id)::int AS persons, count(DISTINCT txid)::int AS transactions
      FROM events WHERE type = 'RecordRegistered'
        AND data->'identity'->>'idNumber' = ANY(${people.map((p) => p.idNumber)}::text[])`;
    expect(rows[0]?.persons).toBe(40);
    // Shared transactions: fewer commits than commands.
    expect(rows[0]?.transactions).toBeLessThan(40);
  });

  it("a dose id held by another person refuses that command only, even inside a batch", async () => {
    const client = env.client(RecordService, `province:${BJ}`);
    const dose = newDose(BJ);
    const holder = newIdentity();
    await client.registerRecord({
      idempotencyKey: `gc-holder-${holder.idNumber}`,
      identity: holder,
      certificateNumber: certificateNumber(BJ),
      doses: [dose],
    });
    const people = Array.from({ length: 20 }, () => newIdentity());
    const thief = newIdentity();
    const results = await Promise.allSettled([
      ...people.map((identity) =>
        client.registerRecord({
          idempotencyKey: `gc-${identity.idNumber}`,
          identity,
          certificateNumber: certificateNumber(BJ),
        }),
      ),
      client.registerRecord({
        idempotencyKey: `gc-thief-${thief.idNumber}`,
        identity: thief,
        certificateNumber: certificateNumber(BJ),
        doses: [dose],
      }),
    ]);
    expect(results.slice(0, 20).map(codeOf)).toEqual(people.map(() => "ok"));
    const refused = ConnectError.from((results[20] as PromiseRejectedResult).reason);
    expect(refused.code).toBe(Code.AlreadyExists);
    expect(refused.message).toMatch(/dose id/);
    const [thiefEvents] = await env.hub.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM events
      WHERE data->'identity'->>'idNumber' = ${thief.idNumber}`;
    expect(thiefEvents?.n).toBe(0);
  });
});
