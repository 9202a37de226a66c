import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { DirectiveState } from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import { DoseService } from "@evc-interop/gen/evc/national/v1/dose_service_pb";
import {
  MigrationService,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { OperatorService } from "@evc-interop/gen/evc/national/v1/operator_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import {
  type CheckedProvince,
  certificateNumber,
  checkOracle,
  closeTestProvince,
  controlTransport,
  Ledger,
  newDose,
  newIdentity,
  startTestHub,
  startTestProvince,
  type TestHubEnv,
  until,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Province } from "./province.js";

/**
 * #18 part 2: each operator action leaves I1–I3 holding, as the oracle sees them from what
 * clients were told and from every store, including when the province's late receipt races the
 * action. And part 1: the steps of a migration that ended are no longer republished nor alarmed.
 */
let env: TestHubEnv;
const running: Province[] = [];
let bj: Province;
const BJ = "110000";

beforeAll(async () => {
  env = await startTestHub({
    activateDeadlineMs: 2500,
    compensateDeadlineMs: 150,
    compensateRounds: 1,
    redeliverAfterMs: 100,
    redeliverMaxMs: 200,
    maxPublishes: 3,
  });
  bj = await startTestProvince(env, BJ);
  running.push(bj);
});

afterAll(async () => {
  for (const p of running) await closeTestProvince(p);
  await env?.close();
});

const control = (p: Province) => createClient(ControlService, controlTransport(p));
const operator = () => env.client(OperatorService, "operator:ops");
const checked = (): CheckedProvince[] => running.map((p) => ({ code: p.code, sql: p.sql }));

async function start(code: string, overrides: Parameters<typeof startTestProvince>[2] = {}) {
  const p = await startTestProvince(env, code, overrides);
  running.push(p);
  return p;
}

async function metricsText(): Promise<string> {
  return (await fetch(`${env.hub.url}/metrics`)).text();
}

/** Stops a province (dropping its store unless kept, to start it again). */
async function stop(p: Province, opts: { keepStore?: boolean } = {}): Promise<void> {
  running.splice(running.indexOf(p), 1);
  if (opts.keepStore) await p.stop();
  else await closeTestProvince(p);
}

async function migrationState(id: string): Promise<string | undefined> {
  const [r] = await env.hub.sql<{ state: string }[]>`
    SELECT state FROM migrations WHERE migration_id = ${id}`;
  return r?.state;
}

/** A child registered at Beijing with one dose, as the ledger records what Beijing was told. */
async function beijingChild(ledger: Ledger, name: string) {
  const identity = newIdentity(name);
  const dose = newDose(BJ);
  const { recordId } = await control(bj).registerRecord({ identity, doses: [dose] });
  ledger.registered(identity.idNumber, BJ, true);
  ledger.dose(identity.idNumber, dose.doseId, BJ, true);
  return { identity, recordId };
}

/**
 * A child of Shanghai (310000), whose system then stops: a dose Guangdong gives is routed to
 * Shanghai and dead-lettered. Returns Shanghai's store (to start it again) and the directive.
 */
async function deadLetteredAppend(ledger: Ledger, name: string) {
  const sh = await start("310000");
  const identity = newIdentity(name);
  const { recordId } = await control(sh).registerRecord({ identity });
  ledger.registered(identity.idNumber, "310000", true);
  await stop(sh, { keepStore: true });
  const dose = newDose("440000");
  await env.client(DoseService, "province:440000").reportDose({ identity, dose });
  ledger.dose(identity.idNumber, dose.doseId, "440000", true);
  const directiveId = await until("the append dead-lettered", async () => {
    const [r] = await env.hub.sql<{ directive_id: string }[]>`
      SELECT directive_id::text FROM directives
      WHERE record_id = ${recordId} AND action = 'appendDose' AND state = 'FAILED'`;
    return r?.directive_id;
  });
  return { schema: sh.config.schema, directiveId };
}

