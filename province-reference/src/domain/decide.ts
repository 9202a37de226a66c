import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Identity } from "@evc-interop/gen/evc/common/v1/identity_pb";
import {
  CloseReason,
  type Dose,
  RecordContentsSchema,
} from "@evc-interop/gen/evc/common/v1/record_pb";
import {
  type Directive,
  type Receipt,
  ReceiptOutcome,
  ReceiptRejection,
  ReceiptSchema,
} from "@evc-interop/gen/evc/directive/v1/directive_pb";

/**
 * The reference province's decisions, as a pure function: a directive and what the province
 * holds of its record → the receipt and the effects to write (or: a duplicate, a gap to wait
 * for). Reading the state (store/read-state.ts) and writing the effects (store/write-effects.ts)
 * are elsewhere; this module does no I/O.
 */

export type CertStatus = "NORMAL" | "SUSPENDED" | "REVOKED";
export type RecStatus = "ACTIVE" | "MIGRATED_OUT" | "CLOSED";

/** The record as this province holds it. */
export interface RecordState {
  recordId: string;
  identity: Identity | undefined;
  status: RecStatus;
  /** Sequence of the last directive applied to it. */
  lastSequence: number;
}

/** A certificate of the record that is not revoked. */
export interface LiveCertificate {
  number: string;
  status: CertStatus;
}

/** What the province holds that a directive's decision depends on, read under the record's lock. */
export interface LocalState {
  /** This province's code. */
  code: string;
  /** The receipt stored when this directive id was applied before. */
  storedReceipt?: Receipt;
  record?: RecordState;
  /** The record's certificates that are not revoked, newest first. */
  live: LiveCertificate[];
  /** The record's doses, oldest first (needed by a suspension only). */
  doses: Dose[];
  /** Ids of the doses arriving with the directive that the record already holds. */
  knownDoseIds: ReadonlySet<string>;
}

/** What the decision needs from outside: the clock and new certificate numbers. */
export interface DecideContext {
  now: Date;
  newCertificateNumber: () => string;
}

export type Effect =
  /** A record this province does not hold yet, or holds from before (migrated out, now back). */
  | {
      kind: "activate-record";
      recordId: string;
      identity: Identity;
      hubVersion: number;
      known: boolean;
    }
  | { kind: "record-status"; recordId: string; status: RecStatus }
  /** Doses to add; a dose id the record already holds is left as it is. */
  | { kind: "add-doses"; recordId: string; doses: Dose[] }
  | {
      kind: "certificate-status";
      number: string;
      status: CertStatus;
      cause: string;
      hubVersion: number;
      reason: string | null;
      /** The new owner phones are pointed to; null keeps the current one. */
      owner: string | null;
    }
  | {
      kind: "issue-certificate";
      number: string;
      recordId: string;
      owner: string;
      hubVersion: number;
      cause: string;
    };

export type Decision =
  /** Applied before: the stored receipt, nothing changes (I4). */
  | { kind: "duplicate"; receipt: Receipt }
  /** An earlier directive of the record has not been applied: apply this one after it. */
  | { kind: "wait"; lastSequence: number }
  /** Apply: write the effects and the inbox row with the receipt, in one transaction. */
  | { kind: "apply"; receipt: Receipt; effects: Effect[] };

/** Why a directive must not be acted on here (I7), or undefined when it is this province's. */
export function notAddressedHere(d: Directive, code: string): string | undefined {
  return d.targetProvinceCode === code
    ? undefined
    : `addressed to ${d.targetProvinceCode}, this is ${code}`;
}

/**
 * Decides what a directive addressed to this province does. A directive seen before gets its
 * stored receipt; one whose predecessor in the record's sequence is missing waits (except the
 * activation that brings a record here, and one whose gap the hub has proven closed: every
 * directive before it answered or given up, `gapProven`).
 *
 * A directive at or below the record's last sequence that is not in the inbox is **stale**: a
 * later directive of the record has been applied, so this one was applied before (a restored
 * backup lost its inbox row) or passed over (the hub gave up on it and the province resynced
 * past it). Applied to the record as it is now it could undo what came after — an old
 * activation issuing a second NORMAL certificate (I2), an old restore or revoke reversing a
 * later migration — so it changes nothing but the doses it carries (a dose given is never
 * lost), and is answered from the state: ALREADY_APPLIED where the state is what it would have
 * made, REJECTED INVALID_STATE (naming the sequence) where it is not.
 */
