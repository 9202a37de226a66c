import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { CertificateStatus, RecordStatus } from "@evc-interop/gen/evc/common/v1/record_pb";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { DirectiveSchema, ReceiptSchema } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import { CertificateService } from "@evc-interop/gen/evc/national/v1/certificate_service_pb";
import {
  MigrationService,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { SnapshotService } from "@evc-interop/gen/evc/national/v1/snapshot_service_pb";
import { ProvinceService } from "@evc-interop/gen/evc/province/v1/province_service_pb";
import { provinceSubject, SIGNATURE_HEADER } from "@evc-interop/runtime";
import {
  closeTestProvince,
  controlTransport,
  newDose,
  newIdentity,
  readerTransport,
  startTestHub,
  startTestProvince,
  type TestHubEnv,
  transport,
  until,
} from "@evc-interop/testing";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PhoneClient } from "./phone-client.js";
import type { Province } from "./province.js";
import { reconcile } from "./reconcile.js";

let env: TestHubEnv;
const running: Province[] = [];
let bj: Province;
let gd: Province;
let sc: Province;

beforeAll(async () => {
  env = await startTestHub({ consumerAckWaitMs: 1000 });
  bj = await startTestProvince(env, "110000");
  gd = await startTestProvince(env, "440000");
  sc = await startTestProvince(env, "510000");
  running.push(bj, gd, sc);
});

afterAll(async () => {
  for (const p of running) await closeTestProvince(p);
  await env?.close();
});

const control = (p: Province) => createClient(ControlService, controlTransport(p));
const phone = (p: Province) => createClient(ProvinceService, readerTransport(p));

async function migrationDone(id: string) {
  return until("migration completed", async () => {
    const { migration } = await env
      .client(MigrationService, "operator:ops")
      .getMigration({ migrationId: id });
    return migration?.state === MigrationState.COMPLETED ? migration : undefined;
  });
}

/** The province store's certificates versus the hub snapshot for that province. */
async function divergence(p: Province): Promise<string[]> {
  const hub = new Map<string, string>();
  for await (const page of env.client(SnapshotService, `province:${p.code}`).streamSnapshot({})) {
    for (const e of page.entries)
      hub.set(
        e.certificateNumber,
        `${CertificateStatus[e.certificateStatus]}/${e.ownerProvinceCode}`,
      );
  }
  const local = new Map<string, string>();
  for (const r of await p.sql<
    { certificate_number: string; status: string; owner_province: string }[]
  >`
    SELECT certificate_number, status, owner_province FROM certificates`) {
    local.set(r.certificate_number, `${r.status}/${r.owner_province}`);
  }
  const out: string[] = [];
  for (const [k, v] of hub)
    if (local.get(k) !== v) out.push(`${k}: hub ${v}, province ${local.get(k) ?? "missing"}`);
  for (const [k, v] of local) if (!hub.has(k)) out.push(`${k}: province ${v}, hub missing`);
  return out;
}

