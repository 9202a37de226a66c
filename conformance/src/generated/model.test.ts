import { create } from "@bufbuild/protobuf";
import { CloseReason, DoseSchema } from "@evc-interop/gen/evc/common/v1/record_pb";
import { ReceiptOutcome, ReceiptRejection } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import { syntheticIdentity } from "@evc-interop/runtime";
import { describe, expect, it } from "vitest";
import { after, allowed, type ModelRecord, step } from "./model.js";

const dose = (id: string) => create(DoseSchema, { doseId: id, vaccineCode: "MMR", doseNumber: 1 });

function record(): ModelRecord {
  return {
    recordId: "r1",
    identity: syntheticIdentity("Model Child"),
    status: "ACTIVE",
    certificate: "110000-ABCD1234",
    certificateStatus: "NORMAL",
    revocationReason: CloseReason.UNSPECIFIED,
    statusChanges: 0,
    doses: [dose("a")],
    issued: [],
    answered: new Map(),
  };
}

describe("the model of a correct province", () => {
  it("suspends an active record: the receipt carries every dose and the certificate", () => {
    const r = record();
    step(r, { kind: "append", dose: dose("b") });
    const want = step(r, { kind: "suspend" });
    expect(want.outcome).toBe(ReceiptOutcome.APPLIED);
    expect(want.suspended?.doses.map((d) => d.doseId)).toEqual(["a", "b"]);
    expect(want.suspended?.certificate).toBe("110000-ABCD1234");
    expect([r.status, r.certificateStatus]).toEqual(["MIGRATED_OUT", "SUSPENDED"]);
  });

  it("appends a dose id once: the second time ALREADY_APPLIED and nothing added (I3)", () => {
    const r = record();
    expect(step(r, { kind: "append", dose: dose("a") }).outcome).toBe(
      ReceiptOutcome.ALREADY_APPLIED,
    );
    expect(r.doses).toHaveLength(1);
  });

  it("restores a suspended record with the doses it carries, keeping the ones held", () => {
    const r = record();
    step(r, { kind: "suspend" });
    expect(step(r, { kind: "restore", doses: [dose("a"), dose("c")] }).outcome).toBe(
      ReceiptOutcome.APPLIED,
    );
    expect(r.doses.map((d) => d.doseId)).toEqual(["a", "c"]);
    expect([r.status, r.certificateStatus]).toEqual(["ACTIVE", "NORMAL"]);
  });

  it("refuses to suspend a closed record: REJECTED, INVALID_STATE, nothing changes", () => {
    const r = record();
    step(r, { kind: "revoke", reason: CloseReason.DECEASED });
    const want = step(r, { kind: "suspend" });
    expect([want.outcome, want.rejection]).toEqual([
      ReceiptOutcome.REJECTED,
      ReceiptRejection.INVALID_STATE,
    ]);
    expect([r.status, r.certificateStatus]).toEqual(["CLOSED", "REVOKED"]);
    expect([r.revocationReason, r.statusChanges]).toEqual([CloseReason.DECEASED, 1]);
  });

  it("answers repeats of a state ALREADY_APPLIED and changes nothing", () => {
    const r = record();
    expect(step(r, { kind: "restore", doses: [dose("a")] }).outcome).toBe(
      ReceiptOutcome.ALREADY_APPLIED,
    );
    expect(step(r, { kind: "restore", doses: [dose("d")] }).outcome).toBe(ReceiptOutcome.APPLIED);
    step(r, { kind: "suspend" });
    const again = step(r, { kind: "suspend" });
    expect(again.outcome).toBe(ReceiptOutcome.ALREADY_APPLIED);
    expect(again.suspended?.doses.map((d) => d.doseId)).toEqual(["a", "d"]);
    step(r, { kind: "revoke", reason: CloseReason.DECEASED });
    expect(step(r, { kind: "revoke", reason: CloseReason.DELETED }).outcome).toBe(
      ReceiptOutcome.ALREADY_APPLIED,
    );
    expect([r.revocationReason, r.statusChanges]).toEqual([CloseReason.DECEASED, 2]);
  });

  it("never models a transition the contract leaves open", () => {
    expect(allowed("append", "CLOSED")).toBe(false);
    expect(allowed("append", "MIGRATED_OUT")).toBe(false);
    expect(allowed("restore", "CLOSED")).toBe(false);
    const closed = record();
    step(closed, { kind: "revoke", reason: CloseReason.DECEASED });
    expect(() => step(closed, { kind: "restore", doses: [] })).toThrow(/restore to CLOSED/);
    expect(after("suspend", "CLOSED")).toBe("CLOSED");
  });
});