export function decide(
  d: Directive,
  s: LocalState,
  ctx: DecideContext,
  gapProven = false,
): Decision {
  if (s.storedReceipt) return { kind: "duplicate", receipt: s.storedReceipt };
  const last = s.record?.lastSequence ?? 0;
  const seq = Number(d.recordSequence);
  const bringsRecord = s.record === undefined && d.action.case === "activateMigratedRecord";
  if (seq > last + 1 && !gapProven && !bringsRecord) {
    return { kind: "wait", lastSequence: last };
  }
  const effects: Effect[] = [];
  const stale =
    seq <= last
      ? `stale: this province's record is at directive sequence ${last}, past this one (${seq}): applied before (its receipt lost with a restored backup) or passed over; applying it now would undo what came after`
      : undefined;
  const receipt = act(d, s, ctx, effects, stale);
  return { kind: "apply", receipt, effects };
}

function act(
  d: Directive,
  s: LocalState,
  ctx: DecideContext,
  effects: Effect[],
  stale: string | undefined,
): Receipt {
  const { record: rec, live } = s;
  const version = Number(d.streamVersion);
  const base = { directiveId: d.directiveId, attempt: d.attempt, appliedAt: stamp(ctx.now) };
  const reject = (rejection: ReceiptRejection, detail: string) =>
    create(ReceiptSchema, { ...base, outcome: ReceiptOutcome.REJECTED, rejection, detail });
  const ok = (already: boolean, result?: Receipt["result"]) =>
    create(ReceiptSchema, {
      ...base,
      outcome: already ? ReceiptOutcome.ALREADY_APPLIED : ReceiptOutcome.APPLIED,
      ...(result ? { result } : {}),
    });
  /** Adds the doses the record does not hold yet; returns how many. */
  const addDoses = (recordId: string, doses: Dose[]): number => {
    const seen = new Set(s.knownDoseIds);
    const fresh = doses.filter((x) => !seen.has(x.doseId) && seen.add(x.doseId));
    if (fresh.length > 0) effects.push({ kind: "add-doses", recordId, doses: fresh });
    return fresh.length;
  };
  const a = d.action;
  switch (a.case) {
    case "suspendForMigration": {
      if (!rec) return reject(ReceiptRejection.RECORD_NOT_FOUND, `no record ${d.recordId}`);
      if (rec.status === "CLOSED")
        return reject(ReceiptRejection.INVALID_STATE, "record is closed");
      if (stale && rec.status === "ACTIVE") return reject(ReceiptRejection.INVALID_STATE, stale);
      // A copy brought back by reconciliation (a restored or lost database) before its
      // contents were repaired has no identity: its contents cannot go to the target (the hub
      // refuses them), so the migration is refused and compensated; the next pass completes
      // the copy, and the migration can be asked for again.
      if (!rec.identity)
        return reject(
          ReceiptRejection.INVALID_STATE,
          "this province's copy of the record is incomplete (no identity yet: restored, not yet repaired by reconciliation)",
        );
      const cert = live[0];
      const already = rec.status === "MIGRATED_OUT";
      if (!already) {
        effects.push({ kind: "record-status", recordId: rec.recordId, status: "MIGRATED_OUT" });
        if (cert?.status === "NORMAL") {
          effects.push({
            kind: "certificate-status",
            number: cert.number,
            status: "SUSPENDED",
            cause: `migration ${a.value.migrationId}`,
            hubVersion: version,
            reason: null,
            // The record moves to the target: phones asking here are told where it went.
            owner: a.value.targetProvinceCode,
          });
        }
      }
      return ok(already, {
        case: "suspended",
        value: {
          $typeName: "evc.directive.v1.SuspendResult",
          record: create(RecordContentsSchema, {
            recordId: rec.recordId,
            identity: rec.identity,
            doses: s.doses,
          }),
          suspendedCertificateNumber: cert?.number ?? "",
        },
      });
    }
    case "activateMigratedRecord": {
      const contents = a.value.record;
      const identity = contents?.identity;
      if (!contents || !identity)
        return reject(ReceiptRejection.MALFORMED, "activate carries no record contents");
      if (stale && rec) {
        if (contents.doses.length > 0) addDoses(rec.recordId, contents.doses);
        const mine = live[0]?.status === "NORMAL" && live[0].number.startsWith(s.code);
        if (!mine || rec.status !== "ACTIVE") return reject(ReceiptRejection.INVALID_STATE, stale);
        return ok(true, {
          case: "activated",
          value: {
            $typeName: "evc.directive.v1.ActivateResult",
            certificateNumber: live[0]?.number ?? "",
          },
        });
      }
      effects.push({
        kind: "activate-record",
        recordId: d.recordId,
        identity,
        hubVersion: version,
        known: rec !== undefined,
      });
      // Doses the record already holds here stay as they are; a dose id another record holds
      // is stored on this one all the same (a dose's id is scoped to its record).
      if (contents.doses.length > 0)
        effects.push({ kind: "add-doses", recordId: d.recordId, doses: contents.doses });
      const cert = live[0];
      const already = cert?.status === "NORMAL" && cert.number.startsWith(s.code);
      const number = already ? cert.number : ctx.newCertificateNumber();
      if (!already) {
        effects.push({
          kind: "issue-certificate",
          number,
          recordId: d.recordId,
          owner: s.code,
          hubVersion: version,
          cause: `migration ${a.value.migrationId} from ${a.value.sourceProvinceCode}`,
        });
      }
      return ok(already, {
        case: "activated",
        value: { $typeName: "evc.directive.v1.ActivateResult", certificateNumber: number },
      });
    }
    case "appendDose": {
      if (!rec) return reject(ReceiptRejection.RECORD_NOT_FOUND, `no record ${d.recordId}`);
      if (!a.value.dose) return reject(ReceiptRejection.MALFORMED, "append_dose carries no dose");
      return ok(addDoses(rec.recordId, [a.value.dose]) === 0);
    }
    case "restoreRecord": {
      if (!rec) return reject(ReceiptRejection.RECORD_NOT_FOUND, `no record ${d.recordId}`);
      const added = addDoses(rec.recordId, a.value.doses);
      // A stale restore adds its doses only: the record was suspended again after it.
      const suspended = rec.status === "MIGRATED_OUT" && !stale;
      if (suspended) {
        effects.push({ kind: "record-status", recordId: rec.recordId, status: "ACTIVE" });
        const cert = live.find((c) => c.status === "SUSPENDED");
        if (cert) {
          effects.push({
            kind: "certificate-status",
            number: cert.number,
            status: "NORMAL",
            cause: `compensation of ${a.value.migrationId}`,
            hubVersion: version,
            reason: null,
            owner: s.code,
          });
        }
      }
      return ok(!suspended && added === 0);
    }
    case "revokeCertificate": {
      if (!rec) return reject(ReceiptRejection.RECORD_NOT_FOUND, `no record ${d.recordId}`);
      const closed = rec.status === "CLOSED" && live.length === 0;
      // A stale revoke would close what came after it (the record activated here again).
      if (stale) return closed ? ok(true) : reject(ReceiptRejection.INVALID_STATE, stale);
      const reason = CloseReason[a.value.reason] ?? "UNSPECIFIED";
      for (const c of live) {
        effects.push({
          kind: "certificate-status",
          number: c.number,
          status: "REVOKED",
          cause: `revoked: ${reason}`,
          hubVersion: version,
          reason,
          owner: null,
        });
      }
      effects.push({ kind: "record-status", recordId: rec.recordId, status: "CLOSED" });
      return ok(closed);
    }
    default:
      return reject(
        ReceiptRejection.UNKNOWN_ACTION,
        "this province does not know the directive's action",
      );
  }
}

function stamp(now: Date): Timestamp {
  return timestampFromDate(now);
}
