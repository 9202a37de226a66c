import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import type { Identity } from "@evc-interop/gen/evc/common/v1/identity_pb";
import { CloseReason } from "@evc-interop/gen/evc/common/v1/record_pb";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { DirectiveSchema } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import {
  MigrationService,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { provinceSubject } from "@evc-interop/runtime";
import {
  closeTestProvince,
  controlTransport,
  newDose,
  newIdentity,
  startTestHub,
  startTestProvince,
  TEST_DATABASE_URL,
  type TestHubEnv,
  until,
} from "@evc-interop/testing";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Province } from "./province.js";

/**
 * #28 story 1, as reported: a province restored from an older backup comes back by itself.
 * Before, the restored records kept the directive sequence of the backup: the next dose
 * waited on a gap nothing would fill (poisoned after the gap hold, about an hour), every
 * migration away was compensated, and a child moving back ended with no valid certificate.
 * The restore here is the runbook's (docs/operations.md, "Restoring a province"): stop the
 * province, pg_restore --clean its schema from a pg_dump taken earlier, start it again, run a
 * reconciliation pass — the second story; the first skips the pass (none is scheduled here):
 * the gap itself must bring the record back.
 */
let env: TestHubEnv;
const running = new Map<string, Province>();
const dumps = mkdtempSync(join(tmpdir(), "evc-recovery-"));

beforeAll(async () => {
  env = await startTestHub({ activateDeadlineMs: 5_000, redeliverAfterMs: 200 });
  for (const code of ["110000", "440000", "510000"])
    running.set(code, await startTestProvince(env, code, { gapResyncMs: 300 }));
});

afterAll(async () => {
  for (const p of running.values()) await closeTestProvince(p);
  await env?.close();
  rmSync(dumps, { recursive: true, force: true });
});

function province(code: string): Province {
  const p = running.get(code);
  if (!p) throw new Error(`province ${code} is not running`);
  return p;
}
const control = (code: string) => createClient(ControlService, controlTransport(province(code)));
const operator = () => env.client(MigrationService, "operator:ops");

/** pg_dump of a province's schema, as its operator takes one. */
function backup(code: string): string {
  const file = join(dumps, `${code}-${Date.now()}.dump`);
  const schema = province(code).config.schema;
  execFileSync("pg_dump", ["-Fc", "-n", schema, "-f", file, TEST_DATABASE_URL]);
  return file;
}

/** The runbook's restore: the province stopped, its schema restored from the dump, started. */
async function restore(code: string, file: string, crash = false): Promise<void> {
  const old = province(code);
  // A crash sends nothing more (receipts not yet sent stay unsent); a stop flushes them.
  await (crash ? old.kill() : old.stop());
  execFileSync("pg_restore", ["--clean", "--if-exists", "-d", TEST_DATABASE_URL, file]);
  running.set(
    code,
    await startTestProvince(env, code, { schema: old.config.schema, gapResyncMs: 300 }),
  );
}

/** The province loses its whole database: stopped, its schema dropped, started on an empty one. */
async function lose(code: string): Promise<void> {
  const old = province(code);
  await old.stop();
  execFileSync("psql", [TEST_DATABASE_URL, "-qc", `DROP SCHEMA "${old.config.schema}" CASCADE`]);
  running.set(
    code,
    await startTestProvince(env, code, { schema: old.config.schema, gapResyncMs: 300 }),
  );
}

async function dosesAt(code: string, recordId: string): Promise<string[]> {
  const rows = await province(code).sql<{ dose_id: string }[]>`
    SELECT dose_id FROM doses WHERE record_id = ${recordId} ORDER BY dose_id`;
  return rows.map((r) => r.dose_id);
}

async function migrate(identity: Identity, to: string): Promise<MigrationState | undefined> {
  const { migrationId } = await control(to).migrateIn({ identity });
  return until(
    "the migration ended",
    async () => {
      const m = (await operator().getMigration({ migrationId })).migration;
      return m && [MigrationState.COMPLETED, MigrationState.COMPENSATED].includes(m.state)
        ? m.state
        : m?.state === MigrationState.NEEDS_OPERATOR
          ? m.state
          : undefined;
    },
    15_000,
  );
}

/** The person's certificates at the hub that are NORMAL, by number. */
async function normalAtHub(recordId: string): Promise<string[]> {
  const rows = await env.hub.sql<{ certificate_number: string }[]>`
    SELECT certificate_number FROM certificates WHERE record_id = ${recordId} AND status = 'NORMAL'`;
  return rows.map((r) => r.certificate_number);
}

