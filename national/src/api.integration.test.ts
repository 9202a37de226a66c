import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { ErrorDetailSchema } from "@evc-interop/gen/evc/common/v1/error_details_pb";
import { CloseReason } from "@evc-interop/gen/evc/common/v1/record_pb";
import { ReceiptOutcome, ReceiptSchema } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import { AuditService } from "@evc-interop/gen/evc/national/v1/audit_service_pb";
import { CertificateService } from "@evc-interop/gen/evc/national/v1/certificate_service_pb";
import { DirectiveService } from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import { DoseService } from "@evc-interop/gen/evc/national/v1/dose_service_pb";
import {
  MigrationService,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import { SnapshotService } from "@evc-interop/gen/evc/national/v1/snapshot_service_pb";
import { generateCredential, TokenSigner } from "@evc-interop/runtime";
import {
  certificateNumber,
  FakeProvince,
  newDose,
  newIdentity,
  startTestHub,
  type TestHubEnv,
  transport,
  until,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { sealAll, verifyChain } from "./chain/chain.js";
import { rebuildSnapshot } from "./store/rebuild.js";

let env: TestHubEnv;
const fakes: FakeProvince[] = [];
const BJ = "110000";
const GD = "440000";
const SC = "510000";

beforeAll(async () => {
  env = await startTestHub();
  for (const code of [BJ, GD, SC]) fakes.push(await FakeProvince.start(env, code));
});

afterAll(async () => {
  for (const f of fakes) await f.stop();
  await env?.close();
});

function bj(): FakeProvince {
  const f = fakes[0];
  if (!f) throw new Error("province 110000 not started");
  return f;
}

async function refusal(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to be refused");
}

async function eventCount(): Promise<number> {
  const [r] = await env.hub.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM events`;
  return r?.n ?? 0;
}

async function registered(code = BJ) {
  const identity = newIdentity();
  const cert = certificateNumber(code);
  const res = await env.client(RecordService, `province:${code}`).registerRecord({
    idempotencyKey: `api-${cert}`,
    identity,
    certificateNumber: cert,
  });
  fakes
    .find((f) => f.code === code)
    ?.records.set(res.recordId, { identity, doses: [], certificate: cert, status: "ACTIVE" });
  return { identity, cert, recordId: res.recordId };
}

describe("one port: Connect, gRPC and gRPC-Web, over HTTP/1.1 and HTTP/2", () => {
  it.each([
    [
      "Connect over HTTP/1.1",
      () =>
        createConnectTransport({
          baseUrl: env.hub.url,
          httpVersion: "1.1",
          interceptors: [env.creds.auth(`province:${BJ}`)],
        }),
    ],
    [
      "Connect over HTTP/2",
      () =>
        createConnectTransport({
          baseUrl: env.hub.url,
          httpVersion: "2",
          interceptors: [env.creds.auth(`province:${BJ}`)],
        }),
    ],
    [
      "gRPC",
      () =>
        createGrpcTransport({
          baseUrl: env.hub.url,
          interceptors: [env.creds.auth(`province:${BJ}`)],
        }),
    ],
    [
      "gRPC-Web over HTTP/1.1",
      () =>
        createGrpcWebTransport({
          baseUrl: env.hub.url,
          httpVersion: "1.1",
          interceptors: [env.creds.auth(`province:${BJ}`)],
        }),
    ],
  ])("%s", async (_name, make) => {
    const { cert } = await registered();
    const client = createClient(CertificateService, make());
    const res = await client.getCertificateStatus({ certificateNumber: cert });
    expect(res.certificate?.certificateNumber).toBe(cert);
  });

  it("serves /healthz, /readyz and Prometheus /metrics", async () => {
    expect((await fetch(`${env.hub.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${env.hub.url}/readyz`);
    expect(ready.status).toBe(200);
    const metrics = await (await fetch(`${env.hub.url}/metrics`)).text();
    expect(metrics).toMatch(
      /evc_hub_requests_total\{method="evc.national.v1.CertificateService\/GetCertificateStatus",code="ok"\}/,
    );
    // Per-province gauges: declared even when no province has any (then no series).
    for (const gauge of [
      "evc_hub_open_migrations",
      "evc_hub_outbox_backlog",
      "evc_hub_dead_lettered_directives",
      "evc_hub_oldest_unanswered_directive_seconds",
    ]) {
      expect(metrics).toContain(`# TYPE ${gauge} gauge`);
    }
    expect(metrics).toContain("# TYPE evc_hub_receipt_latency_seconds histogram");
  });
});

