import { DoseService } from "@evc-interop/gen/evc/national/v1/dose_service_pb";
import { MigrationService } from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import {
  certificateNumber,
  FakeProvince,
  newDose,
  newIdentity,
  startTestHub,
  type TestHubEnv,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rebuildSnapshot } from "./store/rebuild.js";

/**
 * The rebuild (I5) over a log with registrations, doses and completed migrations: in this
 * thread and in worker threads, finding and repairing every kind of divergence.
 */
let env: TestHubEnv;
const fakes: FakeProvince[] = [];
const PROVINCES = ["110000", "440000", "510000"];

beforeAll(async () => {
  env = await startTestHub();
  for (const code of PROVINCES) fakes.push(await FakeProvince.start(env, code));
  for (let i = 0; i < 40; i++) {
    const code = PROVINCES[i % 3] as string;
    // Some names need more than ASCII, and a backslash and a quote in the state's text.
    const identity = newIdentity(i % 5 === 0 ? '张小明 "Ming" \\ O\'Brien' : undefined);
    const cert = certificateNumber(code);
    const { recordId } = await env.client(RecordService, `province:${code}`).registerRecord({
      idempotencyKey: `rb-${cert}`,
      identity,
      certificateNumber: cert,
    });
    // The fake source answers from the records it holds.
    fakes
      .find((f) => f.code === code)
      ?.records.set(recordId, { identity, doses: [], certificate: cert, status: "ACTIVE" });
    const giver = PROVINCES[(i + 1) % 3] as string;
    await env
      .client(DoseService, `province:${giver}`)
      .reportDose({ identity, dose: newDose(giver) });
    if (i % 4 === 0) {
      const target = PROVINCES[(i + 2) % 3] as string;
      await env
        .client(MigrationService, `province:${target}`)
        .requestMigration({ idempotencyKey: `rb-m-${cert}`, identity });
    }
  }
  // Let every migration finish, so the snapshot holds still while it is tampered with.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const [open] = await env.hub.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM migrations WHERE state IN ('REQUESTED', 'SOURCE_SUSPENDED', 'COMPENSATING')`;
    const [done] = await env.hub.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM migrations`;
    if (open?.n === 0 && done?.n === 10) break;
    if (Date.now() > deadline)
      throw new Error(`migrations did not finish: ${open?.n} open of ${done?.n}`);
    await new Promise((r) => setTimeout(r, 100));
  }
});

afterAll(async () => {
  for (const f of fakes) await f.stop();
  await env?.close();
});

/** Every row of the snapshot, as text, table by table. */
async function snapshotRows(): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const t of ["records", "certificates", "migrations", "persons"]) {
    const rows = await env.hub.sql<{ r: string }[]>`
      SELECT t::text AS r FROM ${env.hub.sql(t)} t ORDER BY 1`;
    out[t] = rows.map((x) => x.r);
  }
  return out;
}

const NONE = { records: 0, certificates: 0, migrations: 0, persons: 0 };

describe.each([
  ["in this thread", 0],
  ["in two worker threads", 2],
])("rebuild %s", (_name, workers) => {
  const opts = { workers };

  it("replays every event of every person and finds the live snapshot equal", async () => {
    const [n] = await env.hub.sql<{ events: number; persons: number }[]>`
      SELECT count(*)::int AS events, count(DISTINCT stream_id)::int AS persons FROM events`;
    const r = await rebuildSnapshot(env.hub.sql, "compare", opts);
    expect(r.differences).toEqual(NONE);
    expect(r.equal).toBe(true);
    expect({ events: r.events, persons: r.persons }).toEqual(n);
    expect(r.persons).toBe(40);
  });

  it("notices a tampered person state and replaces it", async () => {
    const before = await snapshotRows();
    await env.hub.sql`
      UPDATE persons SET state = jsonb_set(state, '{identity,name}', '"Mallory"')
      WHERE person_key = (SELECT min(person_key) FROM persons)`;
    const found = await rebuildSnapshot(env.hub.sql, "compare", opts);
    expect(found.differences).toEqual({ ...NONE, persons: 2 });
    const repaired = await rebuildSnapshot(env.hub.sql, "replace", opts);
    expect(repaired.equal).toBe(false);
    expect(await snapshotRows()).toEqual(before);
    expect((await rebuildSnapshot(env.hub.sql, "compare", opts)).equal).toBe(true);
  });

  it("puts back a deleted row and removes an invented one, leaving the rest alone", async () => {
    const before = await snapshotRows();
    await env.hub.sql`DELETE FROM records WHERE record_id = (SELECT min(record_id) FROM records)`;
    await env.hub.sql`
      INSERT INTO certificates (certificate_number, record_id, person_key, province, owner_province,
        status, record_status, issued_at, status_changed_at, version, position)
      VALUES ('110000-INVENTED', 'r-x', 'p-x', '110000', '110000', 'NORMAL', 'ACTIVE', now(), now(), 1, 1)`;
    const found = await rebuildSnapshot(env.hub.sql, "compare", opts);
    expect(found.differences).toEqual({ ...NONE, records: 1, certificates: 1 });
    await rebuildSnapshot(env.hub.sql, "replace", opts);
    expect(await snapshotRows()).toEqual(before);
  });

  it("refills a wiped snapshot from the log", async () => {
    const before = await snapshotRows();
    await env.hub.sql`DELETE FROM records`;
    await env.hub.sql`DELETE FROM certificates`;
    await env.hub.sql`DELETE FROM migrations`;
    await env.hub.sql`DELETE FROM persons`;
    await env.hub.sql`DELETE FROM document_links`;
    const repaired = await rebuildSnapshot(env.hub.sql, "replace", opts);
    // Every person's document is known again: none would be taken for a new person.
    const [links] = await env.hub.sql<
      { n: number }[]
    >`SELECT count(*)::int AS n FROM document_links`;
    expect(links?.n).toBe(40);
    expect(repaired.differences).toEqual({
      records: before.records?.length,
      certificates: before.certificates?.length,
      migrations: 10,
      persons: 40,
    });
    expect(await snapshotRows()).toEqual(before);
    expect((await rebuildSnapshot(env.hub.sql, "compare", opts)).equal).toBe(true);
  });

  it("refills the wiped tables of a partly wiped snapshot and keeps the others", async () => {
    const before = await snapshotRows();
    await env.hub.sql`DELETE FROM certificates`;
    await env.hub.sql`DELETE FROM persons`;
    const repaired = await rebuildSnapshot(env.hub.sql, "replace", opts);
    expect(repaired.differences).toEqual({
      ...NONE,
      certificates: before.certificates?.length,
      persons: 40,
    });
    expect(await snapshotRows()).toEqual(before);
  });
});

describe("rebuild of an empty log", () => {
  it("replays nothing and finds the empty snapshot equal, in both modes", async () => {
    const empty = await startTestHub();
    try {
      for (const mode of ["compare", "replace"] as const) {
        const r = await rebuildSnapshot(empty.hub.sql, mode);
        expect({ events: r.events, persons: r.persons, equal: r.equal }).toEqual({
          events: 0,
          persons: 0,
          equal: true,
        });
        expect(r.differences).toEqual(NONE);
      }
      // A person state nobody's events explain is found, and removed by replace.
      await empty.hub.sql`
        INSERT INTO persons (person_key, version, state) VALUES ('p-stray', 1, '{"version": 1}')`;
      expect((await rebuildSnapshot(empty.hub.sql, "compare")).differences).toEqual({
        ...NONE,
        persons: 1,
      });
      await rebuildSnapshot(empty.hub.sql, "replace");
      const [left] = await empty.hub.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM persons`;
      expect(left?.n).toBe(0);
    } finally {
      await empty.close();
    }
  });
});
