import { Code, ConnectError } from "@connectrpc/connect";
import { SnapshotService } from "@evc-interop/gen/evc/national/v1/snapshot_service_pb";
import { startTestHub, type TestHubEnv } from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let env: TestHubEnv;

beforeAll(async () => {
  env = await startTestHub({ snapshotStallMs: 1000 });
});

afterAll(async () => {
  await env?.close();
});

/** Sessions of any hub left idle inside a snapshot stream's transaction. */
async function stalledSnapshotTransactions(): Promise<number> {
  const [r] = await env.hub.sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM pg_stat_activity
    WHERE state = 'idle in transaction'
      AND query LIKE '%record_status, version, position%'
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
