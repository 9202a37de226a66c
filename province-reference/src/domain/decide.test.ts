import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { type Identity, IdentitySchema, IdType } from "@evc-interop/gen/evc/common/v1/identity_pb";
import {
  CloseReason,
  type Dose,
  DoseSchema,
  RecordContentsSchema,
} from "@evc-interop/gen/evc/common/v1/record_pb";
import {
  type Directive,
  DirectiveSchema,
  type Receipt,
  ReceiptOutcome,
  ReceiptRejection,
  ReceiptSchema,
} from "@evc-interop/gen/evc/directive/v1/directive_pb";
import { describe, expect, it } from "vitest";
import {
  type DecideContext,
  type Decision,
  decide,
  type Effect,
  type LocalState,
  notAddressedHere,
  type RecordState,
} from "./decide.js";

// Given/when/then: given what the province holds, when a directive arrives, then the decision.

const HERE = "510000";
const RECORD = "rec-1";
const identity: Identity = create(IdentitySchema, {
  idType: IdType.RESIDENT_ID,
  idNumber: "11010520200115002X",
  name: "Test Child",
});
const ctx: DecideContext = {
  now: new Date("2026-11-29T10:00:00Z"),
  newCertificateNumber: () => `${HERE}-NEW`,
};

function dose(id: string): Dose {
  return create(DoseSchema, { doseId: id, vaccineCode: "MMR", administeredProvinceCode: "440000" });
}

function directive(
  seq: number,
  action: MessageInitShape<typeof DirectiveSchema>["action"],
  over: { targetProvinceCode?: string; attempt?: number } = {},
): Directive {
  return create(DirectiveSchema, {
    directiveId: `dir-${seq}`,
    targetProvinceCode: HERE,
    recordId: RECORD,
    recordSequence: BigInt(seq),
    attempt: 1,
    streamVersion: 40n + BigInt(seq),
    action,
    ...over,
  });
}

function given(
  over: Omit<Partial<LocalState>, "record"> & { record?: Partial<RecordState> } = {},
): LocalState {
  const { record, ...rest } = over;
  return {
    code: HERE,
    live: [],
    doses: [],
    knownDoseIds: new Set(),
    ...rest,
    ...(record
      ? {
          record: {
            recordId: RECORD,
            identity,
            status: "ACTIVE",
            lastSequence: 1,
            ...record,
          },
        }
      : {}),
  };
}

function applied(d: Decision): { receipt: Receipt; effects: Effect[] } {
  if (d.kind !== "apply") throw new Error(`expected apply, got ${d.kind}`);
  return d;
}

const suspend = directive(2, {
  case: "suspendForMigration",
  value: { migrationId: "m-1", targetProvinceCode: "110000" },
});

