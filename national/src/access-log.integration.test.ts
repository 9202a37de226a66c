import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { AuditService } from "@evc-interop/gen/evc/national/v1/audit_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import { SnapshotService } from "@evc-interop/gen/evc/national/v1/snapshot_service_pb";
import {
  certificateNumber,
  newIdentity,
  startTestHub,
  type TestHubEnv,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { personKey } from "./domain/codec.js";

/** Who read what at the hub (#15 part 7, the hub's half). */
let env: TestHubEnv;
const child = newIdentity("Read Child");
let recordId: string;

beforeAll(async () => {
  env = await startTestHub();
  ({ recordId } = await env.client(RecordService, "province:110000").registerRecord({
    idempotencyKey: randomUUID(),
    identity: child,
    certificateNumber: certificateNumber("110000"),
  }));
});

afterAll(async () => {
  await env?.close();
});

describe("the hub's access log", () => {
  it("records every read of a person's data: who, what for, which method; operators query it", async () => {
    await env
      .client(AuditService, "operator:ops")
      .getPersonHistory({ identity: child }, { headers: { "evc-purpose": "investigation-7" } });
    await env.client(RecordService, "province:110000").locateRecord({ identity: child });
    await env.client(SnapshotService, "province:110000").getRecordContents({ recordId });
    const { reads } = await env
      .client(AuditService, "operator:ops")
      .listPersonReads({ identity: child });
    expect(reads.map((r) => [r.caller, r.method, r.purpose])).toEqual([
      ["province:110000", "evc.national.v1.SnapshotService/GetRecordContents", "unspecified"],
      ["province:110000", "evc.national.v1.RecordService/LocateRecord", "unspecified"],
      ["operator:ops", "evc.national.v1.AuditService/GetPersonHistory", "investigation-7"],
    ]);
    expect(new Set(reads.map((r) => r.streamId))).toEqual(
      new Set([personKey(env.config.personKeySecret, child)]),
    );
    const byCaller = await env
      .client(AuditService, "operator:ops")
      .listPersonReads({ caller: "operator:ops", pageSize: 1 });
    expect(byCaller.reads).toHaveLength(1);
    expect(byCaller.nextPosition).toBeGreaterThan(0n);
  });

  it("is for operators only, append-only, and a malformed purpose is InvalidArgument", async () => {
    const asProvince = await env
      .client(AuditService, "province:110000")
      .listPersonReads({ identity: child })
      .catch((e: unknown) => ConnectError.from(e));
    expect(asProvince instanceof ConnectError && asProvince.code).toBe(Code.PermissionDenied);
    await expect(env.hub.sql`DELETE FROM person_reads`).rejects.toThrow(/append-only/);
    const bad = await env
      .client(RecordService, "province:110000")
      .locateRecord({ identity: child }, { headers: { "evc-purpose": "NOT OK" } })
      .catch((e: unknown) => ConnectError.from(e));
    expect(bad instanceof ConnectError && bad.code).toBe(Code.InvalidArgument);
    expect(bad instanceof ConnectError && bad.rawMessage).toMatch(/^evc-purpose/);
  });
});
