import { Code, ConnectError } from "@connectrpc/connect";
import { DoseService } from "@evc-interop/gen/evc/national/v1/dose_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import {
  type SnapshotEntry,
  SnapshotService,
} from "@evc-interop/gen/evc/national/v1/snapshot_service_pb";
import {
  certificateNumber,
  FakeProvince,
  newDose,
  newIdentity,
  startTestHub,
  type TestHubEnv,
  until,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let env: TestHubEnv;

beforeAll(async () => {
  env = await startTestHub({ snapshotStallMs: 1000 });
});

afterAll(async () => {
  await fake?.stop();
  await env?.close();
});
let fake: FakeProvince | undefined;

/** Sessions of any hub left idle inside a snapshot stream's transaction. */
async function stalledSnapshotTransactions(): Promise<number> {
  const [r] = await env.hub.sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM pg_stat_activity
    WHERE state = 'idle in transaction'
      AND query LIKE '%AS record_sequence%'
      AND now() - state_change > interval '2 seconds'`;
  return r?.n ?? 0;
}

describe("snapshot streams", () => {
  it("ends a stream whose reader stopped taking pages, with DeadlineExceeded, and serves on", async () => {
    // More snapshot than HTTP/2 and the sockets buffer: the hub cannot finish on its own.
    await env.hub.sql`
      INSERT INTO certificates (certificate_number, record_id, person_key, province, owner_province,
        status, record_status, issued_at, status_changed_at, version, position)
      SELECT '110000-S' || lpad(i::text, 9, '0'), 'sr' || i, 'sp' || i, '110000', '110000',
        'NORMAL', 'ACTIVE', now(), now(), 1, i
      FROM generate_series(1, 200000) AS i`;
    const stream = env
      .client(SnapshotService, "province:110000")
      .streamSnapshot({ chunkSize: 50 })
      [Symbol.asyncIterator]();
    expect((await stream.next()).done).toBe(false);
    // The reader stops taking pages here, without cancelling. After the stall (1 s) plus the
    // 2 s the query above allows, no snapshot transaction may be left idle.
    await new Promise((r) => setTimeout(r, 3500));
    expect(await stalledSnapshotTransactions()).toBe(0);
    // What had been sent is still read, then the stream ends with the reason.
    const rest = (async () => {
      for (;;) if ((await stream.next()).done) return;
    })();
    const err = await rest.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.DeadlineExceeded);
    expect((err as ConnectError).rawMessage).toMatch(/stalled/);
    // The hub serves the next reader as before.
    let entries = 0;
    for await (const page of env
      .client(SnapshotService, "province:110000")
      .streamSnapshot({ chunkSize: 5000 }))
      entries += page.entries.length;
    expect(entries).toBe(200_000);
  });
});

describe("resyncing records (#28)", () => {
  /** Every entry of 510000's snapshot, filtered to records when given. */
  async function entries(recordIds: string[] = []): Promise<SnapshotEntry[]> {
    const out: SnapshotEntry[] = [];
    for await (const page of env
      .client(SnapshotService, "province:510000")
      .streamSnapshot({ recordIds }))
      out.push(...page.entries);
    return out;
  }

  it("names each record's answered directive sequence, and serves one record's rows alone", async () => {
    fake = await FakeProvince.start(env, "510000");
    const identity = newIdentity("Resync Child");
    const cert = certificateNumber("510000");
    const { recordId } = await env
      .client(RecordService, "province:510000")
      .registerRecord({ idempotencyKey: `reg-${cert}`, identity, certificateNumber: cert });
    const otherCert = certificateNumber("510000");
    const other = await env.client(RecordService, "province:510000").registerRecord({
      idempotencyKey: `reg-${otherCert}`,
      identity: newIdentity("Other Child"),
      certificateNumber: otherCert,
    });
    fake.records.set(recordId, { identity, doses: [], certificate: cert, status: "ACTIVE" });
    // Doses given elsewhere: three directives to 510000; it answers the first two only.
    const answer = fake.answer;
    fake.answer = (d) => (Number(d.recordSequence) <= 2 ? answer(d) : undefined);
    for (let n = 1; n <= 3; n++)
      await env
        .client(DoseService, "province:440000")
        .reportDose({ identity, dose: newDose("440000", { doseNumber: n }) });
    await fake.waitFor((d) => d.recordId === recordId && d.recordSequence === 3n);

    const mine = await until("both receipts recorded", async () => {
      const rows = await entries([recordId]);
      return rows[0]?.recordSequence === 2n ? rows : undefined;
    });
    expect(mine.map((e) => e.certificateNumber)).toEqual([cert]);
    // A record the province was never sent a directive for: 0.
    const all = await entries();
    expect(all.find((e) => e.recordId === other.recordId)?.recordSequence).toBe(0n);
    expect(all.find((e) => e.recordId === recordId)?.recordSequence).toBe(2n);
    // A directive the hub stopped waiting for (SUPERSEDED, as when its saga ends: never
    // published again) does not hold the sequence back: a province that lost it would wait
    // for ever.
    await env.hub.sql`UPDATE directives SET state = 'SUPERSEDED'
      WHERE record_id = ${recordId} AND record_sequence = 3`;
    expect((await entries([recordId]))[0]?.recordSequence).toBe(3n);

    const tooMany = await entries(Array.from({ length: 1001 }, (_, i) => `r${i}`)).catch(
      (e: unknown) => e,
    );
    expect(tooMany).toBeInstanceOf(ConnectError);
    expect((tooMany as ConnectError).code).toBe(Code.InvalidArgument);
    expect((tooMany as ConnectError).rawMessage).toMatch(/record_ids/);
  });
});