/** Waits for the directive's receipt at the hub. */
async function answered(directiveId: string): Promise<void> {
  await until("the directive answered", async () => {
    const [r] = await env.hub.sql<{ receipt: Uint8Array | null }[]>`
      SELECT receipt FROM directives WHERE directive_id = ${directiveId}`;
    return r?.receipt ? true : undefined;
  });
}

async function expectOracleHolds(ledger: Ledger): Promise<void> {
  const report = await checkOracle(ledger, env.hub.sql, checked());
  expect(report.findings).toEqual([]);
  expect([report.lost, report.doubled]).toEqual([0, 0]);
}

describe("operator actions keep every invariant", () => {
  it("force-abort: the ended migration's steps stop being republished; the target, back late, applies them from the bus", async () => {
    const ledger = new Ledger();
    const { identity } = await beijingChild(ledger, "Abort Child");
    // Sichuan asks for the child with no system running: nothing answers the activation.
    const { migration } = await env
      .client(MigrationService, "province:510000")
      .requestMigration({ identity, idempotencyKey: randomUUID() });
    const id = migration?.migrationId ?? "";
    await until("waiting for an operator", async () =>
      (await migrationState(id)) === "NEEDS_OPERATOR" ? true : undefined,
    );
    await operator().forceAbortMigration({ migrationId: id, reason: "T-1: no system at 510000" });

    // Part 1: the activation and the revoke to Sichuan are superseded, not dead letters, and
    // no longer republished.
    const steps = async () =>
      env.hub.sql<{ action: string; state: string; publish_count: number }[]>`
        SELECT action, state, publish_count FROM directives
        WHERE migration_id = ${id} AND province = '510000' ORDER BY record_sequence`;
    const ended = await steps();
    expect(ended.map((d) => [d.action, d.state])).toEqual([
      ["activateMigratedRecord", "SUPERSEDED"],
      ["revokeCertificate", "SUPERSEDED"],
    ]);
    await new Promise((r) => setTimeout(r, 1000));
    expect(await steps()).toEqual(ended);
    const metrics = await metricsText();
    expect(metrics).not.toMatch(/^evc_hub_dead_lettered_directives\{province="510000"\}/m);
    // Both wait on the bus for Sichuan, which the hub's consumer lag shows.
    expect(metrics).toMatch(/^evc_hub_consumer_pending\{province="510000"\} 2$/m);

    // Beijing has the record back; Sichuan comes up and takes both from the bus, in order.
    const sc = await start("510000");
    await until("Sichuan's receipts reach the hub", async () => {
      const [r] = await env.hub.sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM directives
        WHERE migration_id = ${id} AND province = '510000' AND receipt IS NOT NULL`;
      return r?.n === 2 ? true : undefined;
    });
    const [local] = await sc.sql<{ status: string }[]>`
      SELECT c.status FROM certificates c JOIN records r USING (record_id)
      WHERE r.id_number = ${identity.idNumber}`;
    expect(local?.status).toBe("REVOKED");
    await until("Sichuan's consumer drained", async () =>
      /^evc_hub_consumer_pending\{province="510000"\} 0$/m.test(await metricsText())
        ? true
        : undefined,
    );
    await expectOracleHolds(ledger);
  }, 60_000);

  it("the hub tells operators when each province last reconciled", async () => {
    const last = /^evc_hub_last_reconciliation_timestamp_seconds\{province="110000"\} (\S+)$/m;
    const before = Date.now() / 1000;
    await control(bj).reconcile({});
    const at = Number(last.exec(await metricsText())?.[1]);
    expect(at).toBeGreaterThanOrEqual(Math.floor(before));
    expect(at).toBeLessThanOrEqual(Date.now() / 1000 + 1);
  });

  it("force-complete races the target's late activation receipt: either wins, the invariants hold", async () => {
    const ledger = new Ledger();
    const { identity, recordId } = await beijingChild(ledger, "Complete Child");
    // Guangdong applies what the bus brings, but its receipts cannot reach the hub.
    const cut = await start("440000", { hubUrl: "http://127.0.0.1:9" });
    const { migration } = await env
      .client(MigrationService, "province:440000")
      .requestMigration({ identity, idempotencyKey: randomUUID() });
    const id = migration?.migrationId ?? "";
    // Out of band, Guangdong tells the operator the certificate it issued.
    const certificate = await until("Guangdong activated the record", async () => {
      const [c] = await cut.sql<{ certificate_number: string }[]>`
        SELECT certificate_number FROM certificates
        WHERE record_id = ${recordId} AND status = 'NORMAL'`;
      return c?.certificate_number;
    });
    expect(await migrationState(id)).toBe("SOURCE_SUSPENDED");
    // A typo giving another child's certificate is refused, naming the field.
    const other = certificateNumber("440000");
    await env.client(RecordService, "province:440000").registerRecord({
      idempotencyKey: randomUUID(),
      identity: newIdentity("Other Child"),
      certificateNumber: other,
    });
    const typo = await operator()
      .forceCompleteMigration({ migrationId: id, certificateNumber: other, reason: "typo" })
      .catch((e: unknown) => ConnectError.from(e));
    expect(typo instanceof ConnectError && [typo.code, typo.rawMessage]).toEqual([
      Code.AlreadyExists,
      expect.stringContaining("another person's"),
    ]);
    // Guangdong's link is repaired at the moment the operator acts.
    await stop(cut, { keepStore: true });
    const [forced] = await Promise.all([
      operator()
        .forceCompleteMigration({
          migrationId: id,
          certificateNumber: certificate,
          reason: "T-2: Guangdong confirmed the activation",
        })
        .then(
          () => "forced",
          (e: unknown) => ConnectError.from(e).code,
        ),
      start("440000", { schema: cut.config.schema }),
    ]);
    // Either the operator came first, or the receipt did and the action was refused.
    expect(["forced", Code.FailedPrecondition]).toContain(forced);
    await until("the activation's receipt taken", async () => {
      const [r] = await env.hub.sql<{ receipt: Uint8Array | null }[]>`
        SELECT receipt FROM directives WHERE migration_id = ${id} AND action = 'activateMigratedRecord'`;
      return r?.receipt ? true : undefined;
    });
    const { migration: after } = await env
      .client(MigrationService, "operator:ops")
      .getMigration({ migrationId: id });
    expect(after?.state).toBe(MigrationState.COMPLETED);
    expect(after?.targetCertificateNumber).toBe(certificate);
    await expectOracleHolds(ledger);
  }, 60_000);

  it("re-drive races the owner's return: the dose append is applied once", async () => {
    const ledger = new Ledger();
    const { schema, directiveId } = await deadLetteredAppend(ledger, "Redrive Child");
    const [, back] = await Promise.all([
      operator().redriveDirective({ directiveId, reason: "T-4: Shanghai is back" }),
      start("310000", { schema }),
    ]);
    await answered(directiveId);
    await expectOracleHolds(ledger);
    // Only one Shanghai takes from its consumer at a time: the next test starts its own.
    await stop(back);
  }, 60_000);

  it("supersede races the owner's return: a dead-lettered dose append is still applied from the bus", async () => {
    const ledger = new Ledger();
    const { schema, directiveId } = await deadLetteredAppend(ledger, "Supersede Child");
    const [superseded] = await Promise.all([
      operator().supersedeDirective({ directiveId, reason: "T-3: Shanghai restores its system" }),
      start("310000", { schema }),
    ]);
    expect([DirectiveState.SUPERSEDED, DirectiveState.ACKNOWLEDGED]).toContain(
      superseded.directive?.state,
    );
    await answered(directiveId);
    await expectOracleHolds(ledger);
    // Superseding again is answered as the first time, or refused once answered.
    const again = await operator()
      .supersedeDirective({ directiveId, reason: "again" })
      .then(
        (r) => r.directive?.state,
        (e: unknown) => ConnectError.from(e).code,
      );
    expect([DirectiveState.SUPERSEDED, Code.FailedPrecondition]).toContain(again);
  }, 60_000);
});
