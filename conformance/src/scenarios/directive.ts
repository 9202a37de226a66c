import { toBinary } from "@bufbuild/protobuf";
import { CloseReason } from "@evc-interop/gen/evc/common/v1/record_pb";
import {
  DirectiveSchema,
  ReceiptOutcome,
  ReceiptRejection,
} from "@evc-interop/gen/evc/directive/v1/directive_pb";
import { generateSigningKey } from "@evc-interop/runtime";
import type { Scenario } from "../case.js";
import {
  activateDirective,
  activated,
  appendAction,
  codeOf,
  dose,
  expect,
  expectDoseCount,
  identity,
  next,
  noReceipt,
  receiptFor,
  sameReceipts,
  show,
  statusOf,
  suspendAction,
} from "./support.js";

/** Directive execution and receipts (suite directive, profile core). */
export const DIRECTIVE_SCENARIOS: Record<string, Scenario> = {
  async activate({ kit }) {
    const a = await activated(kit);
    const status = await statusOf(kit, a.certificate);
    expect(status === "NORMAL", "the new certificate NORMAL at the province API", status);
    await expectDoseCount(kit, a.recordId, 2, "the record with the 2 carried doses");
  },

  async suspend({ kit }) {
    const a = await activated(kit);
    const d = next(kit, a.directive, suspendAction(kit));
    await kit.deliver(d);
    const r = await receiptFor(kit, d);
    expect(r.outcome === ReceiptOutcome.APPLIED, "suspend answered APPLIED", show(r));
    const contents = r.result.case === "suspended" ? r.result.value : undefined;
    expect(
      contents?.record?.doses.length === 2,
      "the suspend receipt carrying the record's 2 doses",
      show(r),
    );
    expect(
      contents?.suspendedCertificateNumber === a.certificate,
      `suspended certificate ${a.certificate}`,
      show(r),
    );
    const s = await statusOf(kit, a.certificate);
    expect(s === "SUSPENDED", "the certificate SUSPENDED at the province API", s);
  },

  async "append-dose"({ kit }) {
    const a = await activated(kit);
    const extra = dose(kit.virtual[1], 3);
    const d = next(kit, a.directive, appendAction(extra));
    await kit.deliver(d);
    const r = await receiptFor(kit, d);
    expect(r.outcome === ReceiptOutcome.APPLIED, "append answered APPLIED", show(r));
    const rec = await kit.api.getRecord({ recordId: a.recordId });
    const ids = rec.record?.doses.map((x) => x.doseId) ?? [];
    expect(
      ids.includes(extra.doseId) && ids.length === 3,
      "the record with the appended dose (3 doses)",
      ids.join(","),
    );
    const s = await statusOf(kit, a.certificate);
    expect(s === "NORMAL", "the certificate still NORMAL", s);
  },

  async "append-dose-same-id"({ kit }) {
    const a = await activated(kit);
    const extra = dose(kit.virtual[1], 3);
    const d1 = next(kit, a.directive, appendAction(extra));
    const d2 = next(kit, d1, appendAction(extra));
    await kit.deliver(d1);
    await receiptFor(kit, d1);
    await kit.deliver(d2);
    const r2 = await receiptFor(kit, d2);
    expect(
      r2.outcome === ReceiptOutcome.ALREADY_APPLIED,
      "a second directive with the same dose id answered ALREADY_APPLIED",
      show(r2),
    );
    const rec = await kit.api.getRecord({ recordId: a.recordId });
    const count = rec.record?.doses.filter((x) => x.doseId === extra.doseId).length;
    expect(count === 1, "the dose exactly once in the record (I3)", `${count} times`);
  },

  async "append-dose-unknown-record"({ kit }) {
    const d = kit.directive({ action: appendAction(dose(kit.virtual[1])) });
    await kit.deliver(d);
    const r = await receiptFor(kit, d);
    expect(
      r.outcome === ReceiptOutcome.REJECTED && r.rejection === ReceiptRejection.RECORD_NOT_FOUND,
      "REJECTED with RECEIPT_REJECTION_RECORD_NOT_FOUND",
      show(r),
    );
  },

  async restore({ kit }) {
    const a = await activated(kit);
    const s = next(kit, a.directive, suspendAction(kit));
    await kit.deliver(s);
    await receiptFor(kit, s);
    const late = dose(kit.virtual[1], 4);
    const d = next(kit, s, {
      case: "restoreRecord",
      value: {
        $typeName: "evc.directive.v1.RestoreRecord",
        migrationId: crypto.randomUUID(),
        doses: [late],
      },
    });
    await kit.deliver(d);
    const r = await receiptFor(kit, d);
    expect(r.outcome === ReceiptOutcome.APPLIED, "restore answered APPLIED", show(r));
    const st = await statusOf(kit, a.certificate);
    expect(st === "NORMAL", "the certificate NORMAL again", st);
    const rec = await kit.api.getRecord({ recordId: a.recordId });
    expect(
      rec.record?.doses.some((x) => x.doseId === late.doseId) === true,
      "the dose carried by the restore kept (I3)",
      `${rec.record?.doses.length} doses`,
    );
  },

  async revoke({ kit }) {
    const a = await activated(kit);
    const d = next(kit, a.directive, {
      case: "revokeCertificate",
      value: {
        $typeName: "evc.directive.v1.RevokeCertificate",
        reason: CloseReason.DECEASED,
        mergedIntoRecordId: "",
      },
    });
    await kit.deliver(d);
    const r = await receiptFor(kit, d);
    expect(r.outcome === ReceiptOutcome.APPLIED, "revoke answered APPLIED", show(r));
    const st = await statusOf(kit, a.certificate);
    expect(st === "REVOKED", "the certificate REVOKED", st);
  },

  async duplicate({ kit, tc }) {
    const times = tc.deliveries || 3;
    const who = identity();
    const recordId = crypto.randomUUID();
    const d = activateDirective(kit, recordId, who, [dose(kit.virtual[0])]);
    await kit.deliver(d, times);
    const rs = await kit.waitReceipts(d.directiveId, times, 8000);
    expect(rs.length >= 1, "a receipt", "none");
    expect(
      sameReceipts(rs),
      `every receipt for the ${times} deliveries identical (I4)`,
      rs.map(show).join(" | "),
    );
    expect(rs[0]?.outcome === ReceiptOutcome.APPLIED, "APPLIED", show(rs[0]));
    const byId = await kit.api.getCertificateStatusByIdentity({ identity: who });
    const cert = rs[0]?.result.case === "activated" ? rs[0].result.value.certificateNumber : "";
    expect(
      byId.certificate?.certificateNumber === cert,
      `one certificate for the person, ${cert}`,
      byId.certificate?.certificateNumber ?? "none",
    );
  },

  async redelivery({ kit }) {
    const a = await activated(kit, 1);
    const d = next(kit, a.directive, appendAction(dose(kit.virtual[1])));
    await kit.deliver(d);
    const first = await receiptFor(kit, d);
    await new Promise((r) => setTimeout(r, 1500));
    await kit.deliver(d);
    const rs = await kit.waitReceipts(d.directiveId, 2, 8000);
    expect(
      rs.length === 2,
      "the stored receipt sent again for the redelivered directive",
      `${rs.length} receipt(s)`,
    );
    expect(
      sameReceipts([first, ...rs]),
      "the same receipt as the first time",
      rs.map(show).join(" | "),
    );
    await expectDoseCount(kit, a.recordId, 2, "the dose appended once");
  },

  async "receipts-retried"({ kit }) {
    const a = await activated(kit, 1);
    const extra = dose(kit.virtual[1], 2);
    const d = next(kit, a.directive, appendAction(extra));
    kit.outage.start();
    await kit.deliver(d);
    const refused = await kit.outage.over();
    expect(
      refused > 0,
      "the province to send the receipt while the hub was unreachable (within 10 s of the directive)",
      "no SubmitReceipts call",
    );
    const r = await receiptFor(kit, d, 15_000);
    expect(
      r.outcome === ReceiptOutcome.APPLIED,
      "the receipt sent again once the hub answers, APPLIED",
      show(r),
    );
    await expectDoseCount(kit, a.recordId, 2, "the dose appended once");
  },

  async reorder({ kit }) {
    const a = await activated(kit, 1);
    const later = dose(kit.virtual[1], 2);
    const append = next(kit, a.directive, appendAction(later));
    const suspend = next(kit, append, suspendAction(kit));
    // The bus hands the province the later directive first.
    await kit.deliver(suspend);
    await new Promise((r) => setTimeout(r, 300));
    await kit.deliver(append);
    const rs = await receiptFor(kit, suspend);
    const contents =
      rs.result.case === "suspended"
        ? (rs.result.value.record?.doses.map((x) => x.doseId) ?? [])
        : [];
    expect(
      contents.includes(later.doseId),
      "per-record order kept: the suspend (sequence 3) applied after the append (sequence 2), its contents include that dose",
      show(rs),
    );
  },

  async "wrong-province"({ kit }) {
    const who = identity();
    const recordId = crypto.randomUUID();
    const foreign = activateDirective(kit, recordId, who, [], {
      targetProvinceCode: kit.virtual[1],
    });
    await kit.deliver(foreign); // on this province's subject, addressed to another (I7)
    await noReceipt(kit, foreign, 1500);
    const code = await codeOf(kit.api.getRecord({ recordId }));
    expect(
      code === "NotFound",
      "no record created from another province's directive (I7)",
      code === "ok" ? "the record exists" : code,
    );
    await activated(kit, 0); // and the province is still working
  },

  async forged({ kit }) {
    const who = identity();
    const recordId = crypto.randomUUID();
    const d = activateDirective(kit, recordId, who, []);
    const bytes = toBinary(DirectiveSchema, d);
    const code = kit.config.province.code;
    // Anyone who can publish on the bus: no signature, a key the hub does not own, and the
    // hub's real signature over other bytes (an altered directive).
    kit.trace(`→ forged copies of directive ${d.directiveId}`);
    await kit.publish(bytes, code, `${d.directiveId}/unsigned`, null);
    await kit.publish(
      bytes,
      code,
      `${d.directiveId}/foreign`,
      generateSigningKey("intruder").sign(bytes),
    );
    const altered = toBinary(DirectiveSchema, { ...d, recordId: crypto.randomUUID() });
    await kit.publish(altered, code, `${d.directiveId}/altered`, kit.directiveSigner.sign(bytes));
    await noReceipt(kit, d, 1500);
    const found = await codeOf(kit.api.getRecord({ recordId }));
    expect(
      found === "NotFound",
      "no record created from a directive the hub did not sign",
      found === "ok" ? "the record exists" : found,
    );
    await activated(kit, 0); // a genuinely signed directive is still applied
  },

  async malformed({ kit }) {
    await kit.publish(new Uint8Array([0xff, 0xff, 0xff, 0x01, 0x02]));
    const bad = kit.directive({
      directiveId: "not-a-uuid",
      action: appendAction(dose(kit.virtual[1])),
    });
    await kit.deliver(bad);
    await noReceipt(kit, bad, 1000);
    await activated(kit, 0); // the province survived and goes on
  },

  async "unknown-action"({ kit }) {
    const d = kit.directive({ action: { case: undefined } });
    // Field 99, length-delimited: an action from a newer contract this province cannot know.
    const bytes = new Uint8Array([...toBinary(DirectiveSchema, d), 0x9a, 0x06, 0x02, 0x08, 0x01]);
    kit.trace(`→ directive with unknown action field 99 ${d.directiveId}`);
    await kit.publish(bytes, kit.config.province.code, d.directiveId);
    const r = await receiptFor(kit, d);
    expect(
      r.outcome === ReceiptOutcome.REJECTED && r.rejection === ReceiptRejection.UNKNOWN_ACTION,
      "REJECTED with RECEIPT_REJECTION_UNKNOWN_ACTION",
      show(r),
    );
  },
};
