import { toBinary, toJsonString } from "@bufbuild/protobuf";
import { IdentitySchema } from "@evc-interop/gen/evc/common/v1/identity_pb";
import {
  CertificateStatus,
  CloseReason,
  type Dose,
  DoseSchema,
  RecordStatus,
} from "@evc-interop/gen/evc/common/v1/record_pb";
import {
  type Directive,
  type Receipt,
  ReceiptOutcome,
  ReceiptRejection,
  ReceiptSchema,
} from "@evc-interop/gen/evc/directive/v1/directive_pb";
import { CaseFailure } from "../case.js";
import type { Kit } from "../kit.js";
import type { Expected, ModelRecord } from "./model.js";

/**
 * Compares what the province shows (receipts, the record and its certificate through the
 * province API) with the model; a difference is a CaseFailure naming the rule and what was seen.
 */

function expect(ok: boolean, expected: string, seen: string): asserts ok {
  if (!ok) throw new CaseFailure(expected, seen);
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const sameReceipt = (a: Receipt, b: Receipt) =>
  hex(toBinary(ReceiptSchema, a)) === hex(toBinary(ReceiptSchema, b));

/** Dose ids with every field of each dose, sorted: equal when the doses are. */
function doseKey(doses: Dose[]): string {
  return doses
    .map((d) => `${d.doseId}=${hex(toBinary(DoseSchema, d))}`)
    .sort()
    .join(",");
}

const doseIds = (doses: Dose[]) => doses.map((d) => d.doseId).join(", ") || "none";

/** What differs between the doses held and the doses expected: ids missing, extra, or altered. */
function doseDiff(want: Dose[], got: Dose[]): string {
  const byId = new Map(got.map((d) => [d.doseId, d]));
  const parts: string[] = [];
  for (const w of want) {
    const g = byId.get(w.doseId);
    if (!g) parts.push(`${w.doseId} missing`);
    else if (hex(toBinary(DoseSchema, g)) !== hex(toBinary(DoseSchema, w)))
      parts.push(`${w.doseId} altered: ${toJsonString(DoseSchema, g)}`);
    byId.delete(w.doseId);
  }
  for (const id of byId.keys()) parts.push(`${id} not sent`);
  if (got.length !== new Set(got.map((d) => d.doseId)).size) parts.push("a dose id twice");
  return parts.join("; ") || doseIds(got);
}
const show = (r: Receipt) => toJsonString(ReceiptSchema, r);

/** Every field of a receipt against the directive it answers and what the model expects. */
export function checkReceipt(r: Receipt, d: Directive, want: Expected, rec: ModelRecord): void {
  const name = `the receipt of directive ${d.directiveId} (sequence ${d.recordSequence})`;
  expect(
    r.directiveId === d.directiveId && r.attempt === d.attempt,
    `${name} naming its directive and attempt ${d.attempt}`,
    show(r),
  );
  expect(
    r.outcome === want.outcome && r.rejection === want.rejection,
    `${name}: ${ReceiptOutcome[want.outcome]}${want.rejection ? ` ${ReceiptRejection[want.rejection]}` : ""}`,
    show(r),
  );
  expect(r.appliedAt !== undefined, `${name} with applied_at`, show(r));
  if (!want.suspended) return;
  const s = r.result.case === "suspended" ? r.result.value : undefined;
  expect(
    s?.record?.recordId === rec.recordId &&
      s.record.identity !== undefined &&
      hex(toBinary(IdentitySchema, s.record.identity)) ===
        hex(toBinary(IdentitySchema, rec.identity)),
    `${name} carrying the record ${rec.recordId} and its holder's identity`,
    show(r),
  );
  expect(
    doseKey(s.record.doses) === doseKey(want.suspended.doses),
    `${name} carrying every dose of the record, each field as sent (I3): ${doseIds(want.suspended.doses)}`,
    doseDiff(want.suspended.doses, s.record.doses),
  );
  expect(
    s.suspendedCertificateNumber === want.suspended.certificate,
    `${name} naming the suspended certificate ${want.suspended.certificate}`,
    s.suspendedCertificateNumber || "none",
  );
}

/** Every copy of a directive answered with the same receipt as the first (I4). */
export function checkSame(first: Receipt, copies: Receipt[], d: Directive): void {
  for (const r of copies) {
    expect(
      sameReceipt(first, r),
      `every receipt of directive ${d.directiveId} identical to its first (I4): ${show(first)}`,
      show(r),
    );
  }
}

/** The record and its certificate, read back through the province API, as the model has them. */
export async function checkRecord(kit: Kit, rec: ModelRecord): Promise<void> {
  const view = await kit.api.getRecord({ recordId: rec.recordId });
  const status = RecordStatus[view.status] ?? String(view.status);
  expect(status === rec.status, `record ${rec.recordId} ${rec.status} at the province API`, status);
  expect(
    view.record !== undefined && doseKey(view.record.doses) === doseKey(rec.doses),
    `record ${rec.recordId} holding exactly the doses ${doseIds(rec.doses)}, each field as sent (I3)`,
    doseDiff(rec.doses, view.record?.doses ?? []),
  );
  const { certificate } = await kit.api.getCertificateStatus({
    certificateNumber: rec.certificate,
  });
  const cert = CertificateStatus[certificate?.status ?? 0] ?? "?";
  expect(
    cert === rec.certificateStatus && certificate?.recordId === rec.recordId,
    `certificate ${rec.certificate} of record ${rec.recordId} ${rec.certificateStatus}`,
    `${cert} (record "${certificate?.recordId ?? ""}")`,
  );
  expect(
    certificate.provinceCode === kit.config.province.code &&
      certificate.revocationReason === rec.revocationReason,
    `certificate ${rec.certificate} issued by ${kit.config.province.code}, revocation reason ${CloseReason[rec.revocationReason]}`,
    `issued by ${certificate.provinceCode || "nobody"}, reason ${CloseReason[certificate.revocationReason]}`,
  );
  const at = certificate.statusChangedAt;
  const changedAt = at ? at.seconds * 1_000_000_000n + BigInt(at.nanos) : -1n;
  const before = rec.seen;
  if (before) {
    const moved = rec.statusChanges > before.changes;
    expect(
      moved ? changedAt > before.changedAt : changedAt === before.changedAt,
      `status_changed_at of ${rec.certificate} ${moved ? "later than before its status changed" : "unchanged while its status is"}`,
      `${changedAt} ns, before ${before.changedAt} ns`,
    );
  }
  rec.seen = { changedAt, changes: rec.statusChanges };
}

/** No receipt for the directive arrives within `ms`. */
export async function checkNoReceipt(
  kit: Kit,
  d: Directive,
  ms: number,
  rule: string,
): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
  const got = kit.receipts(d.directiveId);
  expect(got.length === 0, rule, got[0] ? show(got[0]) : "");
}

/** The first receipt for `d`, which must arrive. */
export async function receiptOf(kit: Kit, d: Directive, count = 1): Promise<Receipt[]> {
  const rs = await kit.waitReceipts(d.directiveId, count, 10_000);
  expect(
    rs.length >= count,
    `${count === 1 ? "a receipt" : `${count} receipts`} for directive ${d.directiveId} (${d.action.case ?? "?"}, sequence ${d.recordSequence})`,
    `${rs.length}`,
  );
  return rs;
}
