import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { CertificateStatus } from "@evc-interop/gen/evc/common/v1/record_pb";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import {
  MigrationService,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { newIdentity, startTestHub, type TestHubEnv } from "@evc-interop/national/testing/harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Province } from "./province.js";
import { closeTestProvince, controlTransport, startTestProvince } from "./testing/provinces.js";
import { until } from "./testing/until.js";

/**
 * #18 part 1, the story as reported: a province with valid credentials and no running system
 * asks for Beijing's children. Before, each migration sat in COMPENSATING for ever, the child's
 * certificate suspended, and once 100 were stuck no other deadline was ever handled.
 */
let env: TestHubEnv;
let bj: Province;
let gd: Province;

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
  it("ends in NEEDS_OPERATOR holding the lock, and 105 of them starve no other deadline", async () => {
    const control = createClient(ControlService, controlTransport(bj));
    const children = Array.from({ length: 105 }, () => newIdentity("Stuck Child"));
    for (const identity of children) await control.registerRecord({ identity });
    // 510000 has credentials and no running system: it asks for every one of them.
    const migrations = env.client(MigrationService, "province:510000");
    const ids: string[] = [];
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
    expect(metrics).toMatch(/^evc_hub_migrations_needing_operator 105$/m);

    // Meanwhile other migrations' deadlines are handled and real ones complete.
    const other = newIdentity("Free Child");
    await control.registerRecord({ identity: other });
    const { migrationId } = await createClient(ControlService, controlTransport(gd)).migrateIn({
      identity: other,
    });
    const done = await until("a live migration completes", async () => {
      const m = (await ops.getMigration({ migrationId })).migration;
      return m?.state === MigrationState.COMPLETED ? m : undefined;
    });
    const [cert] = await gd.sql<{ status: string }[]>`
      SELECT status FROM certificates WHERE certificate_number = ${done.targetCertificateNumber}`;
    expect(cert?.status).toBe(CertificateStatus[CertificateStatus.NORMAL]);
  }, 120_000);
});
