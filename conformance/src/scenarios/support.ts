import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Identity } from "@evc-interop/gen/evc/common/v1/identity_pb";
import {
  CertificateStatus,
  type Dose,
  DoseSchema,
  RecordContentsSchema,
} from "@evc-interop/gen/evc/common/v1/record_pb";
import {
  type Directive,
  type Receipt,
  ReceiptOutcome,
  ReceiptSchema,
} from "@evc-interop/gen/evc/directive/v1/directive_pb";
import {
  MigrationService,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import { syntheticIdentity } from "@evc-interop/runtime";
import { CaseFailure } from "../case.js";
import type { Kit } from "../kit.js";

/** What the named scenarios share: building directives, waiting for receipts, reading back. */

export function expect(ok: boolean, expected: string, seen: string): asserts ok {
  if (!ok) throw new CaseFailure(expected, seen);
}

export function identity(): Identity {
  return syntheticIdentity("Conformance Child");
}

export function dose(province: string, n = 1): Dose {
  return create(DoseSchema, {
    doseId: `kit-${crypto.randomUUID()}`,
    vaccineCode: "MMR",
    doseNumber: n,
    administeredAt: timestampFromDate(new Date("2022-01-01T00:00:00Z")),
    administeredProvinceCode: province,
  });
}

export function show(r: Receipt | undefined): string {
  return r ? toJsonString(ReceiptSchema, r) : "no receipt";
}

/** One receipt for `d`, asserted to arrive. */
export async function receiptFor(kit: Kit, d: Directive, timeoutMs = 10_000): Promise<Receipt> {
  const [r] = await kit.waitReceipts(d.directiveId, 1, timeoutMs);
  expect(r !== undefined, `a receipt for directive ${d.directiveId} (${d.action.case})`, "none");
  return r;
}

/** An activate directive for a record migrating in from the kit's province 650000. */
export function activateDirective(
  kit: Kit,
  recordId: string,
  who: Identity,
  doses: Dose[],
  init: Partial<Directive> = {},
): Directive {
  return kit.directive({
    recordId,
    ...init,
    action: {
      case: "activateMigratedRecord",
      value: {
        $typeName: "evc.directive.v1.ActivateMigratedRecord",
        migrationId: crypto.randomUUID(),
        sourceProvinceCode: kit.virtual[0],
        record: create(RecordContentsSchema, { recordId, identity: who, doses }),
      },
    },
  });
}

/** Creates a record at the province with an activate directive; returns what was sent and answered. */
export async function activated(kit: Kit, doses = 2) {
  const who = identity();
  const recordId = crypto.randomUUID();
  const list = Array.from({ length: doses }, (_, i) => dose(kit.virtual[0], i + 1));
  const d = activateDirective(kit, recordId, who, list);
  await kit.deliver(d);
  const r = await receiptFor(kit, d);
  expect(r.outcome === ReceiptOutcome.APPLIED, "activate answered APPLIED", show(r));
  const cert = r.result.case === "activated" ? r.result.value.certificateNumber : "";
  expect(
    cert.startsWith(`${kit.config.province.code}-`),
    "activate receipt carries the new certificate number",
    show(r),
  );
  return { identity: who, recordId, doses: list, certificate: cert, directive: d };
}

export function next(
  kit: Kit,
  prev: Directive,
  action: Directive["action"],
  seq?: bigint,
): Directive {
  return kit.directive({
    recordId: prev.recordId,
    recordSequence: seq ?? prev.recordSequence + 1n,
    streamVersion: (seq ?? prev.recordSequence + 1n) + 1n,
    action,
  });
}

export const suspendAction = (kit: Kit): Directive["action"] => ({
  case: "suspendForMigration",
  value: {
    $typeName: "evc.directive.v1.SuspendForMigration",
    migrationId: crypto.randomUUID(),
    targetProvinceCode: kit.virtual[1],
  },
});

export const appendAction = (d: Dose): Directive["action"] => ({
  case: "appendDose",
  value: { $typeName: "evc.directive.v1.AppendDose", dose: d },
});

export async function statusOf(kit: Kit, number: string): Promise<string> {
  const res = await kit.api.getCertificateStatus({ certificateNumber: number });
  return CertificateStatus[res.certificate?.status ?? 0] ?? "?";
}

/** The record at the province holds exactly `n` doses. */
export async function expectDoseCount(
  kit: Kit,
  recordId: string,
  n: number,
  expected: string,
): Promise<void> {
  const rec = await kit.api.getRecord({ recordId });
  expect(rec.record?.doses.length === n, expected, `${rec.record?.doses.length} doses`);
}

export async function noReceipt(kit: Kit, d: Directive, ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
  const got = kit.receipts(d.directiveId);
  expect(got.length === 0, `no receipt for directive ${d.directiveId}`, show(got[0]));
}

export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (err) {
    return Code[ConnectError.from(err).code] ?? "unknown";
  }
}

export function sameReceipts(rs: Receipt[]): boolean {
  const first = rs[0] ? Buffer.from(toBinary(ReceiptSchema, rs[0])).toString("hex") : "";
  return rs.every((r) => Buffer.from(toBinary(ReceiptSchema, r)).toString("hex") === first);
}

export async function migrationState(kit: Kit, id: string): Promise<MigrationState> {
  const { migration } = await kit
    .asVirtual(MigrationService, kit.virtual[0])
    .getMigration({ migrationId: id });
  return migration?.state ?? MigrationState.UNSPECIFIED;
}

/** Registers a person at the kit's hub as owned by a virtual province. */
export async function ownedByVirtual(kit: Kit, code = kit.virtual[0]) {
  const who = identity();
  const cert = `${code}-KIT${crypto.randomUUID().slice(0, 8).toUpperCase()}`;
  const doses = [dose(code)];
  const res = await kit.asVirtual(RecordService, code).registerRecord({
    idempotencyKey: `kit-${cert}`,
    identity: who,
    certificateNumber: cert,
    doses,
  });
  return { identity: who, recordId: res.recordId, certificate: cert, doses };
}
