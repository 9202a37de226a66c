import { createClient } from "@connectrpc/connect";
import { CloseReason } from "@evc-interop/gen/evc/common/v1/record_pb";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { AuditService } from "@evc-interop/gen/evc/national/v1/audit_service_pb";
import {
  MigrationService,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { PrivacyService } from "@evc-interop/gen/evc/national/v1/privacy_service_pb";
import { rebuildSnapshot } from "@evc-interop/national";
import {
  closeTestProvince,
  codeOf,
  controlTransport,
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
 * Crypto-shredding (#15 part 6): the hub's event log never holds an identity in clear; erasing
 * a person deletes their data key, so their identity is unreadable everywhere in the log while
 * the hash chain verifies and their records, certificates and migrations stay as they were.
 */
let env: TestHubEnv;
let bj: Province;
let gd: Province;
const child = newIdentity("Erasable Child");
let recordId: string;

beforeAll(async () => {
  env = await startTestHub();
  bj = await startTestProvince(env, "110000");
  gd = await startTestProvince(env, "440000");
  // Registered in Beijing with a dose, migrated to Guangdong: the identity is in the
  // registration, the migration request, the activation directive and the suspend receipt.
  const reg = await createClient(ControlService, controlTransport(bj)).registerRecord({
    identity: child,
    doses: [newDose("110000")],
  });
  recordId = reg.recordId;
  const { migrationId } = await createClient(ControlService, controlTransport(gd)).migrateIn({
    identity: child,
  });
  await until("migration completed", async () => {
    const { migration } = await env
      .client(MigrationService, "operator:ops")
      .getMigration({ migrationId });
    return migration?.state === MigrationState.COMPLETED ? true : undefined;
  });
});

afterAll(async () => {
  for (const p of [bj, gd]) if (p) await closeTestProvince(p);
  await env?.close();
});

const secrets = () => [child.idNumber, child.name];

async function logText(): Promise<string> {
  const rows = await env.hub.sql<{ t: string }[]>`SELECT data::text AS t FROM events`;
  return rows.map((r) => r.t).join("\n");
}

/** The person's rows in the projections (a certificate's contents digest aside: see below). */
async function personRows() {
  const sql = env.hub.sql;
  const [r] = await sql<{ records: string; certificates: string; migrations: string }[]>`
    SELECT (SELECT json_agg(r ORDER BY record_id)::text FROM records r WHERE record_id = ${recordId}) AS records,
           (SELECT json_agg(to_jsonb(c) - 'contents_digest' ORDER BY certificate_number)::text FROM certificates c WHERE record_id = ${recordId}) AS certificates,
           (SELECT json_agg(m ORDER BY migration_id)::text FROM migrations m WHERE record_id = ${recordId}) AS migrations`;
  return r;
}

const erase = (subject: string) =>
  env.client(PrivacyService, subject).eraseIdentity({ identity: child, reason: "ticket 42" });

describe("crypto-shredding of identity in the hub's event log", () => {
  it("the log never holds an identity in clear, and an auditor still reads it before erasure", async () => {
    const text = await logText();
    for (const s of secrets()) expect(text).not.toContain(s);
    expect(text).toContain('"sealed"');
    const { events } = await env
      .client(AuditService, "operator:ops")
      .getPersonHistory({ identity: child });
    const registered = events.find((e) => e.type === "RecordRegistered");
    expect(JSON.stringify(registered?.data)).toContain(child.idNumber);
  });

  it("is refused to a province, and while the record is open", async () => {
    expect(await codeOf(erase("province:440000"))).toBe("PermissionDenied");
    expect(await codeOf(erase("operator:ops"))).toBe("FailedPrecondition");
  });

  it("erases: identity unreadable everywhere, chain verifies, counts and projections unchanged", async () => {
    await createClient(ControlService, controlTransport(gd)).closeRecord({
      recordId,
      reason: CloseReason.DECEASED,
    });
    await until("closure at the hub", async () => {
      const [r] = await env.hub.sql<{ status: string }[]>`
        SELECT status FROM records WHERE record_id = ${recordId}`;
      return r?.status === "CLOSED" ? true : undefined;
    });
    const before = await personRows();
    const [{ n: eventsBefore } = { n: 0 }] = await env.hub.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM events`;

    const done = await erase("operator:ops");
    expect(done.position).toBeGreaterThan(0n);

    const history = await env
      .client(AuditService, "operator:ops")
      .getPersonHistory({ identity: child });
    const shown = JSON.stringify(history.events.map((e) => e.data));
    for (const s of secrets()) expect(shown).not.toContain(s);
    expect(shown).toContain('"erased":true');
    const last = history.events.at(-1);
    expect(last?.type).toBe("IdentityErased");
    expect(last?.data).toMatchObject({
      by: "operator:ops",
      reason: "ticket 42",
    });

    const [state] = await env.hub.sql<{ s: string }[]>`
      SELECT state::text AS s FROM persons WHERE person_key = ${history.streamId}`;
    for (const s of secrets()) expect(state?.s).not.toContain(s);
    const outbox = await env.hub.sql<{ payload: Buffer; receipt: Buffer | null }[]>`
      SELECT payload, receipt FROM directives WHERE person_key = ${history.streamId}`;
    for (const d of outbox)
      for (const s of secrets()) {
        expect(d.payload.includes(s)).toBe(false);
        expect(d.receipt?.includes(s) ?? false).toBe(false);
      }

    // Sealing waits until no older transaction is open anywhere on the server (other tests'
    // included): verify until the chain covers every event, the erasure's too.
    const verified = await until(
      "every event sealed and verified",
      async () => {
        const v = await env.client(AuditService, "operator:ops").verifyLog({});
        return Number(v.eventsVerified) === eventsBefore + 1 ? v : undefined;
      },
      45_000,
    );
    expect(verified.ok).toBe(true);
    expect(await personRows()).toEqual(before);
    // The contents digest hashes the identity number: an erased person has none (as a replay).
    const digests = await env.hub.sql<{ contents_digest: string }[]>`
      SELECT contents_digest FROM certificates WHERE record_id = ${recordId}`;
    expect(digests.length).toBeGreaterThan(0);
    expect(digests.map((d) => d.contents_digest)).toEqual(digests.map(() => ""));
    const rebuilt = await rebuildSnapshot(env.hub.sql);
    expect(rebuilt.differences).toEqual({ records: 0, certificates: 0, migrations: 0, persons: 0 });

    expect(await codeOf(erase("operator:ops"))).toBe("AlreadyExists");
  });
});