describe("the province decider", () => {
  describe("suspendForMigration", () => {
    it("given an active record with a NORMAL certificate: marks it MIGRATED_OUT, suspends the certificate pointing phones to the target, returns the contents", () => {
      const { receipt, effects } = applied(
        decide(
          suspend,
          given({
            record: {},
            live: [{ number: `${HERE}-A`, status: "NORMAL" }],
            doses: [dose("d1")],
          }),
          ctx,
        ),
      );
      expect(receipt.outcome).toBe(ReceiptOutcome.APPLIED);
      expect(receipt.result.case).toBe("suspended");
      if (receipt.result.case !== "suspended") return;
      expect(receipt.result.value.suspendedCertificateNumber).toBe(`${HERE}-A`);
      expect(receipt.result.value.record?.doses.map((x) => x.doseId)).toEqual(["d1"]);
      expect(receipt.result.value.record?.identity?.idNumber).toBe(identity.idNumber);
      expect(effects).toEqual([
        { kind: "record-status", recordId: RECORD, status: "MIGRATED_OUT" },
        expect.objectContaining({
          kind: "certificate-status",
          number: `${HERE}-A`,
          status: "SUSPENDED",
          owner: "110000",
          hubVersion: 42,
        }),
      ]);
    });

    it("given the record already MIGRATED_OUT: ALREADY_APPLIED, same contents, no effect", () => {
      const { receipt, effects } = applied(
        decide(
          suspend,
          given({
            record: { status: "MIGRATED_OUT" },
            live: [{ number: `${HERE}-A`, status: "SUSPENDED" }],
          }),
          ctx,
        ),
      );
      expect(receipt.outcome).toBe(ReceiptOutcome.ALREADY_APPLIED);
      expect(receipt.result.case).toBe("suspended");
      expect(effects).toEqual([]);
    });

    it("given no record (and no gap: sequence 1): REJECTED RECORD_NOT_FOUND; given a closed one: INVALID_STATE", () => {
      const first = directive(1, suspend.action);
      const missing = applied(decide(first, given(), ctx));
      expect(missing.receipt.outcome).toBe(ReceiptOutcome.REJECTED);
      expect(missing.receipt.rejection).toBe(ReceiptRejection.RECORD_NOT_FOUND);
      expect(missing.effects).toEqual([]);
      const closed = applied(decide(suspend, given({ record: { status: "CLOSED" } }), ctx));
      expect(closed.receipt.rejection).toBe(ReceiptRejection.INVALID_STATE);
      expect(closed.effects).toEqual([]);
    });

    it("given a copy without identity (brought back by reconciliation, contents not repaired yet), active or suspended: REJECTED INVALID_STATE, nothing written, never contents without an identity", () => {
      for (const status of ["ACTIVE", "MIGRATED_OUT"] as const) {
        const { receipt, effects } = applied(
          decide(
            suspend,
            given({
              record: { status, identity: undefined },
              live: [{ number: `${HERE}-A`, status: "NORMAL" }],
              doses: [dose("d1")],
            }),
            ctx,
          ),
        );
        expect(receipt.outcome).toBe(ReceiptOutcome.REJECTED);
        expect(receipt.rejection).toBe(ReceiptRejection.INVALID_STATE);
        expect(receipt.detail).toContain("incomplete");
        expect(receipt.result.case).toBeUndefined();
        expect(effects).toEqual([]);
      }
    });
  });

  describe("activateMigratedRecord", () => {
    const activate = directive(1, {
      case: "activateMigratedRecord",
      value: {
        migrationId: "m-1",
        sourceProvinceCode: "110000",
        record: create(RecordContentsSchema, { recordId: RECORD, identity, doses: [dose("d1")] }),
      },
    });

    it("given no record: creates it with its doses and issues a NORMAL certificate, whose number the receipt carries", () => {
      const { receipt, effects } = applied(decide(activate, given(), ctx));
      expect(receipt.outcome).toBe(ReceiptOutcome.APPLIED);
      expect(receipt.result).toEqual(
        expect.objectContaining({
          case: "activated",
          value: expect.objectContaining({ certificateNumber: `${HERE}-NEW` }),
        }),
      );
      expect(effects.map((e) => e.kind)).toEqual([
        "activate-record",
        "add-doses",
        "issue-certificate",
      ]);
      expect(effects[0]).toEqual(expect.objectContaining({ known: false, hubVersion: 41 }));
      expect(effects[2]).toEqual(
        expect.objectContaining({ number: `${HERE}-NEW`, owner: HERE, recordId: RECORD }),
      );
    });

    it("given the record back from an earlier migration out: reactivates it and issues a new certificate", () => {
      const { effects } = applied(
        decide(
          { ...activate, recordSequence: 6n },
          given({
            record: { status: "MIGRATED_OUT", lastSequence: 5 },
            live: [{ number: `${HERE}-OLD`, status: "SUSPENDED" }],
          }),
          ctx,
        ),
      );
      expect(effects[0]).toEqual(expect.objectContaining({ kind: "activate-record", known: true }));
      expect(effects).toContainEqual(
        expect.objectContaining({ kind: "issue-certificate", number: `${HERE}-NEW` }),
      );
    });

    it("given the record active here with its NORMAL certificate: ALREADY_APPLIED with the same number, no new certificate", () => {
      const { receipt, effects } = applied(
        decide(
          activate,
          given({ record: {}, live: [{ number: `${HERE}-A`, status: "NORMAL" }] }),
          ctx,
        ),
      );
      expect(receipt.outcome).toBe(ReceiptOutcome.ALREADY_APPLIED);
      expect(receipt.result.case === "activated" && receipt.result.value.certificateNumber).toBe(
        `${HERE}-A`,
      );
      expect(effects.some((e) => e.kind === "issue-certificate")).toBe(false);
    });

    it("without record contents: REJECTED MALFORMED, nothing written", () => {
      const bare = directive(1, {
        case: "activateMigratedRecord",
        value: { migrationId: "m-1", sourceProvinceCode: "110000" },
      });
      const { receipt, effects } = applied(decide(bare, given(), ctx));
      expect(receipt.rejection).toBe(ReceiptRejection.MALFORMED);
      expect(effects).toEqual([]);
    });
  });

  describe("appendDose", () => {
    const append = directive(2, { case: "appendDose", value: { dose: dose("d9") } });

    it("given a record without the dose: APPLIED, the dose added", () => {
      const { receipt, effects } = applied(decide(append, given({ record: {} }), ctx));
      expect(receipt.outcome).toBe(ReceiptOutcome.APPLIED);
      expect(effects).toEqual([
        { kind: "add-doses", recordId: RECORD, doses: [expect.objectContaining({ doseId: "d9" })] },
      ]);
    });

    it("given the record already holds the dose id: ALREADY_APPLIED, nothing added (I3: never doubled)", () => {
      const { receipt, effects } = applied(
        decide(append, given({ record: {}, knownDoseIds: new Set(["d9"]) }), ctx),
      );
      expect(receipt.outcome).toBe(ReceiptOutcome.ALREADY_APPLIED);
      expect(effects).toEqual([]);
    });

    it("given a MIGRATED_OUT record: the dose is still added (it follows the record)", () => {
      const { effects } = applied(
        decide(append, given({ record: { status: "MIGRATED_OUT" } }), ctx),
      );
      expect(effects.map((e) => e.kind)).toEqual(["add-doses"]);
    });

    it("given no record (sequence 1): REJECTED RECORD_NOT_FOUND; without a dose: MALFORMED", () => {
      expect(applied(decide(directive(1, append.action), given(), ctx)).receipt.rejection).toBe(
        ReceiptRejection.RECORD_NOT_FOUND,
      );
      const empty = directive(2, { case: "appendDose", value: {} });
      expect(applied(decide(empty, given({ record: {} }), ctx)).receipt.rejection).toBe(
        ReceiptRejection.MALFORMED,
      );
    });
  });

  describe("restoreRecord (compensation)", () => {
    const restore = directive(3, {
      case: "restoreRecord",
      value: { migrationId: "m-1", doses: [dose("d1"), dose("d2"), dose("d2")] },
    });

    it("given the record suspended here: ACTIVE again, its SUSPENDED certificate NORMAL, doses it lacks added once", () => {
      const { receipt, effects } = applied(
        decide(
          restore,
          given({
            record: { status: "MIGRATED_OUT", lastSequence: 2 },
            live: [{ number: `${HERE}-A`, status: "SUSPENDED" }],
            knownDoseIds: new Set(["d1"]),
          }),
          ctx,
        ),
      );
      expect(receipt.outcome).toBe(ReceiptOutcome.APPLIED);
      expect(effects).toEqual([
        { kind: "add-doses", recordId: RECORD, doses: [expect.objectContaining({ doseId: "d2" })] },
        { kind: "record-status", recordId: RECORD, status: "ACTIVE" },
        expect.objectContaining({
          kind: "certificate-status",
          number: `${HERE}-A`,
          status: "NORMAL",
          owner: HERE,
        }),
      ]);
    });

    it("given the record active with every dose: ALREADY_APPLIED, no effect", () => {
      const { receipt, effects } = applied(
        decide(
          restore,
          given({ record: { lastSequence: 2 }, knownDoseIds: new Set(["d1", "d2"]) }),
          ctx,
        ),
      );
      expect(receipt.outcome).toBe(ReceiptOutcome.ALREADY_APPLIED);
      expect(effects).toEqual([]);
    });
  });

  describe("revokeCertificate", () => {
    const revoke = directive(2, {
      case: "revokeCertificate",
      value: { reason: CloseReason.DECEASED },
    });

    it("given live certificates: each REVOKED with the reason, the record CLOSED", () => {
      const { receipt, effects } = applied(
        decide(
          revoke,
          given({
            record: {},
            live: [
              { number: `${HERE}-A`, status: "NORMAL" },
              { number: `${HERE}-B`, status: "SUSPENDED" },
            ],
          }),
          ctx,
        ),
      );
      expect(receipt.outcome).toBe(ReceiptOutcome.APPLIED);
      expect(effects).toEqual([
        expect.objectContaining({ number: `${HERE}-A`, status: "REVOKED", reason: "DECEASED" }),
        expect.objectContaining({ number: `${HERE}-B`, status: "REVOKED", reason: "DECEASED" }),
        { kind: "record-status", recordId: RECORD, status: "CLOSED" },
      ]);
    });

    it("given the record closed with nothing live: ALREADY_APPLIED", () => {
      const { receipt } = applied(decide(revoke, given({ record: { status: "CLOSED" } }), ctx));
      expect(receipt.outcome).toBe(ReceiptOutcome.ALREADY_APPLIED);
    });
  });

  it("an action this province does not know: REJECTED UNKNOWN_ACTION, nothing written", () => {
    const unknown = directive(2, { case: undefined });
    const { receipt, effects } = applied(decide(unknown, given({ record: {} }), ctx));
    expect(receipt.rejection).toBe(ReceiptRejection.UNKNOWN_ACTION);
    expect(effects).toEqual([]);
  });

  it("a duplicate (its id applied before): the stored receipt, byte for byte, and nothing else (I4)", () => {
    const stored = create(ReceiptSchema, {
      directiveId: suspend.directiveId,
      outcome: ReceiptOutcome.APPLIED,
      detail: "first time",
    });
    const d = decide(
      suspend,
      given({ record: { status: "MIGRATED_OUT" }, storedReceipt: stored }),
      ctx,
    );
    expect(d).toEqual({ kind: "duplicate", receipt: stored });
  });

  it("a gap (the record's previous directive not applied yet): wait, naming the last applied", () => {
    const later = directive(4, { case: "appendDose", value: { dose: dose("d4") } });
    expect(decide(later, given({ record: { lastSequence: 2 } }), ctx)).toEqual({
      kind: "wait",
      lastSequence: 2,
    });
    // A record not here yet: anything but its activation waits for it.
    expect(decide(later, given(), ctx)).toEqual({ kind: "wait", lastSequence: 0 });
  });

  it("an activation of a record not here yet never waits, whatever its sequence", () => {
    const activate = directive(7, {
      case: "activateMigratedRecord",
      value: {
        migrationId: "m-2",
        sourceProvinceCode: "110000",
        record: create(RecordContentsSchema, { recordId: RECORD, identity }),
      },
    });
    expect(decide(activate, given(), ctx).kind).toBe("apply");
  });

  describe("a stale directive (at or below the last applied, a new id: applied before and lost, or passed over)", () => {
    const old = (action: MessageInitShape<typeof DirectiveSchema>["action"]) =>
      directive(2, action);
    const movedOn = (status: "ACTIVE" | "MIGRATED_OUT", cert: "NORMAL" | "SUSPENDED") =>
      given({
        record: { status, lastSequence: 5 },
        live: [{ number: `${HERE}-B`, status: cert }],
        knownDoseIds: new Set(["d1"]),
      });
    const expectStaleRefusal = (receipt: Receipt) => {
      expect(receipt.outcome).toBe(ReceiptOutcome.REJECTED);
      expect(receipt.rejection).toBe(ReceiptRejection.INVALID_STATE);
      expect(receipt.detail).toContain("stale");
      expect(receipt.detail).toContain("sequence 5");
    };

    it("a suspension of a record MIGRATED_OUT since: ALREADY_APPLIED with its contents, nothing written", () => {
      const stale = old({
        case: "suspendForMigration",
        value: { migrationId: "m-0", targetProvinceCode: "110000" },
      });
      const { receipt, effects } = applied(
        decide(stale, given({ record: { status: "MIGRATED_OUT", lastSequence: 3 } }), ctx),
      );
      expect(receipt.outcome).toBe(ReceiptOutcome.ALREADY_APPLIED);
      expect(receipt.result.case).toBe("suspended");
      expect(effects).toEqual([]);
    });

    it("a suspension of a record ACTIVE again since (restored after it): REJECTED INVALID_STATE, the certificate stays NORMAL", () => {
      const stale = old({
        case: "suspendForMigration",
        value: { migrationId: "m-0", targetProvinceCode: "110000" },
      });
      const { receipt, effects } = applied(decide(stale, movedOn("ACTIVE", "NORMAL"), ctx));
      expectStaleRefusal(receipt);
      expect(effects).toEqual([]);
    });

    it("an old activation of a record that moved away since: REJECTED INVALID_STATE, no second certificate; only a dose it carries that the record lacks is added", () => {
      const stale = old({
        case: "activateMigratedRecord",
        value: {
          migrationId: "m-0",
          sourceProvinceCode: "110000",
          record: create(RecordContentsSchema, {
            recordId: RECORD,
            identity,
            doses: [dose("d1"), dose("d9")],
          }),
        },
      });
      const { receipt, effects } = applied(
        decide(stale, movedOn("MIGRATED_OUT", "SUSPENDED"), ctx),
      );
      expectStaleRefusal(receipt);
      expect(effects).toEqual([{ kind: "add-doses", recordId: RECORD, doses: [dose("d9")] }]);
    });

    it("an old activation of a record active here with its NORMAL certificate: ALREADY_APPLIED with that number", () => {
      const stale = old({
        case: "activateMigratedRecord",
        value: {
          migrationId: "m-0",
          sourceProvinceCode: "110000",
          record: create(RecordContentsSchema, { recordId: RECORD, identity }),
        },
      });
      const { receipt, effects } = applied(decide(stale, movedOn("ACTIVE", "NORMAL"), ctx));
      expect(receipt.outcome).toBe(ReceiptOutcome.ALREADY_APPLIED);
      expect(receipt.result).toEqual(
        expect.objectContaining({
          case: "activated",
          value: expect.objectContaining({ certificateNumber: `${HERE}-B` }),
        }),
      );
      expect(effects).toEqual([]);
    });

    it("an old restore of a record suspended again since: its doses only, the record stays MIGRATED_OUT", () => {
      const stale = old({
        case: "restoreRecord",
        value: { migrationId: "m-0", doses: [dose("d9")] },
      });
      const { receipt, effects } = applied(
        decide(stale, movedOn("MIGRATED_OUT", "SUSPENDED"), ctx),
      );
      expect(receipt.outcome).toBe(ReceiptOutcome.APPLIED);
      expect(effects).toEqual([{ kind: "add-doses", recordId: RECORD, doses: [dose("d9")] }]);
    });

    it("an old revoke of a record activated here again since: REJECTED INVALID_STATE, the new certificate stays NORMAL", () => {
      const stale = old({
        case: "revokeCertificate",
        value: { reason: CloseReason.MIGRATION_ABORTED },
      });
      const { receipt, effects } = applied(decide(stale, movedOn("ACTIVE", "NORMAL"), ctx));
      expectStaleRefusal(receipt);
      expect(effects).toEqual([]);
      const closed = applied(
        decide(stale, given({ record: { status: "CLOSED", lastSequence: 5 } }), ctx),
      );
      expect(closed.receipt.outcome).toBe(ReceiptOutcome.ALREADY_APPLIED);
      expect(closed.effects).toEqual([]);
    });
  });

  it("a gap the hub proved closed: applied over it (a revoke of a record not held here: RECORD_NOT_FOUND; a dose: added)", () => {
    const revoke = directive(2, {
      case: "revokeCertificate",
      value: { reason: CloseReason.MIGRATION_ABORTED },
    });
    expect(decide(revoke, given(), ctx).kind).toBe("wait");
    const refused = applied(decide(revoke, given(), ctx, true));
    expect(refused.receipt.rejection).toBe(ReceiptRejection.RECORD_NOT_FOUND);
    expect(refused.effects).toEqual([]);
    const later = directive(4, { case: "appendDose", value: { dose: dose("d4") } });
    const { receipt, effects } = applied(
      decide(later, given({ record: { lastSequence: 2 } }), ctx, true),
    );
    expect(receipt.outcome).toBe(ReceiptOutcome.APPLIED);
    expect(effects).toEqual([{ kind: "add-doses", recordId: RECORD, doses: [dose("d4")] }]);
  });

  it("a directive for another province: refused, naming both (I7)", () => {
    const foreign = directive(
      2,
      { case: "appendDose", value: { dose: dose("d1") } },
      {
        targetProvinceCode: "110000",
      },
    );
    expect(notAddressedHere(foreign, HERE)).toBe(`addressed to 110000, this is ${HERE}`);
    expect(notAddressedHere(suspend, HERE)).toBeUndefined();
  });

  it("the receipt names the directive and attempt, stamped with the context's clock", () => {
    const { receipt } = applied(
      decide(directive(2, { case: undefined }, { attempt: 3 }), given({ record: {} }), ctx),
    );
    expect(receipt.directiveId).toBe("dir-2");
    expect(receipt.attempt).toBe(3);
    expect(Number(receipt.appliedAt?.seconds)).toBe(ctx.now.getTime() / 1000);
  });
});
