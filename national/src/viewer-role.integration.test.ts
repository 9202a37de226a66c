import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { RecordContentsSchema } from "@evc-interop/gen/evc/common/v1/record_pb";
import { ReceiptOutcome } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import { AuditService } from "@evc-interop/gen/evc/national/v1/audit_service_pb";
import {
  DirectiveService,
  DirectiveState,
} from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import { MigrationService } from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { OperatorService } from "@evc-interop/gen/evc/national/v1/operator_service_pb";
import { PrivacyService } from "@evc-interop/gen/evc/national/v1/privacy_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import { SnapshotService } from "@evc-interop/gen/evc/national/v1/snapshot_service_pb";
import {
  certificateNumber,
  newDose,
  newIdentity,
  startTestHub,
  type TestHubEnv,
  until,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * #18 part 2: viewer vs operator. A viewer (viewer:<name>) watches migrations and directives —
 * without the identities their records carry — and can neither act nor read a person's data;
 * an operator does both.
 */
let env: TestHubEnv;

beforeAll(async () => {
  env = await startTestHub();
});

afterAll(async () => {
  await env?.close();
});

const refused = (p: Promise<unknown>) =>
  p.then(
    () => "allowed",
    (e: unknown) => Code[ConnectError.from(e).code],
  );

/** A person of Beijing migrating to Guangdong: the suspend answered (with the record), the activation sent. */
async function migrationUnderWay() {
  const identity = newIdentity();
  const { recordId } = await env.client(RecordService, "province:110000").registerRecord({
    idempotencyKey: randomUUID(),
    identity,
    certificateNumber: certificateNumber("110000"),
  });
  const { migration } = await env
    .client(MigrationService, "province:440000")
    .requestMigration({ identity, idempotencyKey: randomUUID() });
  const migrationId = migration?.migrationId ?? "";
  const suspend = await until("the suspend published", async () => {
    const [d] = await env.hub.sql<{ directive_id: string }[]>`
      SELECT directive_id::text FROM directives
      WHERE migration_id = ${migrationId} AND action = 'suspendForMigration' AND state = 'DELIVERED'`;
    return d;
  });
  await env.client(DirectiveService, "province:110000").submitReceipts({
    receipts: [
      {
        directiveId: suspend.directive_id,
        attempt: 1,
        outcome: ReceiptOutcome.APPLIED,
        appliedAt: timestampNow(),
        result: {
          case: "suspended",
          value: {
            record: create(RecordContentsSchema, {
              recordId,
              identity,
              doses: [newDose("110000")],
            }),
            suspendedCertificateNumber: "",
          },
        },
      },
    ],
  });
  await until("the activation published", async () => {
    const [d] = await env.hub.sql`
      SELECT 1 FROM directives WHERE migration_id = ${migrationId}
        AND action = 'activateMigratedRecord' AND state = 'DELIVERED'`;
    return d;
  });
  return { identity, recordId, migrationId };
}

describe("a viewer", () => {
  it("sees migrations and directives, not whom they are about", async () => {
    const { identity, migrationId } = await migrationUnderWay();
    const viewer = env.client(MigrationService, "viewer:watch");
    expect((await viewer.getMigration({ migrationId })).migration?.migrationId).toBe(migrationId);
    const listed = await viewer.listMigrations({ provinceCode: "440000" });
    expect(listed.migrations.map((m) => m.migrationId)).toContain(migrationId);

    const find = async (subject: string) => {
      const list = (province: string, state: DirectiveState) =>
        env.client(DirectiveService, subject).listDirectives({ provinceCode: province, state });
      const activate = (await list("440000", DirectiveState.DELIVERED)).directives.find(
        (s) =>
          s.directive?.action.case === "activateMigratedRecord" &&
          s.directive.action.value.migrationId === migrationId,
      );
      const suspend = (await list("110000", DirectiveState.ACKNOWLEDGED)).directives.find(
        (s) =>
          s.directive?.action.case === "suspendForMigration" &&
          s.directive.action.value.migrationId === migrationId,
      );
      const activated =
        activate?.directive?.action.case === "activateMigratedRecord"
          ? activate.directive.action.value.record
          : undefined;
      const suspended =
        suspend?.receipt?.result.case === "suspended"
          ? suspend.receipt.result.value.record
          : undefined;
      return { activated, suspended };
    };
    const asOperator = await find("operator:ops");
    expect(asOperator.activated?.identity?.idNumber).toBe(identity.idNumber);
    expect(asOperator.suspended?.identity?.idNumber).toBe(identity.idNumber);
    const asViewer = await find("viewer:watch");
    // The same directives and receipts, every dose kept, no identity.
    expect(asViewer.activated?.recordId).toBe(asOperator.activated?.recordId);
    expect(asViewer.activated?.doses).toEqual(asOperator.activated?.doses);
    expect(asViewer.activated?.identity).toBeUndefined();
    expect(asViewer.suspended?.doses).toEqual(asOperator.suspended?.doses);
    expect(asViewer.suspended?.identity).toBeUndefined();
  });

  it("can neither act nor read a person's data; an operator can", async () => {
    const { identity, recordId, migrationId } = await migrationUnderWay();
    const as = <S extends Parameters<typeof env.client>[0]>(s: S, who: string) =>
      env.client(s, who);
    const viewer = "viewer:watch";
    expect(
      await refused(
        as(OperatorService, viewer).forceAbortMigration({ migrationId, reason: "watching" }),
      ),
    ).toBe("PermissionDenied");
    expect(await refused(as(AuditService, viewer).getPersonHistory({ identity }))).toBe(
      "PermissionDenied",
    );
    expect(await refused(as(AuditService, viewer).listPersonReads({}))).toBe("PermissionDenied");
    expect(await refused(as(SnapshotService, viewer).getRecordContents({ recordId }))).toBe(
      "PermissionDenied",
    );
    const stream = async () => {
      for await (const _ of as(SnapshotService, viewer).streamSnapshot({
        provinceCode: "110000",
      })) {
        // the first page is enough
        break;
      }
    };
    expect(await refused(stream())).toBe("PermissionDenied");
    expect(await refused(as(PrivacyService, viewer).eraseIdentity({ identity, reason: "x" }))).toBe(
      "PermissionDenied",
    );
    expect(
      await refused(
        as(RecordService, viewer).registerRecord({
          idempotencyKey: randomUUID(),
          identity: newIdentity(),
          certificateNumber: certificateNumber("110000"),
        }),
      ),
    ).toBe("PermissionDenied");
    // The operator reads the person's history; the viewer's refusals changed nothing.
    const { events } = await as(AuditService, "operator:ops").getPersonHistory({ identity });
    expect(events.at(-1)?.type).toBe("SourceSuspended");
  });
});
