import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import type { Identity } from "@evc-interop/gen/evc/common/v1/identity_pb";
import { type Dose, RecordStatus } from "@evc-interop/gen/evc/common/v1/record_pb";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import {
  MigrationService,
  MigrationState,
  RequestMigrationRequestSchema,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import { ProvinceService } from "@evc-interop/gen/evc/province/v1/province_service_pb";
import {
  checkOracle,
  closeTestProvince,
  controlTransport,
  Ledger,
  newDose,
  newIdentity,
  readerTransport,
  startTestHub,
  startTestProvince,
  type TestHubEnv,
  until,
} from "@evc-interop/testing";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Province } from "./province.js";

/**
 * The two loss stories of #14, as a tester told them: each fails on the code before the fix.
 * The checks look at what the caller was told succeeded, not at what the system believes.
 */
let env: TestHubEnv;
const running: Province[] = [];
let bj: Province;
let gd: Province;
const BJ = "110000";
const GD = "440000";

beforeAll(async () => {
  env = await startTestHub({ consumerAckWaitMs: 1000 });
  bj = await startTestProvince(env, BJ);
  gd = await startTestProvince(env, GD);
  running.push(bj, gd);
});

afterAll(async () => {
  for (const p of running) await closeTestProvince(p);
  await env?.close();
});

const control = (p: Province) => createClient(ControlService, controlTransport(p));

/** Dose ids a province store holds on a record (with repeats, if any). */
async function dosesAt(p: Province, recordId: string): Promise<string[]> {
  const rows = await p.sql<{ dose_id: string }[]>`
    SELECT dose_id FROM doses WHERE record_id = ${recordId} ORDER BY dose_id`;
  return rows.map((r) => r.dose_id);
}

/** Dose ids the hub's state holds on a record. */
async function dosesAtHub(recordId: string): Promise<string[]> {
  const rows = await env.hub.sql<{ dose_id: string }[]>`
    SELECT d->>'doseId' AS dose_id FROM persons p,
      jsonb_array_elements(p.state->'records'->${recordId}->'doses') AS d
    WHERE p.state->'records' ? ${recordId} ORDER BY 1`;
  return rows.map((r) => r.dose_id);
}