describe("authentication and authorization (I7)", () => {
  it("refuses a call without a credential, with a garbage one, and with an untrusted key", async () => {
    const anonymous = createClient(CertificateService, transport(env.hub.url));
    expect(
      (await refusal(anonymous.getCertificateStatus({ certificateNumber: "110000-ABCDE" }))).code,
    ).toBe(Code.Unauthenticated);
    const garbage = createClient(
      CertificateService,
      transport(env.hub.url, [
        (next) => (req) => {
          req.header.set("authorization", "Bearer not.a.jwt");
          return next(req);
        },
      ]),
    );
    expect(
      (await refusal(garbage.getCertificateStatus({ certificateNumber: "110000-ABCDE" }))).code,
    ).toBe(Code.Unauthenticated);
    const { credential } = await generateCredential(`province:${BJ}`); // right name, wrong key
    const signer = new TokenSigner(credential);
    const forged = createClient(
      CertificateService,
      transport(env.hub.url, [
        (next) => async (req) => {
          req.header.set("authorization", `Bearer ${await signer.token()}`);
          return next(req);
        },
      ]),
    );
    expect(
      (await refusal(forged.getCertificateStatus({ certificateNumber: "110000-ABCDE" }))).code,
    ).toBe(Code.Unauthenticated);
  });

  it("refuses acting for another province", async () => {
    const { identity, cert, recordId } = await registered(BJ);
    // Closing someone else's record.
    expect(
      (
        await refusal(
          env
            .client(RecordService, `province:${GD}`)
            .closeRecord({ recordId, reason: CloseReason.DECEASED }),
        )
      ).code,
    ).toBe(Code.PermissionDenied);
    // Reporting a dose "given" by another province.
    expect(
      (
        await refusal(
          env.client(DoseService, `province:${GD}`).reportDose({ identity, dose: newDose(SC) }),
        )
      ).code,
    ).toBe(Code.PermissionDenied);
    // Registering birth doses credited to another province.
    const credited = await refusal(
      env.client(RecordService, `province:${GD}`).registerRecord({
        idempotencyKey: `credited-${cert}`,
        identity: newIdentity(),
        certificateNumber: certificateNumber(GD),
        doses: [newDose(GD), newDose(SC)],
      }),
    );
    expect([credited.code, credited.rawMessage]).toEqual([
      Code.PermissionDenied,
      expect.stringMatching(/^doses\[1\]\.administered_province_code: /),
    ]);
    // Registering a certificate numbered for another province.
    expect(
      (
        await refusal(
          env.client(RecordService, `province:${GD}`).registerRecord({
            idempotencyKey: `x-${cert}`,
            identity: newIdentity(),
            certificateNumber: certificateNumber(SC),
          }),
        )
      ).code,
    ).toBe(Code.InvalidArgument);
    // Cancelling, or reporting the issuance of, a migration into another province.
    bj().answer = () => undefined;
    try {
      const { migration } = await env
        .client(MigrationService, `province:${GD}`)
        .requestMigration({ idempotencyKey: `o-${cert}`, identity });
      const id = migration?.migrationId ?? "";
      expect(
        (
          await refusal(
            env.client(MigrationService, `province:${SC}`).cancelMigration({ migrationId: id }),
          )
        ).code,
      ).toBe(Code.PermissionDenied);
      expect(
        (
          await refusal(
            env.client(MigrationService, `province:${SC}`).getMigration({ migrationId: id }),
          )
        ).code,
      ).toBe(Code.PermissionDenied);
      expect(
        (
          await refusal(
            env.client(MigrationService, `province:${SC}`).reportCertificateIssued({
              migrationId: id,
              attempt: 1,
              certificateNumber: certificateNumber(SC),
            }),
          )
        ).code,
      ).toBe(Code.PermissionDenied);
      // Reading another province's directives and snapshot.
      expect(
        (
          await refusal(
            env.client(DirectiveService, `province:${SC}`).listDirectives({ provinceCode: BJ }),
          )
        ).code,
      ).toBe(Code.PermissionDenied);
      const mine = await env.client(DirectiveService, `province:${BJ}`).listDirectives({});
      expect(mine.directives.some((d) => d.directive?.correlationId === id)).toBe(true);
      expect(mine.directives.every((d) => d.directive?.targetProvinceCode === BJ)).toBe(true);
      // Of one record only (what a restored province reads again): that record's, nothing else.
      const recordId = mine.directives.find((d) => d.directive?.correlationId === id)?.directive
        ?.recordId;
      const ofRecord = await env
        .client(DirectiveService, `province:${BJ}`)
        .listDirectives({ recordIds: [recordId ?? ""] });
      expect(ofRecord.directives.length).toBeGreaterThan(0);
      expect(ofRecord.directives.every((d) => d.directive?.recordId === recordId)).toBe(true);
      expect(
        (await env.client(DirectiveService, `province:${BJ}`).listDirectives({ recordIds: ["x"] }))
          .directives,
      ).toEqual([]);
      // The target cancels: the source is told to restore.
      const cancelled = await env
        .client(MigrationService, `province:${GD}`)
        .cancelMigration({ migrationId: id, reason: "family stayed" });
      expect(cancelled.migration?.endReason).toBe("family stayed");
    } finally {
      bj().answer = (d) => bj().correctAnswer(d);
    }
    // Audit: only the province that manages the record now, and operators. Requesting and
    // cancelling a migration disclosed nothing to Guangdong.
    for (const other of [SC, GD]) {
      expect(
        (
          await refusal(
            env.client(AuditService, `province:${other}`).getPersonHistory({ identity }),
          )
        ).code,
      ).toBe(Code.PermissionDenied);
    }
    expect(
      (await env.client(AuditService, `province:${BJ}`).getPersonHistory({ identity })).events
        .length,
    ).toBeGreaterThan(0);
    expect((await refusal(env.client(AuditService, `province:${BJ}`).verifyLog({}))).code).toBe(
      Code.PermissionDenied,
    );
    // Operators cannot act as a province.
    expect(
      (
        await refusal(
          env
            .client(MigrationService, "operator:ops")
            .requestMigration({ idempotencyKey: `op-${cert}`, identity }),
        )
      ).code,
    ).toBe(Code.PermissionDenied);
  });
});

