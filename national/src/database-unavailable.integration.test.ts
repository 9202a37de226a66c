import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import { SnapshotService } from "@evc-interop/gen/evc/national/v1/snapshot_service_pb";
import {
  certificateNumber,
  errorOf,
  newIdentity,
  startTestHub,
  TEST_DATABASE_URL,
  type TestHubEnv,
  uniqueName,
} from "@evc-interop/testing";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * Seen running the bench: when PostgreSQL refused connections ("sorry, too many clients
 * already", SQLSTATE 53300), the hub answered RegisterRecord with Internal. The hub here logs
 * in as a role of its own whose connection limit the test lowers to 0 (PostgreSQL then refuses
 * it with the same SQLSTATE), so the shared server is never touched.
 */
const admin = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
const role = uniqueName("evc_limited");
let env: TestHubEnv;

beforeAll(async () => {
  const [db] = await admin<{ name: string }[]>`SELECT current_database() AS name`;
  await admin`CREATE ROLE ${admin(role)} LOGIN`;
  await admin`GRANT CREATE ON DATABASE ${admin(db?.name ?? "test")} TO ${admin(role)}`;
  const url = new URL(TEST_DATABASE_URL);
  url.username = role;
  url.password = "";
  env = await startTestHub({ databaseUrl: url.toString() });
});

afterAll(async () => {
  await admin`ALTER ROLE ${admin(role)} CONNECTION LIMIT -1`.catch(() => undefined);
  await env?.close();
  await admin`DROP OWNED BY ${admin(role)}`.catch(() => undefined);
  await admin`DROP ROLE IF EXISTS ${admin(role)}`;
  await admin.end();
});

const register = () =>
  env.client(RecordService, "province:110000").registerRecord({
    idempotencyKey: randomUUID(),
    identity: newIdentity(),
    certificateNumber: certificateNumber("110000"),
  });

/**
 * What the hub says: the connection limit (53300), or, when a pooled connection the server
 * terminated is used before the pool noticed, the connection closed or reset under it — a
 * race (the reset was answered Internal until the runtime knew it).
 */
const REFUSED =
  /the database is unavailable \((53300|CONNECTION_CLOSED|ECONNRESET)\); try again later/;

describe("PostgreSQL refusing the hub's connections", () => {
  it("is answered Unavailable, never Internal, and the hub serves again once it accepts", async () => {
    await register();
    await admin`ALTER ROLE ${admin(role)} CONNECTION LIMIT 0`;
    await admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ${role}`;
    const refused = await errorOf(register());
    expect(refused && [refused.code, refused.rawMessage]).toEqual([
      Code.Unavailable,
      expect.stringMatching(REFUSED),
    ]);
    // A server stream fails while it is read, past the start of the call: the same answer.
    const snapshot = async () => {
      for await (const _ of env.client(SnapshotService, "province:110000").streamSnapshot({}));
    };
    const stream = await errorOf(snapshot());
    expect(stream && [stream.code, stream.rawMessage]).toEqual([
      Code.Unavailable,
      expect.stringMatching(REFUSED),
    ]);
    await admin`ALTER ROLE ${admin(role)} CONNECTION LIMIT -1`;
    await snapshot();
    const again = await register();
    expect(again.recordId).not.toBe("");
  });
});