describe("both scenarios across three reference provinces", () => {
  it("serves /healthz, /readyz (PostgreSQL and NATS answer) and Prometheus /metrics", async () => {
    expect((await fetch(`${bj.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${bj.url}/readyz`);
    expect([ready.status, await ready.text()]).toEqual([200, "ready\n"]);
    const metrics = await (await fetch(`${bj.url}/metrics`)).text();
    expect(metrics).toMatch(/evc_province_directives_applied_total/);
    expect((await fetch(`${bj.url}/nothing-here`)).status).toBe(404);
  });

  it("migration A -> B: the phone watching A sees SUSPENDED pushed, B issues a NORMAL certificate", async () => {
    const identity = newIdentity();
    const reg = await control(bj).registerRecord({ identity, doses: [newDose("110000")] });
    const watch = phone(bj).watchCertificate({ certificateNumber: reg.certificateNumber });
    const seen: CertificateStatus[] = [];
    const watching = (async () => {
      for await (const msg of watch) {
        seen.push(msg.certificate?.status ?? 0);
        if (msg.certificate?.status === CertificateStatus.SUSPENDED) return;
      }
    })();
    await until("watch started", async () => (seen.length > 0 ? true : undefined));
    expect(seen[0]).toBe(CertificateStatus.NORMAL);

    const { migrationId } = await control(gd).migrateIn({ identity });
    const done = await migrationDone(migrationId);
    await watching;
    expect(seen).toEqual([CertificateStatus.NORMAL, CertificateStatus.SUSPENDED]);

    const atB = await phone(gd).getCertificateStatusByIdentity({ identity });
    expect(atB.certificate?.certificateNumber).toBe(done.targetCertificateNumber);
    expect(atB.certificate?.status).toBe(CertificateStatus.NORMAL);
    const record = await phone(gd).getRecord({ recordId: reg.recordId });
    expect(record.status).toBe(RecordStatus.ACTIVE);
    expect(record.record?.doses).toHaveLength(1);
    const atA = await phone(bj).getCertificateStatus({ certificateNumber: reg.certificateNumber });
    expect(atA.certificate?.status).toBe(CertificateStatus.SUSPENDED);
    // I2 across the province caches: exactly one NORMAL certificate for the person.
    const normals = [
      (await phone(bj).getCertificateStatusByIdentity({ identity })).certificate?.status,
      atB.certificate?.status,
    ].filter((s) => s === CertificateStatus.NORMAL);
    expect(normals).toHaveLength(1);
  });

  it("a dose given in C to D's person: D's record gains it once, D's certificate stays NORMAL", async () => {
    const identity = newIdentity();
    const reg = await control(sc).registerRecord({ identity });
    const dose = newDose("440000");
    expect((await control(gd).recordDose({ identity, dose })).reportedToHub).toBe(true);
    expect((await control(gd).recordDose({ identity, dose })).reportedToHub).toBe(true);
    const record = await until("dose appended at the owner", async () => {
      const r = await phone(sc).getRecord({ recordId: reg.recordId });
      return r.record?.doses.length === 1 ? r : undefined;
    });
    expect(record.record?.doses[0]?.doseId).toBe(dose.doseId);
    await new Promise((r) => setTimeout(r, 300));
    expect((await phone(sc).getRecord({ recordId: reg.recordId })).record?.doses).toHaveLength(1);
    expect(
      (await phone(sc).getCertificateStatus({ certificateNumber: reg.certificateNumber }))
        .certificate?.status,
    ).toBe(CertificateStatus.NORMAL);
  });
});

describe("exactly-once effect (I4)", () => {
  it("every directive delivered 3 times, reordered, with a hard kill after commit before ack: same state and receipts", async () => {
    // A province of its own whose first instance dies right after committing its first directive.
    let crashed = false;
    const code = "310000";
    let sh = await startTestProvince(
      env,
      code,
      {},
      {
        crashAfterCommit: () => {
          if (crashed) return false;
          crashed = true;
          return true;
        },
      },
    );
    const schema = sh.config.schema;
    const identity = newIdentity();
    const reg = await control(bj).registerRecord({ identity, doses: [newDose("110000")] });
    const doses = [newDose("510000"), newDose("510000")];
    const { migrationId } = await control(sh).migrateIn({ identity });
    await until("first directive committed", async () => (crashed ? true : undefined));
    await sh.kill();
    sh = await startTestProvince(env, code, { schema });
    running.push(sh);
    const done = await migrationDone(migrationId);
    for (const d of doses) await control(sc).recordDose({ identity, dose: d });
    await until("doses at the new owner", async () => {
      const r = await phone(sh).getRecord({ recordId: reg.recordId });
      return r.record?.doses.length === 3 ? r : undefined;
    });
    await until("receipts accepted", async () => {
      const [r] = await sh.sql<
        { n: number }[]
      >`SELECT count(*)::int AS n FROM inbox WHERE submitted_at IS NULL`;
      return r?.n === 0 ? true : undefined;
    });
    const stateOf = async () => ({
      records:
        await sh.sql`SELECT record_id, status, last_sequence FROM records ORDER BY record_id`,
      doses: await sh.sql`SELECT dose_id FROM doses ORDER BY dose_id`,
      certs:
        await sh.sql`SELECT certificate_number, status FROM certificates ORDER BY certificate_number`,
      receipts: (
        await sh.sql<
          { directive_id: string; receipt: Uint8Array }[]
        >`SELECT directive_id, receipt FROM inbox ORDER BY directive_id`
      ).map((r) => ({ id: r.directive_id, receipt: fromBinary(ReceiptSchema, r.receipt) })),
    });
    const before = await stateOf();
    expect(before.certs).toEqual([
      { certificate_number: done.targetCertificateNumber, status: "NORMAL" },
    ]);

    // Replay every directive this province ever got, twice more, newest first.
    const rows = await env.hub.sql<{ payload: Uint8Array }[]>`
      SELECT payload FROM directives WHERE province = ${code} ORDER BY record_sequence DESC`;
    expect(rows.length).toBe(3); // activate + two doses
    const nc = await connect({ servers: env.config.natsUrl });
    try {
      const js = jetstream(nc);
      for (let round = 0; round < 2; round++) {
        for (const r of rows) {
          const d = fromBinary(DirectiveSchema, r.payload);
          const h = headers();
          h.set(SIGNATURE_HEADER, env.signer.sign(r.payload));
          await js.publish(provinceSubject(env.hub.layout, code), r.payload, {
            msgID: `${d.directiveId}-replay-${round}`,
            headers: h,
          });
        }
      }
      const jsm = await jetstreamManager(nc);
      await until("replays consumed", async () => {
        const [m] = await sh.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM inbox`;
        const info = await jsm.consumers.info(env.config.stream, `province-${code}`);
        return m?.n === 3 && info.num_pending === 0 && info.num_ack_pending === 0
          ? true
          : undefined;
      });
    } finally {
      await nc.close();
    }
    await new Promise((r) => setTimeout(r, 300));
    expect(await stateOf()).toEqual(before);
    expect(await divergence(sh)).toEqual([]);
  });
});

describe("reconciliation (I6)", () => {
  it("repairs deleted rows, flipped statuses, changed owners and unknown rows in one pass", async () => {
    const made = [];
    for (let i = 0; i < 4; i++)
      made.push(await control(sc).registerRecord({ identity: newIdentity() }));
    expect(await divergence(sc)).toEqual([]);
    const [gone, flipped, moved] = made;
    await sc.sql`DELETE FROM certificates WHERE certificate_number = ${gone?.certificateNumber ?? ""}`;
    await sc.sql`UPDATE certificates SET status = 'REVOKED' WHERE certificate_number = ${flipped?.certificateNumber ?? ""}`;
    await sc.sql`UPDATE certificates SET owner_province = '650000' WHERE certificate_number = ${moved?.certificateNumber ?? ""}`;
    await sc.sql`INSERT INTO records (record_id, status) VALUES ('bogus-record', 'ACTIVE')`;
    await sc.sql`INSERT INTO certificates (certificate_number, record_id, status, owner_province, issued_at, status_changed_at)
      VALUES ('510000-BOGUS00001', 'bogus-record', 'NORMAL', '510000', now() - interval '1 day', now() - interval '1 day')`;
    expect((await divergence(sc)).length).toBe(4);

    const report = await control(sc).reconcile({});
    expect(report).toMatchObject({
      missingRepaired: 1n,
      extraRepaired: 1n,
      statusRepaired: 1n,
      ownerRepaired: 1n,
    });
    expect(report.watermark).toBeGreaterThan(0n);
    expect(await divergence(sc)).toEqual([]);
    const again = await control(sc).reconcile({});
    expect(again).toMatchObject({
      missingRepaired: 0n,
      extraRepaired: 0n,
      statusRepaired: 0n,
      ownerRepaired: 0n,
    });
    const metrics = await (await fetch(`${sc.url}/metrics`)).text();
    expect(metrics).toMatch(
      /evc_province_reconciliation_repairs_total\{kind="missing",province="510000"\} 1/,
    );
  });
});

describe("reconciliation in batches (I6)", () => {
  it("repairs across pages and repair batches, with history rows and fresh status reads", async () => {
    // Pages of 3 certificates and repairs of 2 per transaction: every boundary is crossed.
    const sh = await startTestProvince(env, "310000", {
      reconcileChunk: 3,
      reconcileRepairBatch: 2,
    });
    running.push(sh);
    const made = [];
    for (let i = 0; i < 10; i++)
      made.push(
        await control(sh).registerRecord({ identity: newIdentity(), doses: [newDose("310000")] }),
      );
    // Other tests of this file may have left this province's code in the hub's snapshot.
    await control(sh).reconcile({});
    expect(await divergence(sh)).toEqual([]);
    const numbers = made.map((m) => m.certificateNumber);
    const [wiped, ...rest] = numbers;
    const gone = rest.slice(0, 3);
    const flipped = rest.slice(3, 6);
    const moved = rest[6] ?? "";
    // One person's record is gone altogether, with its doses and certificate.
    const [rec] = await sh.sql<{ record_id: string }[]>`
      SELECT record_id FROM certificates WHERE certificate_number = ${wiped ?? ""}`;
    await sh.sql`DELETE FROM certificates WHERE record_id = ${rec?.record_id ?? ""}`;
    await sh.sql`DELETE FROM doses WHERE record_id = ${rec?.record_id ?? ""}`;
    await sh.sql`DELETE FROM records WHERE record_id = ${rec?.record_id ?? ""}`;
    await sh.sql`DELETE FROM certificates WHERE certificate_number = ANY(${gone})`;
    await sh.sql`UPDATE certificates SET status = 'REVOKED' WHERE certificate_number = ANY(${flipped})`;
    await sh.sql`UPDATE certificates SET owner_province = '650000' WHERE certificate_number = ${moved}`;
    // A phone reads the tampered status (the direct UPDATE told no cache).
    const first = flipped[0] ?? "";
    const before = await phone(sh).getCertificateStatus({ certificateNumber: first });
    expect(before.certificate?.status).toBe(CertificateStatus.REVOKED);
    expect((await divergence(sh)).length).toBe(8);

    const report = await control(sh).reconcile({});
    expect(report).toMatchObject({
      missingRepaired: 4n,
      statusRepaired: 3n,
      ownerRepaired: 1n,
      extraRepaired: 0n,
    });
    expect(await divergence(sh)).toEqual([]);
    const history = await sh.sql<{ cause: string; n: number }[]>`
      SELECT cause, count(*)::int AS n FROM certificate_history
      WHERE cause LIKE 'reconciliation%' AND certificate_number = ANY(${numbers})
      GROUP BY cause ORDER BY cause`;
    expect(history).toEqual([
      { cause: "reconciliation: missing", n: 4 },
      { cause: "reconciliation: status differed", n: 3 },
    ]);
    const [record] = await sh.sql<{ status: string }[]>`
      SELECT status FROM records WHERE record_id = ${rec?.record_id ?? ""}`;
    expect(record?.status).toBe("ACTIVE");
    await until("the repaired status is read", async () => {
      const after = await phone(sh).getCertificateStatus({ certificateNumber: first });
      return after.certificate?.status === CertificateStatus.NORMAL ? true : undefined;
    });
    const again = await control(sh).reconcile({});
    expect(again).toMatchObject({ missingRepaired: 0n, statusRepaired: 0n, ownerRepaired: 0n });
  });
});

describe("a reconciliation pass that fails", () => {
  it("ends the hub's snapshot stream, whose transaction would hold back the xmin horizon", async () => {
    const code = "310000";
    const p = await startTestProvince(env, code, { reconcileChunk: 50 });
    running.push(p);
    // Far more snapshot than HTTP/2 and the sockets buffer, so the hub cannot finish the stream
    // on its own (20,000 entries were not enough: the old code passed this test with them).
    await env.hub.sql`
      INSERT INTO certificates (certificate_number, record_id, person_key, province, owner_province,
        status, record_status, issued_at, status_changed_at, version, position)
      SELECT ${code} || '-Z' || lpad(i::text, 9, '0'), 'zr' || i, 'zp' || i, ${code}, ${code},
        'NORMAL', 'ACTIVE', now(), now(), 1, i
      FROM generate_series(1, 200000) AS i`;
    // A local row the hub does not know, sorting first: the pass asks the hub about it.
    await p.sql`INSERT INTO records (record_id, status) VALUES ('zz-record', 'ACTIVE')`;
    await p.sql`INSERT INTO certificates (certificate_number, record_id, status, owner_province, issued_at, status_changed_at)
      VALUES (${code} || '-0', 'zz-record', 'NORMAL', ${code}, now() - interval '1 day', now() - interval '1 day')`;
    const unavailable = createClient(
      CertificateService,
      createRouterTransport(({ service }) => {
        service(CertificateService, {
          getCertificateStatus() {
            throw new ConnectError("hub unreachable", Code.Unavailable);
          },
        });
      }),
    );
    const snapshot = env.client(SnapshotService, `province:${code}`);
    try {
      await expect(
        reconcile(p.store, snapshot, unavailable, { chunk: 50, extraGraceMs: 0 }, p.log, p.metrics),
      ).rejects.toThrow(/hub unreachable/);
      await until("the hub's snapshot transaction ended", async () => {
        const [open] = await env.hub.sql<{ n: number }[]>`
          SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE state = 'idle in transaction' AND query LIKE '%certificate_number COLLATE "C" >%'
            AND query LIKE '%record_status, version, position%'`;
        return open?.n === 0 ? true : undefined;
      });
    } finally {
      await env.hub
        .sql`DELETE FROM certificates WHERE province = ${code} AND certificate_number LIKE ${`${code}-Z%`}`;
    }
  });
});

describe("phone client", () => {
  it("serves from its cache, and falls back to polling when streaming is not available", async () => {
    const identity = newIdentity();
    const reg = await control(bj).registerRecord({ identity });
    const noStreams = transport(bj.url, [
      (next) => async (req) => {
        if (req.stream) throw new ConnectError("streaming blocked by a proxy", Code.Unavailable);
        return next(req);
      },
    ]);
    const app = new PhoneClient(noStreams, { pollMs: 50 });
    expect((await app.status(reg.certificateNumber)).status).toBe(CertificateStatus.NORMAL);
    expect(app.cached(reg.certificateNumber)?.status).toBe(CertificateStatus.NORMAL);
    const abort = new AbortController();
    const seen: CertificateStatus[] = [];
    const watching = (async () => {
      for await (const c of app.watch(reg.certificateNumber, abort.signal)) {
        seen.push(c.status);
        if (c.status === CertificateStatus.SUSPENDED) abort.abort();
      }
    })();
    await until("first poll", async () => (seen.length > 0 ? true : undefined));
    const { migrationId } = await control(gd).migrateIn({ identity });
    await migrationDone(migrationId);
    await watching;
    expect(seen).toEqual([CertificateStatus.NORMAL, CertificateStatus.SUSPENDED]);
    expect(app.cached(reg.certificateNumber)?.status).toBe(CertificateStatus.SUSPENDED);
  });
});