describe("a province restored from an older backup comes back by itself", () => {
  it("the next dose reported elsewhere arrives within seconds, and the record can move again", async () => {
    const child = newIdentity("Restored Child");
    const { recordId } = await control("110000").registerRecord({ identity: child });
    const file = backup("110000");
    const given = [newDose("440000"), newDose("440000", { doseNumber: 2 })];
    for (const dose of given) await control("440000").recordDose({ identity: child, dose });
    await until("both doses at the owner", async () =>
      (await dosesAt("110000", recordId)).length === 2 ? true : undefined,
    );

    await restore("110000", file);
    expect(await dosesAt("110000", recordId)).toEqual([]);

    const third = newDose("440000", { doseNumber: 3 });
    await control("440000").recordDose({ identity: child, dose: third });
    const all = [...given, third].map((d) => d.doseId).sort();
    await until(
      "every dose at the restored owner",
      async () => ((await dosesAt("110000", recordId)).join() === all.join() ? true : undefined),
      10_000,
    );

    expect(await migrate(child, "510000")).toBe(MigrationState.COMPLETED);
    const local = await province("510000").sql<{ dose_id: string }[]>`
      SELECT dose_id FROM doses WHERE record_id = ${recordId} ORDER BY dose_id`;
    expect(local.map((d) => d.dose_id)).toEqual(all);
  });

  it("a directive applied and lost with the restore before its receipt left is read again from the hub: the next dose within seconds", async () => {
    const child = newIdentity("Unanswered Child");
    const { recordId } = await control("110000").registerRecord({ identity: child });
    const file = backup("110000");
    // Beijing applies the dose and dies before its receipt leaves (its submitter stopped).
    await province("110000").submitter.stop(false);
    const first = newDose("440000");
    await control("440000").recordDose({ identity: child, dose: first });
    await until("the dose at the owner", async () =>
      (await dosesAt("110000", recordId)).length === 1 ? true : undefined,
    );
    const [waiting] = await env.hub.sql<{ state: string }[]>`
      SELECT state FROM directives WHERE record_id = ${recordId} AND province = '110000'`;
    expect(waiting?.state).toBe("DELIVERED");
    await restore("110000", file, true);

    // The bus took the directive's ack and drops the hub's republishes for two minutes.
    const second = newDose("440000", { doseNumber: 2 });
    await control("440000").recordDose({ identity: child, dose: second });
    const both = [first.doseId, second.doseId].sort().join();
    await until(
      "both doses at the restored owner",
      async () => ((await dosesAt("110000", recordId)).join() === both ? true : undefined),
      10_000,
    );
  });

  it("a child who moved away and moves back to a restored former owner has one NORMAL certificate", async () => {
    const child = newIdentity("Returning Child");
    const { recordId } = await control("110000").registerRecord({ identity: child });
    const file = backup("110000");
    expect(await migrate(child, "510000")).toBe(MigrationState.COMPLETED);

    // The backup predates the move: restored, 110000 holds the child ACTIVE again, its old
    // certificate NORMAL beside 510000's — until the runbook's pass right after the restore.
    await restore("110000", file);
    const [old] = await province("110000").sql<{ certificate_number: string; status: string }[]>`
      SELECT certificate_number, status FROM certificates WHERE record_id = ${recordId}`;
    expect(old?.status).toBe("NORMAL");
    const pass = await control("110000").reconcile({});
    expect(pass.statusRepaired).toBeGreaterThan(0);
    expect(pass.sequenceRepaired).toBe(1n);
    const [after] = await province("110000").sql<{ status: string; last_sequence: string }[]>`
      SELECT c.status, r.last_sequence::text FROM certificates c JOIN records r USING (record_id)
      WHERE c.certificate_number = ${old?.certificate_number ?? ""}`;
    expect(after).toEqual({ status: "SUSPENDED", last_sequence: "1" });

    expect(await migrate(child, "110000")).toBe(MigrationState.COMPLETED);

    const [normal, ...more] = await normalAtHub(recordId);
    expect(more).toEqual([]);
    expect(normal?.startsWith("110000")).toBe(true);
    const phoneSide = await province("110000").sql<{ certificate_number: string }[]>`
      SELECT certificate_number FROM certificates WHERE record_id = ${recordId}
        AND status = 'NORMAL'`;
    expect(phoneSide.map((r) => r.certificate_number)).toEqual([normal]);
  });

  it("a province that lost its whole database gets its records back from one pass, closed ones too", async () => {
    const child = newIdentity("Lost Child");
    const birth = newDose("110000");
    const { recordId } = await control("110000").registerRecord({
      identity: child,
      doses: [birth],
    });
    const given = newDose("440000", { doseNumber: 2 });
    await control("440000").recordDose({ identity: child, dose: given });
    await until("the dose at the owner", async () =>
      (await dosesAt("110000", recordId)).length === 2 ? true : undefined,
    );

    // A child who died here: the record is closed, and its doses are part of its history.
    const died = newIdentity("Closed Child");
    const diedDose = newDose("110000");
    const closed = await control("110000").registerRecord({ identity: died, doses: [diedDose] });
    await control("110000").closeRecord({
      recordId: closed.recordId,
      reason: CloseReason.DECEASED,
    });

    await lose("110000");
    const pass = await control("110000").reconcile({});
    // Every record 110000 held came back (those of the stories above too).
    expect(pass.missingRepaired).toBeGreaterThanOrEqual(1n);
    expect(pass.contentsRepaired).toBeGreaterThanOrEqual(1n);
    expect(pass.sequenceRepaired).toBeGreaterThanOrEqual(1n);
    const [rec] = await province("110000").sql<
      { status: string; id_number: string; last_sequence: string; cert: string }[]
    >`SELECT r.status, r.id_number, r.last_sequence::text, c.status AS cert
      FROM records r JOIN certificates c USING (record_id) WHERE r.record_id = ${recordId}`;
    expect(rec).toEqual({
      status: "ACTIVE",
      id_number: child.idNumber,
      last_sequence: "1",
      cert: "NORMAL",
    });
    expect(await dosesAt("110000", recordId)).toEqual([birth.doseId, given.doseId].sort());
    const [gone] = await province("110000").sql<{ status: string; id_number: string }[]>`
      SELECT status, id_number FROM records WHERE record_id = ${closed.recordId}`;
    expect(gone).toEqual({ status: "CLOSED", id_number: died.idNumber });
    expect(await dosesAt("110000", closed.recordId)).toEqual([diedDose.doseId]);

    const next = newDose("440000", { doseNumber: 3 });
    await control("440000").recordDose({ identity: child, dose: next });
    await until(
      "the next dose at the owner",
      async () => ((await dosesAt("110000", recordId)).includes(next.doseId) ? true : undefined),
      10_000,
    );
  });

  it("a target restored to before an activation it applied too late answers the compensation's revoke: the child's certificate NORMAL at the source again", async () => {
    const child = newIdentity("Cancelled Child");
    const { recordId } = await control("110000").registerRecord({ identity: child });
    const file = backup("510000");
    // 510000 takes nothing from the bus: its activation misses the deadline, the hub
    // compensates and sends it a revoke.
    await province("510000").agent.stop();
    const { migrationId } = await control("510000").migrateIn({ identity: child });
    await until(
      "the hub compensating",
      async () =>
        (await operator().getMigration({ migrationId })).migration?.state ===
        MigrationState.COMPENSATING
          ? true
          : undefined,
      15_000,
    );
    // The revoke leaves the bus (its republishes are dropped inside the duplicate window);
    // 510000 comes back, applies the late activation (a NORMAL certificate there) and answers
    // it: the hub refuses the receipt (the migration moved on) and stops waiting for it.
    const nc = await connect({ servers: env.config.natsUrl });
    try {
      const jsm = await jetstreamManager(nc);
      const layout = { ...env.config, duplicateWindowMs: env.config.duplicateWindowMs };
      const last = await jsm.streams.getMessage(env.config.stream, {
        last_by_subj: provinceSubject(layout, "510000"),
      });
      expect(fromBinary(DirectiveSchema, last?.data ?? new Uint8Array()).action.case).toBe(
        "revokeCertificate",
      );
      await jsm.streams.deleteMessage(env.config.stream, last?.seq ?? 0);
    } finally {
      await nc.close();
    }
    await restore("510000", file);
    await until(
      "the late activation answered, and refused",
      async () => {
        const [a] = await env.hub.sql<{ state: string }[]>`
          SELECT state FROM directives WHERE record_id = ${recordId} AND province = '510000'
            AND action = 'activateMigratedRecord'`;
        return a?.state === "SUPERSEDED" ? true : undefined;
      },
      10_000,
    );

    // Restored from the backup taken before: no record, no activation, and the hub has no
    // certificate of the child there to bring back. The runbook's pass after a restore reads
    // the revoke the hub still waits for; its gap (the activation, answered) the hub proves.
    await restore("510000", file, true);
    await control("510000").reconcile({});
    await until(
      "the migration compensated",
      async () =>
        (await operator().getMigration({ migrationId })).migration?.state ===
        MigrationState.COMPENSATED
          ? true
          : undefined,
      10_000,
    );
    const [normal, ...more] = await normalAtHub(recordId);
    expect(more).toEqual([]);
    expect(normal?.startsWith("110000")).toBe(true);
    await until("NORMAL again at the source", async () => {
      const [c] = await province("110000").sql<{ status: string }[]>`
        SELECT status FROM certificates WHERE certificate_number = ${normal ?? ""}`;
      return c?.status === "NORMAL" ? true : undefined;
    });
    const there = await province("510000").sql`
      SELECT 1 FROM certificates WHERE record_id = ${recordId} AND status = 'NORMAL'`;
    expect(there.length).toBe(0);
  });
});
