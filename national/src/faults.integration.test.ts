import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { createClient } from "@connectrpc/connect";
import { CertificateStatus } from "@evc-interop/gen/evc/common/v1/record_pb";
import { CertificateService } from "@evc-interop/gen/evc/national/v1/certificate_service_pb";
import { ReceiptDisposition } from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import {
  MigrationService,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import {
  certificateNumber,
  type Edit,
  FakeProvince,
  mutatedCopy,
  newIdentity,
  startTestHub,
  type TestHubEnv,
  transport,
} from "@evc-interop/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { HubConfig } from "./config.js";

const SRC = "110000";
const DST = "440000";

async function registerAt(env: TestHubEnv, fake: FakeProvince) {
  const identity = newIdentity();
  const cert = certificateNumber(fake.code);
  const res = await env.client(RecordService, `province:${fake.code}`).registerRecord({
    idempotencyKey: `f-${cert}`,
    identity,
    certificateNumber: cert,
  });
  fake.records.set(res.recordId, { identity, doses: [], certificate: cert, status: "ACTIVE" });
  return { identity, cert, recordId: res.recordId };
}

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs = 10_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function migrationState(env: TestHubEnv, id: string) {
  const { migration } = await env
    .client(MigrationService, "operator:ops")
    .getMigration({ migrationId: id });
  return migration;
}

describe("deadlines and compensation", () => {
  let env: TestHubEnv;
  let src: FakeProvince;
  let dst: FakeProvince;
  beforeAll(async () => {
    env = await startTestHub({
      suspendDeadlineMs: 400,
      activateDeadlineMs: 400,
      compensateDeadlineMs: 400,
    });
    src = await FakeProvince.start(env, SRC);
    dst = await FakeProvince.start(env, DST);
  });
  afterAll(async () => {
    await src?.stop();
    await dst?.stop();
    await env?.close();
  });
  afterEach(() => {
    src.answer = (d) => src.correctAnswer(d);
    dst.answer = (d) => dst.correctAnswer(d);
  });

  it("a source that never answers: compensated at the deadline, lock released, late receipt refused", async () => {
    const { identity, cert } = await registerAt(env, src);
    src.answer = () => undefined;
    const { migration } = await env
      .client(MigrationService, `province:${DST}`)
      .requestMigration({ idempotencyKey: `never-${cert}`, identity });
    const id = migration?.migrationId ?? "";
    const suspend = await src.waitFor(
      (d) => d.correlationId === id && d.action.case === "suspendForMigration",
    );
    await until("compensation", async () =>
      (await migrationState(env, id))?.state === MigrationState.COMPENSATED ? true : undefined,
    );
    // The source is told to restore (it may have applied the suspend without answering).
    const restore = await src.waitFor(
      (d) => d.correlationId === id && d.action.case === "restoreRecord",
    );
    expect(restore.recordSequence).toBe(suspend.recordSequence + 1n);
    const status = await env
      .client(CertificateService, `province:${DST}`)
      .getCertificateStatus({ certificateNumber: cert });
    expect(status.certificate?.status).toBe(CertificateStatus.NORMAL);
    // Fencing: the late suspend receipt (twice in one batch) changes nothing...
    const late = await src.submit([src.correctAnswer(suspend), src.correctAnswer(suspend)]);
    expect(late.results.map((r) => r.disposition)).toEqual([
      ReceiptDisposition.REFUSED,
      ReceiptDisposition.REFUSED,
    ]);
    expect(late.results[0]?.detail).toMatch(/superseded|not awaited|over/);
    // ...but is kept as the directive's delivery record: a copy sent later is a duplicate.
    const later = await src.submit([src.correctAnswer(suspend)]);
    expect(later.results[0]?.disposition).toBe(ReceiptDisposition.DUPLICATE);
    expect(later.results[0]?.detail).toBe("already REFUSED");
    expect((await migrationState(env, id))?.state).toBe(MigrationState.COMPENSATED);
    // The lock is free: a new migration can start.
    src.answer = (d) => src.correctAnswer(d);
    const again = await env
      .client(MigrationService, `province:${DST}`)
      .requestMigration({ idempotencyKey: `again-${cert}`, identity });
    expect(again.migration?.state).toBe(MigrationState.REQUESTED);
  });

  it("a target that never confirms: revoked at the target first, then the source restored (I2)", async () => {
    const { identity, cert } = await registerAt(env, src);
    dst.answer = (d) =>
      d.action.case === "activateMigratedRecord" ? undefined : dst.correctAnswer(d);
    const { migration } = await env
      .client(MigrationService, `province:${DST}`)
      .requestMigration({ idempotencyKey: `tgt-${cert}`, identity });
    const id = migration?.migrationId ?? "";
    const revoke = await dst.waitFor(
      (d) => d.correlationId === id && d.action.case === "revokeCertificate",
    );
    expect(revoke.attempt).toBe(2);
    const done = await until("compensated", async () => {
      const m = await migrationState(env, id);
      return m?.state === MigrationState.COMPENSATED ? m : undefined;
    });
    expect(done.endReason).toMatch(/target did not confirm/);
    const restore = await src.waitFor(
      (d) => d.correlationId === id && d.action.case === "restoreRecord",
    );
    expect(restore.attempt).toBe(3);
    const status = await env
      .client(CertificateService, `province:${SRC}`)
      .getCertificateStatus({ certificateNumber: cert });
    expect(status.certificate?.status).toBe(CertificateStatus.NORMAL);
  });
});

const DIST = resolve(import.meta.dirname, "..", "dist");

/** The relay, patched in a copy of the build: SIGKILL itself after a publish, before marking it. */
const KILL_AFTER_PUBLISH: Edit[] = [
  {
    file: "bus/relay.js",
    find: "const published = [];",
    replace: 'if (live.length > 0) process.kill(process.pid, "SIGKILL"); const published = [];',
  },
];

/** Runs the built hub (national/dist/main.js) as a child process that a test can SIGKILL. */
async function spawnHub(
  config: HubConfig,
  trustFile: string,
  extraEnv: Record<string, string>,
  dist = DIST,
) {
  const main = join(dist, "main.js");
  const child = spawn(process.execPath, [main, "serve"], {
    env: {
      ...process.env,
      DATABASE_URL: config.databaseUrl,
      NATS_URL: config.natsUrl,
      EVC_NATS_ANONYMOUS: "1", // the shared test bus is open
      EVC_HUB_SCHEMA: config.schema,
      EVC_STREAM: config.stream,
      EVC_SUBJECT_PREFIX: config.subjectPrefix,
      EVC_HUB_LISTEN: "127.0.0.1:0",
      EVC_TRUST_FILE: trustFile,
      EVC_DIRECTIVE_SIGNING_KEY: join(dirname(trustFile), "signing.jwk"),
      EVC_PERSON_KEY_SECRET: config.personKeySecret,
      EVC_POLL_MS: "50",
      EVC_LOG_LEVEL: "info",
      ...extraEnv,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolveUrl, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on("line", (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; url?: string };
        if (entry.msg === "hub listening" && entry.url) resolveUrl(entry.url);
      } catch {
        // not a log line
      }
    });
    child.once("exit", (code) => reject(new Error(`hub exited early with ${code}`)));
  });
  return { child, url };
}

