import { Code, ConnectError } from "@connectrpc/connect";
import type { Identity } from "@evc-interop/gen/evc/common/v1/identity_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import {
  certificateNumber,
  newDose,
  newIdentity,
  startTestHub,
  type TestHubEnv,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { personKey } from "./domain/codec.js";

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

const keyOf = (identity: Identity) => personKey(env.config.personKeySecret, identity);

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
        AND stream_id = ANY(${people.map(keyOf)}::text[])`;
    expect(rows[0]?.persons).toBe(40);
    // Shared transactions: fewer commits than commands.
    expect(rows[0]?.transactions).toBeLessThan(40);
  });

  it("a dose id another person holds is scoped to each person: both keep their dose", async () => {
    const client = env.client(RecordService, `province:${BJ}`);
    const dose = newDose(BJ);
    const first = newIdentity();
    await client.registerRecord({
      idempotencyKey: `gc-first-${first.idNumber}`,
      identity: first,
      certificateNumber: certificateNumber(BJ),
      doses: [dose],
    });
    const people = Array.from({ length: 20 }, () => newIdentity());
    const second = newIdentity();
    const results = await Promise.allSettled([
      ...people.map((identity) =>
        client.registerRecord({
          idempotencyKey: `gc-${identity.idNumber}`,
          identity,
          certificateNumber: certificateNumber(BJ),
        }),
      ),
      // A province minted the same dose id for another child: that child's record is not refused.
      client.registerRecord({
        idempotencyKey: `gc-second-${second.idNumber}`,
        identity: second,
        certificateNumber: certificateNumber(BJ),
        doses: [dose],
      }),
    ]);
    expect(results.map(codeOf)).toEqual([...people.map(() => "ok"), "ok"]);
    // Identities are sealed in the log: the persons are found by their person keys.
    const held = await env.hub.sql<{ id: string; n: number }[]>`
      SELECT stream_id AS id, jsonb_array_length(data->'doses')::int AS n
      FROM events WHERE type = 'RecordRegistered'
        AND stream_id = ANY(${[first, second].map(keyOf)}::text[])
      ORDER BY 1`;
    expect(held).toEqual(
      [first, second]
        .map(keyOf)
        .sort()
        .map((id) => ({ id, n: 1 })),
    );
  });
});