describe("bad input: the right code, the field named, nothing written", () => {
  const badId = () => {
    const id = newIdentity();
    id.idNumber = `${id.idNumber.slice(0, 17)}${id.idNumber.endsWith("0") ? "1" : "0"}`;
    return id;
  };
  const cases: [string, () => Promise<unknown>, Code, RegExp][] = [
    [
      "RegisterRecord: bad check character",
      () =>
        env.client(RecordService, `province:${BJ}`).registerRecord({
          idempotencyKey: "bad-00001",
          identity: badId(),
          certificateNumber: certificateNumber(BJ),
        }),
      Code.InvalidArgument,
      /identity.*id_number/,
    ],
    [
      "RegisterRecord: missing identity",
      () =>
        env.client(RecordService, `province:${BJ}`).registerRecord({
          idempotencyKey: "bad-00002",
          certificateNumber: certificateNumber(BJ),
        }),
      Code.InvalidArgument,
      /identity/,
    ],
    [
      "RegisterRecord: bad dose province",
      () =>
        env.client(RecordService, `province:${BJ}`).registerRecord({
          idempotencyKey: "bad-00003",
          identity: newIdentity(),
          certificateNumber: certificateNumber(BJ),
          doses: [newDose("999999")],
        }),
      Code.InvalidArgument,
      /doses\[0\]\.administered_province_code/,
    ],
    [
      "LocateRecord: unspecified id type",
      () =>
        env
          .client(RecordService, `province:${BJ}`)
          .locateRecord({ identity: { ...newIdentity(), idType: 0 } }),
      Code.InvalidArgument,
      /identity\.id_type/,
    ],
    [
      "CloseRecord: unspecified reason",
      () => env.client(RecordService, `province:${BJ}`).closeRecord({ recordId: "r-1" }),
      Code.InvalidArgument,
      /reason/,
    ],
    [
      "CloseRecord: merged without target",
      () =>
        env
          .client(RecordService, `province:${BJ}`)
          .closeRecord({ recordId: "r-1", reason: CloseReason.MERGED }),
      Code.InvalidArgument,
      /merged_into_record_id/,
    ],
    [
      "RequestMigration: short idempotency key",
      () =>
        env
          .client(MigrationService, `province:${BJ}`)
          .requestMigration({ idempotencyKey: "k", identity: newIdentity() }),
      Code.InvalidArgument,
      /idempotency_key/,
    ],
    [
      "GetMigration: not a UUID",
      () => env.client(MigrationService, `province:${BJ}`).getMigration({ migrationId: "nope" }),
      Code.InvalidArgument,
      /migration_id/,
    ],
    [
      "ListMigrations: page size too large",
      () => env.client(MigrationService, `province:${BJ}`).listMigrations({ pageSize: 5000 }),
      Code.InvalidArgument,
      /page_size/,
    ],
    [
      "ListMigrations: forged page token",
      () => env.client(MigrationService, `province:${BJ}`).listMigrations({ pageToken: "zzz" }),
      Code.InvalidArgument,
      /page_token/,
    ],
    [
      "CancelMigration: not a UUID",
      () => env.client(MigrationService, `province:${BJ}`).cancelMigration({ migrationId: "x" }),
      Code.InvalidArgument,
      /migration_id/,
    ],
    [
      "ReportCertificateIssued: bad number",
      () =>
        env.client(MigrationService, `province:${BJ}`).reportCertificateIssued({
          migrationId: "5f0c7a4e-2b1d-4c3e-9a8f-0123456789ab",
          attempt: 1,
          certificateNumber: "nope",
        }),
      Code.InvalidArgument,
      /certificate_number/,
    ],
    [
      "SubmitReceipts: empty batch",
      () => env.client(DirectiveService, `province:${BJ}`).submitReceipts({ receipts: [] }),
      Code.InvalidArgument,
      /receipts/,
    ],
    [
      "SubmitReceipts: unspecified outcome",
      () =>
        env.client(DirectiveService, `province:${BJ}`).submitReceipts({
          receipts: [
            create(ReceiptSchema, {
              directiveId: "5f0c7a4e-2b1d-4c3e-9a8f-0123456789ab",
              attempt: 1,
            }),
          ],
        }),
      Code.InvalidArgument,
      /receipts\[0\]\.outcome/,
    ],
    [
      "ListDirectives: bad province",
      () => env.client(DirectiveService, `province:${BJ}`).listDirectives({ provinceCode: "12" }),
      Code.InvalidArgument,
      /province_code/,
    ],
    [
      "ReportDose: missing dose",
      () => env.client(DoseService, `province:${BJ}`).reportDose({ identity: newIdentity() }),
      Code.InvalidArgument,
      /dose/,
    ],
    [
      "ReportDose: dose number 0",
      () =>
        env
          .client(DoseService, `province:${BJ}`)
          .reportDose({ identity: newIdentity(), dose: newDose(BJ, { doseNumber: 0 }) }),
      Code.InvalidArgument,
      /dose\.dose_number/,
    ],
    [
      "GetCertificateStatus: bad number",
      () =>
        env
          .client(CertificateService, `province:${BJ}`)
          .getCertificateStatus({ certificateNumber: "x" }),
      Code.InvalidArgument,
      /certificate_number/,
    ],
    [
      "GetPersonStateAsOf: missing as_of",
      () =>
        env.client(AuditService, "operator:ops").getPersonStateAsOf({ identity: newIdentity() }),
      Code.InvalidArgument,
      /as_of/,
    ],
    [
      "StreamSnapshot: chunk too large",
      async () => {
        for await (const _ of env
          .client(SnapshotService, `province:${BJ}`)
          .streamSnapshot({ chunkSize: 100000 })) {
          /* drain */
        }
      },
      Code.InvalidArgument,
      /chunk_size/,
    ],
  ];
  it.each(cases)("%s", async (_name, call, code, field) => {
    const before = await eventCount();
    const err = await refusal(call());
    expect(err.code).toBe(code);
    expect(err.message).toMatch(field);
    expect(await eventCount()).toBe(before);
  });

  it("business refusals carry a machine-readable ErrorDetail naming the owner (I1)", async () => {
    const { identity } = await registered(BJ);
    const err = await refusal(
      env.client(RecordService, `province:${GD}`).registerRecord({
        idempotencyKey: `dup-${identity.idNumber}`,
        identity,
        certificateNumber: certificateNumber(GD),
      }),
    );
    expect(err.code).toBe(Code.AlreadyExists);
    const [detail] = err.findDetails(ErrorDetailSchema);
    expect(detail?.ownerProvinceCode).toBe(BJ);
    expect(detail?.field).toBe("identity");
  });

  it("not found is NotFound", async () => {
    expect(
      (
        await refusal(
          env.client(RecordService, `province:${BJ}`).locateRecord({ identity: newIdentity() }),
        )
      ).code,
    ).toBe(Code.NotFound);
    expect(
      (
        await refusal(
          env
            .client(MigrationService, `province:${BJ}`)
            .getMigration({ migrationId: "5f0c7a4e-2b1d-4c3e-9a8f-0123456789ab" }),
        )
      ).code,
    ).toBe(Code.NotFound);
  });
});

