import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { CertificateStatus } from "@evc-interop/gen/evc/common/v1/record_pb";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { AuditService } from "@evc-interop/gen/evc/national/v1/audit_service_pb";
import {
  MigrationService,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { OperatorService } from "@evc-interop/gen/evc/national/v1/operator_service_pb";
import { ALERT_RULES_FILE, operatorCli } from "@evc-interop/national";
import {
  closeTestProvince,
  controlTransport,
  newIdentity,
  promtoolJudges,
  startTestHub,
  startTestProvince,
  type TestHubEnv,
  until,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Province } from "./province.js";

/**
 * #18 part 1, the story as reported: a province with valid credentials and no running system
 * asks for Beijing's children. Before, each migration sat in COMPENSATING for ever, the child's
 * certificate suspended, and once 100 were stuck no other deadline was ever handled.
 */
let env: TestHubEnv;
let bj: Province;
let gd: Province;
/** The stuck migrations of the first test, and their children. */
const stuck: { ids: string[]; children: ReturnType<typeof newIdentity>[]; live?: string } = {
  ids: [],
  children: [],
};

beforeAll(async () => {
  env = await startTestHub({
    activateDeadlineMs: 300,
    compensateDeadlineMs: 150,
    compensateRounds: 2,
    redeliverAfterMs: 100,
  });
  bj = await startTestProvince(env, "110000");
  gd = await startTestProvince(env, "440000");
});

afterAll(async () => {
  for (const p of [bj, gd]) if (p) await closeTestProvince(p);
  await env?.close();
});

describe("a migration the target never answers", () => {
  it("ends in NEEDS_OPERATOR holding the lock, and 150 of them (the issue's count) starve no other deadline", async () => {
    const control = createClient(ControlService, controlTransport(bj));
    const children = Array.from({ length: 150 }, () => newIdentity("Stuck Child"));
    stuck.children = children;
    for (const identity of children) await control.registerRecord({ identity });
    // 510000 has credentials and no running system: it asks for every one of them.
    const migrations = env.client(MigrationService, "province:510000");
    const ids = stuck.ids;
    for (const identity of children)
      ids.push(
        (await migrations.requestMigration({ identity, idempotencyKey: randomUUID() })).migration
          ?.migrationId ?? "",
      );
    const ops = env.client(MigrationService, "operator:ops");
    await until(
      "every stuck migration handed to an operator",
      async () => {
        const [r] = await env.hub.sql<{ n: number }[]>`
          SELECT count(*)::int AS n FROM migrations WHERE state = 'NEEDS_OPERATOR'`;
        return r?.n === ids.length ? true : undefined;
      },
      60_000,
    );
    const one = (await ops.getMigration({ migrationId: ids[0] ?? "" })).migration;
    expect(one?.state).toBe(MigrationState.NEEDS_OPERATOR);

    // The lock is held: the child cannot be taken by anyone else meanwhile (no second NORMAL).
    const second = await env
      .client(MigrationService, "province:440000")
      .requestMigration({ identity: children[0], idempotencyKey: randomUUID() })
      .catch((e: unknown) => ConnectError.from(e));
    expect(second instanceof ConnectError && second.code).toBe(Code.FailedPrecondition);

    // An alarm an operator can see.
    const metrics = await (await fetch(`${env.hub.url}/metrics`)).text();
    // By the target that never answered, the province whose system is not running.
    expect(metrics).toMatch(/^evc_hub_migrations_needing_operator\{province="510000"\} 150$/m);
    const judged = promtoolJudges(
      ALERT_RULES_FILE,
      [{ text: metrics, minutes: 3 }],
      "EvcMigrationsNeedOperator",
      [{ province: "510000" }],
      1,
    );
    expect(judged.ok, judged.output).toBe(true);

    // Meanwhile other migrations' deadlines are handled and real ones complete.
    const other = newIdentity("Free Child");
    await control.registerRecord({ identity: other });
    const { migrationId } = await createClient(ControlService, controlTransport(gd)).migrateIn({
      identity: other,
    });
    stuck.live = migrationId;
    const done = await until("a live migration completes", async () => {
      const m = (await ops.getMigration({ migrationId })).migration;
      return m?.state === MigrationState.COMPLETED ? m : undefined;
    });
    const [cert] = await gd.sql<{ status: string }[]>`
      SELECT status FROM certificates WHERE certificate_number = ${done.targetCertificateNumber}`;
    expect(cert?.status).toBe(CertificateStatus[CertificateStatus.NORMAL]);
  }, 120_000);

  it("an operator finds them by state, province and age; a province sees only its own", async () => {
    const ops = env.client(MigrationService, "operator:ops");
    const listAll = async (req: Parameters<typeof ops.listMigrations>[0]) => {
      const found: string[] = [];
      let pageToken = "";
      do {
        const page = await ops.listMigrations({ ...req, pageSize: 40, pageToken });
        found.push(...page.migrations.map((m) => m.migrationId));
        pageToken = page.nextPageToken;
      } while (pageToken);
      return found;
    };
    const stuckFor = timestampFromDate(new Date(Date.now() + 1000));
    const needing = await listAll({
      state: MigrationState.NEEDS_OPERATOR,
      provinceCode: "510000",
      updatedBefore: stuckFor,
    });
    expect(new Set(needing)).toEqual(new Set(stuck.ids));
    // Unchanged for an hour: none yet. Another province's: none of these.
    const hourAgo = timestampFromDate(new Date(Date.now() - 3_600_000));
    expect(await listAll({ state: MigrationState.NEEDS_OPERATOR, updatedBefore: hourAgo })).toEqual(
      [],
    );
    expect(await listAll({ state: MigrationState.NEEDS_OPERATOR, provinceCode: "310000" })).toEqual(
      [],
    );
    const other = await env
      .client(MigrationService, "province:440000")
      .listMigrations({ provinceCode: "510000" })
      .catch((e: unknown) => ConnectError.from(e));
    expect(other instanceof ConnectError && other.code).toBe(Code.PermissionDenied);
  });

  it("evc-operator lists them and force-aborts one; misuse and refusals say why", async () => {
    const dir = mkdtempSync(join(tmpdir(), "evc-operator-"));
    try {
      const key = join(dir, "operator.jwk");
      writeFileSync(key, JSON.stringify(env.creds.credential("operator:ops").privateJwk));
      const cli = async (...argv: string[]) => {
        const lines: string[] = [];
        const code = await operatorCli([...argv, "--hub", env.hub.url, "--key", key], {}, (l) =>
          lines.push(l),
        );
        return { code, lines };
      };
      const listed = await cli("migrations", "--state", "needs_operator", "--province", "510000");
      expect(listed.code).toBe(0);
      expect(listed.lines.map((l) => l.split("\t")[0]).sort()).toEqual([...stuck.ids].sort());
      expect(listed.lines[0]).toMatch(/\tNEEDS_OPERATOR\t110000->510000\tupdated 20/);
      expect(
        (await cli("migrations", "--state", "needs_operator", "--stuck-minutes", "60")).lines,
      ).toEqual([]);
      const revokes = await cli("directives", "--province", "510000", "--state", "delivered");
      expect(revokes.lines.length).toBeGreaterThan(0);
      expect(revokes.lines.every((l) => /\tDELIVERED\t510000\t/.test(l))).toBe(true);
      // The revokes the hub keeps re-driving, and the activations before them, unanswered.
      expect(revokes.lines.some((l) => /\trevokeCertificate\tissued 20/.test(l))).toBe(true);

      const id = stuck.ids.at(-1) ?? "";
      expect((await cli("force-abort", id)).code).toBe(2); // no reason
      expect((await cli("migrations", "--state", "stuck")).lines[0]).toMatch(
        /unknown state "stuck"/,
      );
      const notStuck = await cli("force-abort", stuck.live ?? "", "--reason", "x");
      expect(notStuck.code).toBe(1);
      expect(notStuck.lines[0]).toMatch(/^evc-operator: the hub refused: \[FailedPrecondition\]/);
      const done = await cli("force-abort", id, "--reason", "ticket 8: 510000 confirms");
      expect(done).toEqual({ code: 0, lines: [`${id}\tCOMPENSATED`] });
      // Its activation and revoke to 510000 are superseded: no longer republished nor alarmed.
      const settled = await cli("directives", "--province", "510000", "--state", "superseded");
      expect(settled.lines.map((l) => l.split("\t")[3])).toEqual([
        "activateMigratedRecord",
        "revokeCertificate",
      ]);
      const again = settled.lines[0]?.split("\t")[0] ?? "";
      expect(await cli("supersede", again, "--reason", "ticket 9")).toEqual({
        code: 0,
        lines: [`${again}\tSUPERSEDED`],
      });
      // The revoke a stuck migration still waits for cannot be superseded; nor completed.
      const settledIds = new Set(settled.lines.map((l) => l.split("\t")[0]));
      const awaited = revokes.lines
        .map((l) => l.split("\t"))
        .find((f) => f[3] === "revokeCertificate" && !settledIds.has(f[0]))?.[0];
      const refusedSupersede = await cli("supersede", awaited ?? "", "--reason", "x");
      expect(refusedSupersede.code).toBe(1);
      expect(refusedSupersede.lines[0]).toMatch(/\[FailedPrecondition\].*awaited by migration/);
      expect((await cli("force-complete", id, "--reason", "x")).code).toBe(2); // no certificate
      const notWaiting = await cli(
        "force-complete",
        stuck.ids.at(-2) ?? "",
        "--certificate",
        "510000-ABCDE1",
        "--reason",
        "x",
      );
      expect(notWaiting.lines[0]).toMatch(/\[FailedPrecondition\].*force-abort it instead/);

      const provinceKey = join(dir, "province.jwk");
      writeFileSync(
        provinceKey,
        JSON.stringify(env.creds.credential("province:110000").privateJwk),
      );
      const asProvince = await operatorCli(
        ["migrations", "--hub", env.hub.url, "--key", provinceKey],
        {},
        () => {},
      );
      expect(asProvince).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("an operator force-aborts one: an event naming them, the source restored, the lock released", async () => {
    const id = stuck.ids[0] ?? "";
    const child = stuck.children[0];
    const operator = env.client(OperatorService, "operator:ops");
    const asProvince = await env
      .client(OperatorService, "province:110000")
      .forceAbortMigration({ migrationId: id, reason: "x" })
      .catch((e: unknown) => ConnectError.from(e));
    expect(asProvince instanceof ConnectError && asProvince.code).toBe(Code.PermissionDenied);
    const notStuck = await operator
      .forceAbortMigration({ migrationId: stuck.live ?? "", reason: "x" })
      .catch((e: unknown) => ConnectError.from(e));
    expect(notStuck instanceof ConnectError && notStuck.code).toBe(Code.FailedPrecondition);

    const { migration } = await operator.forceAbortMigration({
      migrationId: id,
      reason: "ticket 7: 510000 confirms it never issued a certificate",
    });
    expect(migration?.state).toBe(MigrationState.COMPENSATED);
    const { events } = await env
      .client(AuditService, "operator:ops")
      .getPersonHistory({ identity: child });
    expect(events.at(-1)?.type).toBe("MigrationCompensated");
    expect(events.at(-1)?.data).toMatchObject({
      by: "operator:ops",
      reason:
        "force-aborted by operator:ops: ticket 7: 510000 confirms it never issued a certificate",
    });
    // The source gets its record back (restore directive) and the child may migrate again.
    await until("Beijing's certificate NORMAL again", async () => {
      const [c] = await bj.sql<{ status: string }[]>`
        SELECT c.status FROM certificates c JOIN records r ON r.record_id = c.record_id
        WHERE r.id_number = ${child?.idNumber ?? ""} AND c.status = 'NORMAL'`;
      return c ? true : undefined;
    });
    const again = await env
      .client(MigrationService, "province:440000")
      .requestMigration({ identity: child, idempotencyKey: randomUUID() });
    expect(again.migration?.state).toBe(MigrationState.REQUESTED);
  }, 60_000);
});