describe("no acknowledged dose is lost", () => {
  it("doses recorded at the owner while a migration suspends the record all reach the new owner and the hub", async () => {
    const persons = 8;
    const dosesEach = 15;
    const people: { identity: Identity; recordId: string }[] = [];
    for (let i = 0; i < persons; i++) {
      const identity = newIdentity();
      const reg = await control(bj).registerRecord({ identity });
      people.push({ identity, recordId: reg.recordId });
    }
    // Each person is migrated to Guangdong while Beijing records a dose every 8 ms.
    const ledger = new Ledger();
    for (const { identity } of people) ledger.registered(identity.idNumber, BJ, true);
    const acknowledged = new Map<string, string[]>();
    await Promise.all(
      people.map(async ({ identity, recordId }) => {
        const migration = control(gd).migrateIn({ identity });
        const acked: string[] = [];
        for (let n = 0; n < dosesEach; n++) {
          const dose: Dose = newDose(BJ, { doseNumber: n + 1 });
          const ok = await control(bj)
            .recordDose({ identity, dose })
            .then(
              () => true,
              () => false,
            );
          if (ok) acked.push(dose.doseId);
          ledger.dose(identity.idNumber, dose.doseId, BJ, ok);
          await new Promise((r) => setTimeout(r, 8));
        }
        acknowledged.set(recordId, acked);
        const { migrationId } = await migration;
        ledger.migrated(identity.idNumber, migrationId, GD);
        await until("migration completed", async () => {
          const { migration: m } = await env
            .client(MigrationService, "operator:ops")
            .getMigration({ migrationId });
          return m?.state === MigrationState.COMPLETED ? true : undefined;
        });
      }),
    );
    // Doses that went to the hub for routing reach the owner by directive: give them time.
    const complete = async () => {
      for (const { recordId } of people) {
        const held = await dosesAt(gd, recordId);
        if (!(acknowledged.get(recordId) ?? []).every((d) => held.includes(d))) return undefined;
      }
      return true;
    };
    await until("every acknowledged dose at the new owner", complete, 10_000).catch(() => false);
    const report = await checkOracle(ledger, env.hub.sql, [bj, gd]);
    expect(report.checked.doses).toBeGreaterThan(persons * dosesEach * 0.9);
    expect(report.findings).toEqual([]);
    expect([report.lost, report.doubled]).toEqual([0, 0]);
  });

  it("the oracle catches a dose missing at its owner and a second NORMAL certificate", async () => {
    const identity = newIdentity();
    const given = newDose(BJ);
    const reg = await control(bj).registerRecord({ identity, doses: [given] });
    const ledger = new Ledger();
    ledger.registered(identity.idNumber, BJ, true);
    ledger.dose(identity.idNumber, given.doseId, BJ, true);
    expect((await checkOracle(ledger, env.hub.sql, [bj, gd])).findings).toEqual([]);
    await bj.sql`DELETE FROM doses WHERE record_id = ${reg.recordId}`;
    await gd.sql`INSERT INTO records (record_id, id_type, id_number, status)
      VALUES (${reg.recordId}, 'x', ${identity.idNumber}, 'MIGRATED_OUT')`;
    await gd.sql`INSERT INTO certificates (certificate_number, record_id, status, owner_province, issued_at, status_changed_at)
      VALUES (${`${GD}-ORACLE${Date.now()}`}, ${reg.recordId}, 'NORMAL', ${GD}, now(), now())`;
    const report = await checkOracle(ledger, env.hub.sql, [bj, gd]);
    expect(report.lost).toBe(1);
    expect(report.findings.map((f) => f.rule).sort()).toEqual(["I2", "I3"]);
  });

  it("a migration request written down before a crash is resumed, never doubled: one migration, one id", async () => {
    const identity = newIdentity();
    await control(bj).registerRecord({ identity });
    // Guangdong wrote its intent and died before calling the hub.
    const intent = await gd.intents?.intents.beginMigration(identity, (id) =>
      toBinary(
        RequestMigrationRequestSchema,
        create(RequestMigrationRequestSchema, { idempotencyKey: `migrate-${id}`, identity }),
      ),
    );
    expect(intent?.kind).toBe("migrate");
    // A second call for the same person resumes the same intent: one migration, one id.
    const [a, b] = await Promise.all([
      control(gd).migrateIn({ identity }),
      control(gd).migrateIn({ identity }),
    ]);
    expect(a.migrationId).toBe(b.migrationId);
    const located = await env.client(RecordService, `province:${GD}`).locateRecord({ identity });
    expect(located.openMigrationId).toBe(a.migrationId);
    const [row] = await gd.sql<{ state: string }[]>`
      SELECT state FROM hub_intents WHERE id = ${intent?.id ?? ""}`;
    expect(row?.state).toBe("DONE");
  });

  it("a crash between the hub's registration and the local write is completed on restart; later doses stay at the owner", async () => {
    const identity = newIdentity();
    const birthDose = newDose(BJ);
    // Writes to Beijing's records wait (reads do not), as if the process stalled right after
    // the hub answered; then the process dies.
    const blocker = postgres(bj.config.databaseUrl, { max: 1, onnotice: () => undefined });
    const holding = blocker.begin(async (tx) => {
      await tx`SET LOCAL search_path TO ${tx(bj.config.schema)}`;
      await tx`LOCK TABLE records IN SHARE MODE`;
      await until("the hub's registration", async () => {
        const found = await env
          .client(RecordService, `province:${GD}`)
          .locateRecord({ identity })
          .catch(() => undefined);
        return found ? true : undefined;
      });
      await bj.kill();
    });
    const call = control(bj)
      .registerRecord({ identity, doses: [birthDose] })
      .catch(() => undefined);
    await holding;
    await call;
    await blocker.end();

    const restarted = await startTestProvince(env, BJ, { schema: bj.config.schema });
    running.push(restarted);
    const located = await env.client(RecordService, `province:${GD}`).locateRecord({ identity });
    const recordId = located.recordId;
    const phone = createClient(ProvinceService, readerTransport(restarted));
    const local = await until("the record at its owner", async () => {
      const r = await phone.getRecord({ recordId });
      return r.status === RecordStatus.ACTIVE ? r : undefined;
    });
    expect(local.record?.identity?.idNumber).toBe(identity.idNumber);
    expect(local.certificate?.certificateNumber).toBe(located.certificate?.certificateNumber);
    expect(local.record?.doses.map((d) => d.doseId)).toEqual([birthDose.doseId]);

    // A retry by the caller is told the person is registered here, not that it failed.
    const again = await control(restarted)
      .registerRecord({ identity })
      .catch((err: unknown) => err);
    expect(String(again)).toMatch(/already_exists|already has record/);

    // A later dose recorded here is kept by the owner, and the hub has it before the clinic
    // is answered (a restore of this province from an older backup cannot lose it).
    const later = newDose(BJ, { doseNumber: 2 });
    const res = await control(restarted).recordDose({ identity, dose: later });
    expect(res.reportedToHub).toBe(true);
    expect(await dosesAt(restarted, recordId)).toEqual([birthDose.doseId, later.doseId].sort());
    expect(await dosesAtHub(recordId)).toContain(later.doseId);
    // Recorded again (a retry): the same answer, the dose once.
    expect((await control(restarted).recordDose({ identity, dose: later })).reportedToHub).toBe(
      true,
    );
    expect(await dosesAt(restarted, recordId)).toEqual([birthDose.doseId, later.doseId].sort());
  });
});