describe("the log is the truth (I5)", () => {
  it("a rebuild from the log equals the live snapshot", async () => {
    const { identity, cert } = await registered(BJ);
    await env.client(DoseService, `province:${SC}`).reportDose({ identity, dose: newDose(SC) });
    await env
      .client(MigrationService, `province:${GD}`)
      .requestMigration({ idempotencyKey: `rb-${cert}`, identity });
    await new Promise((r) => setTimeout(r, 300));
    const result = await rebuildSnapshot(env.hub.sql);
    expect(result.differences).toEqual({ records: 0, certificates: 0, migrations: 0, persons: 0 });
    expect(result.equal).toBe(true);
    expect(result.events).toBe(await eventCount());
  });

  it("a rebuild notices a tampered projection row", async () => {
    const { cert } = await registered(SC);
    await env.hub
      .sql`UPDATE certificates SET status = 'REVOKED' WHERE certificate_number = ${cert}`;
    const result = await rebuildSnapshot(env.hub.sql);
    expect(result.differences.certificates).toBe(2);
    const repaired = await rebuildSnapshot(env.hub.sql, "replace");
    expect(repaired.equal).toBe(false);
    expect((await rebuildSnapshot(env.hub.sql)).equal).toBe(true);
  });

  it("the application cannot update or delete events", async () => {
    await expect(env.hub.sql`UPDATE events SET type = 'x' WHERE position = 1`).rejects.toThrow(
      /append-only/,
    );
    await expect(env.hub.sql`DELETE FROM events WHERE position = 1`).rejects.toThrow(/append-only/);
  });

  it("a link removed from the chain is reported, naming the missing link", async () => {
    const { identity } = await registered(GD);
    // A later event, so the removed link is inside the chain, not its end.
    const later = await registered(GD);
    const audit = env.client(AuditService, "operator:ops");
    const history = await audit.getPersonHistory({ identity });
    const position = Number(history.events[0]?.position);
    const laterHistory = await audit.getPersonHistory({ identity: later.identity });
    const laterPosition = Number(laterHistory.events[0]?.position);
    await vi.waitFor(
      async () => {
        await sealAll(env.hub.sql);
        const sealed = await env.hub.sql`
          SELECT 1 FROM event_chain WHERE position IN (${position}, ${laterPosition})`;
        expect(sealed).toHaveLength(2);
      },
      { timeout: 45_000, interval: 100 },
    );
    const [link] = await env.hub.sql<
      { seq: number; position: number; txid: string; hash: Buffer }[]
    >`
      SELECT seq, position, txid::text AS txid, hash FROM event_chain WHERE position = ${position}`;
    if (!link) throw new Error("no link");
    await env.hub.sql.begin(async (tx) => {
      await tx`ALTER TABLE event_chain DISABLE TRIGGER event_chain_append_only`;
      await tx`DELETE FROM event_chain WHERE seq = ${link.seq}`;
      await tx`ALTER TABLE event_chain ENABLE TRIGGER event_chain_append_only`;
    });
    const r = await verifyChain(env.hub.sql);
    expect(r.ok).toBe(false);
    expect(r.detail).toBe(`chain link ${link.seq} is missing`);
    // The same in pages hashed by worker threads, wherever the gap falls in a page.
    for (const pageSize of [1, 2, 3]) {
      const parallel = await verifyChain(env.hub.sql, 0, 0, { pageSize, workers: 2 });
      expect(parallel.ok).toBe(false);
      expect(parallel.detail).toBe(`chain link ${link.seq} is missing`);
    }
    await env.hub.sql.begin(async (tx) => {
      await tx`ALTER TABLE event_chain DISABLE TRIGGER event_chain_append_only`;
      await tx`INSERT INTO event_chain (seq, position, txid, hash)
        VALUES (${link.seq}, ${link.position}, ${link.txid}::xid8, ${link.hash})`;
      await tx`ALTER TABLE event_chain ENABLE TRIGGER event_chain_append_only`;
    });
    expect((await verifyChain(env.hub.sql)).ok).toBe(true);
  });

  it("verification hashes as sealing does, whatever the text: quotes, escapes, controls, Chinese", async () => {
    // PostgreSQL recomputes each link (to_json, convert_to, sha256) that linkHash sealed in
    // Node.js (JSON.stringify, UTF-8): any difference in escaping would break the chain here.
    // A hub of its own: this log's odd event must not reach the other tests' rebuilds.
    const own = await startTestHub();
    const sql = own.hub.sql;
    try {
      const tricky = 'a"b\\c\n\t\u0001 中文😀/é\u2028\u007f';
      const [row] = await sql<{ position: number }[]>`
      INSERT INTO events (event_id, stream_id, stream_version, type, data, recorded_at)
      VALUES (gen_random_uuid(), ${`chain-test-"\\-${Date.now()}-中`}, 1, ${'Odd\\Type"'},
        ${sql.json({ s: tricky, nested: { [tricky]: [tricky, 1.5, null, true] } })},
        now())
      RETURNING position`;
      const position = Number(row?.position);
      await vi.waitFor(
        async () => {
          await sealAll(sql);
          const sealed = await sql`SELECT 1 FROM event_chain WHERE position = ${position}`;
          expect(sealed).toHaveLength(1);
        },
        { timeout: 45_000, interval: 100 },
      );
      expect(await verifyChain(sql)).toEqual({
        ok: true,
        eventsVerified: 1,
        firstBrokenPosition: 0,
        lastPosition: position,
        detail: "",
      });
    } finally {
      await own.close();
    }
  });

  it("flipping one byte of one stored event is reported at that event's position", async () => {
    const { identity } = await registered(GD);
    const history = await env.client(AuditService, "operator:ops").getPersonHistory({ identity });
    const position = Number(history.events[0]?.position);
    // Only sealed events are verified, and sealing waits until no older transaction is open
    // anywhere in the cluster (other suites run in parallel).
    await vi.waitFor(
      async () => {
        await sealAll(env.hub.sql);
        const sealed = await env.hub.sql`SELECT 1 FROM event_chain WHERE position = ${position}`;
        expect(sealed).toHaveLength(1);
      },
      { timeout: 45_000, interval: 100 },
    );
    expect((await verifyChain(env.hub.sql)).ok).toBe(true);
    // A superuser with the trigger disabled: what an attacker with database access could do.
    await env.hub.sql.begin(async (tx) => {
      await tx`ALTER TABLE events DISABLE TRIGGER events_append_only`;
      await tx`UPDATE events SET type = 'RecordRegistereD' WHERE position = ${position}`;
      await tx`ALTER TABLE events ENABLE TRIGGER events_append_only`;
    });
    const r = await verifyChain(env.hub.sql);
    expect(r.ok).toBe(false);
    expect(r.firstBrokenPosition).toBe(position);
    const parallel = await verifyChain(env.hub.sql, 0, 0, { pageSize: 2, workers: 2 });
    expect(parallel).toEqual(r);
    const viaRpc = await env.client(AuditService, "operator:ops").verifyLog({});
    expect(viaRpc.ok).toBe(false);
    expect(Number(viaRpc.firstBrokenPosition)).toBe(position);
    await env.hub.sql.begin(async (tx) => {
      await tx`ALTER TABLE events DISABLE TRIGGER events_append_only`;
      await tx`UPDATE events SET type = 'RecordRegistered' WHERE position = ${position}`;
      await tx`ALTER TABLE events ENABLE TRIGGER events_append_only`;
    });
    expect((await verifyChain(env.hub.sql)).ok).toBe(true);
    const intact = await verifyChain(env.hub.sql);
    expect(await verifyChain(env.hub.sql, 0, 0, { pageSize: 2, workers: 2 })).toEqual(intact);
  });
});

describe("receipt outcomes", () => {
  it("a source's REJECTED receipt ends the migration as REJECTED and releases the lock", async () => {
    const { identity, cert } = await registered(BJ);
    bj().answer = (d) =>
      create(ReceiptSchema, {
        directiveId: d.directiveId,
        attempt: d.attempt,
        outcome: ReceiptOutcome.REJECTED,
        rejection: 5,
        detail: "record under review",
      });
    try {
      const { migration } = await env
        .client(MigrationService, `province:${GD}`)
        .requestMigration({ idempotencyKey: `rej-${cert}`, identity });
      let state = 0;
      for (let i = 0; i < 100 && state !== 4; i++) {
        await new Promise((r) => setTimeout(r, 25));
        state =
          (
            await env
              .client(MigrationService, `province:${GD}`)
              .getMigration({ migrationId: migration?.migrationId ?? "" })
          ).migration?.state ?? 0;
      }
      expect(state).toBe(4); // MIGRATION_STATE_REJECTED
    } finally {
      bj().answer = (d) => bj().correctAnswer(d);
    }
    const again = await env
      .client(MigrationService, `province:${GD}`)
      .requestMigration({ idempotencyKey: `rej2-${cert}`, identity });
    expect(again.migration?.state).toBe(1);
  });
});

describe("ListMigrations", () => {
  it("pages the migrations projection: each entry equals GetMigration; filtered by state and by province", async () => {
    const sc = env.client(MigrationService, `province:${SC}`);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const { identity, cert } = await registered(BJ);
      const { migration } = await sc.requestMigration({ idempotencyKey: `list-${cert}`, identity });
      ids.push(migration?.migrationId ?? "");
    }
    const done = async () => {
      for (const id of ids) {
        const m = (await sc.getMigration({ migrationId: id })).migration;
        if (m?.state !== MigrationState.COMPLETED) return undefined;
      }
      return true;
    };
    await until("the three migrations completed", done);
    const listed = [];
    let pageToken = "";
    do {
      const page = await sc.listMigrations({ pageSize: 2, pageToken });
      expect(page.migrations.length).toBeLessThanOrEqual(2);
      listed.push(...page.migrations);
      pageToken = page.nextPageToken;
    } while (pageToken);
    for (const id of ids) {
      const got = (await sc.getMigration({ migrationId: id })).migration;
      expect(listed.find((m) => m.migrationId === id)).toEqual(got);
    }
    const completed = await sc.listMigrations({ state: MigrationState.COMPLETED, pageSize: 500 });
    expect(completed.migrations.every((m) => m.state === MigrationState.COMPLETED)).toBe(true);
    expect(ids.every((id) => completed.migrations.some((m) => m.migrationId === id))).toBe(true);
    const requested = await sc.listMigrations({ state: MigrationState.REQUESTED, pageSize: 500 });
    expect(requested.migrations.filter((m) => ids.includes(m.migrationId))).toEqual([]);
    // A province uninvolved sees none of them.
    const gd = await env
      .client(MigrationService, `province:${GD}`)
      .listMigrations({ pageSize: 500 });
    expect(gd.migrations.filter((m) => ids.includes(m.migrationId))).toEqual([]);
  });
});