function exited(child: ChildProcess): Promise<NodeJS.Signals | null> {
  return new Promise((r) => child.once("exit", (_code, signal) => r(signal)));
}

describe("hub killed hard (SIGKILL) at the worst moments", () => {
  let env: TestHubEnv;
  let dir: string;
  let trustFile: string;
  let src: FakeProvince;
  beforeAll(async () => {
    // The in-process hub serves only the API here; the child processes under test relay.
    env = await startTestHub({ role: "api" });
    dir = mkdtempSync(join(tmpdir(), "evc-fault-"));
    trustFile = join(dir, "trust.json");
    writeFileSync(trustFile, JSON.stringify(env.creds.trust));
    writeFileSync(join(dir, "signing.jwk"), JSON.stringify(env.signer.jwk));
    src = await FakeProvince.start(env, SRC);
    src.answer = () => undefined; // observe deliveries only
  });
  afterAll(async () => {
    await src?.stop();
    await env?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("between event commit and publish: the directive is delivered after restart", async () => {
    const api = await spawnHub(env.config, trustFile, { EVC_ROLE: "api" });
    const { identity, cert } = await registerAt(env, src);
    const client = createClient(
      MigrationService,
      transport(api.url, [env.creds.auth(`province:${DST}`)]),
    );
    const { migration } = await client.requestMigration({
      idempotencyKey: `kill1-${cert}`,
      identity,
    });
    const gone = exited(api.child);
    api.child.kill("SIGKILL");
    expect(await gone).toBe("SIGKILL");
    expect(src.received.some((d) => d.correlationId === migration?.migrationId)).toBe(false);

    const worker = await spawnHub(env.config, trustFile, {});
    try {
      const d = await src.waitFor((x) => x.correlationId === migration?.migrationId);
      expect(d.action.case).toBe("suspendForMigration");
    } finally {
      const stopped = exited(worker.child);
      worker.child.kill("SIGTERM");
      await stopped;
    }
  });

  it("between publish and marking it sent: delivered exactly once, then marked", async () => {
    const { identity, cert } = await registerAt(env, src);
    const { migration } = await env
      .client(MigrationService, `province:${DST}`)
      .requestMigration({ idempotencyKey: `kill2-${cert}`, identity });
    const id = migration?.migrationId ?? "";
    const copy = mutatedCopy(DIST, KILL_AFTER_PUBLISH, "kill-after-publish");
    try {
      const crashing = await spawnHub(env.config, trustFile, {}, copy.dist);
      expect(await exited(crashing.child)).toBe("SIGKILL");
    } finally {
      copy.remove();
    }
    const [row] = await env.hub.sql<{ state: string }[]>`
      SELECT state FROM directives WHERE migration_id = ${id}`;
    expect(row?.state).toBe("PENDING"); // published, but the mark was lost with the process

    const worker = await spawnHub(env.config, trustFile, {});
    try {
      await until("marked", async () => {
        const [r] = await env.hub.sql<
          { state: string }[]
        >`SELECT state FROM directives WHERE migration_id = ${id}`;
        return r?.state === "DELIVERED" ? true : undefined;
      });
      await new Promise((r) => setTimeout(r, 300));
      // JetStream dropped the republished copy by Nats-Msg-Id: one delivery.
      expect(src.received.filter((d) => d.correlationId === id)).toHaveLength(1);
    } finally {
      const stopped = exited(worker.child);
      worker.child.kill("SIGTERM");
      await stopped;
    }
  });
});
