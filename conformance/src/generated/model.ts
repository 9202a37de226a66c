import type { Identity } from "@evc-interop/gen/evc/common/v1/identity_pb";
import { CloseReason, type Dose } from "@evc-interop/gen/evc/common/v1/record_pb";
import {
  type Directive,
  type Receipt,
  ReceiptOutcome,
  ReceiptRejection,
} from "@evc-interop/gen/evc/directive/v1/directive_pb";

/**
 * The observable behaviour of a correct province, for one history of directives: what each
 * record, its certificate and each receipt must be after every step. Pure: no I/O. Only
 * transitions the contract defines exactly are modelled (the generator makes no others):
 *
 *   ACTIVE ──suspend──▶ MIGRATED_OUT ──restore──▶ ACTIVE
 *   ACTIVE, MIGRATED_OUT ──revoke──▶ CLOSED ──suspend──▶ REJECTED (INVALID_STATE)
 *   ACTIVE ──append──▶ ACTIVE (a dose id held already: ALREADY_APPLIED, nothing added)
 *   repeats answered ALREADY_APPLIED, nothing changed (the contract's ReceiptOutcome): a suspend
 *   of MIGRATED_OUT (its receipt still carries the contents), a restore of ACTIVE with no dose
 *   to add (with doses: APPLIED, the doses added), a revoke of CLOSED (the first reason stays).
 * Left out, as the contract does not say: an append to a record not ACTIVE, a restore of CLOSED.
 */

export type RecordStatus = "ACTIVE" | "MIGRATED_OUT" | "CLOSED";
export type CertificateStatus = "NORMAL" | "SUSPENDED" | "REVOKED";

export interface ModelRecord {
  recordId: string;
  identity: Identity;
  status: RecordStatus;
  /** The number the activation's receipt gave. */
  certificate: string;
  certificateStatus: CertificateStatus;
  /** Why it was revoked (UNSPECIFIED until it is). */
  revocationReason: CloseReason;
  /** How many times the certificate's status changed (its status_changed_at must follow). */
  statusChanges: number;
  /** status_changed_at (ns) and statusChanges when the province API was last read. */
  seen?: { changedAt: bigint; changes: number };
  /** Every dose the record holds, one per dose id. */
  doses: Dose[];
  /** The directives issued for the record, in record sequence; index i has sequence i + 1. */
  issued: Directive[];
  /** The first receipt of each directive answered. */
  answered: Map<string, Receipt>;
}

export interface Model {
  records: ModelRecord[];
}

/** An action the generator can send to a record, with what it carries. */
export type Action =
  | { kind: "suspend" }
  | { kind: "restore"; doses: Dose[] }
  | { kind: "revoke"; reason: CloseReason }
  | { kind: "append"; dose: Dose };

/** What a correct province answers to an action; the suspend result is checked in full. */
export interface Expected {
  outcome: ReceiptOutcome;
  rejection: ReceiptRejection;
  /** For a suspend that is applied: the contents the receipt must carry. */
  suspended?: { doses: Dose[]; certificate: string };
}

/** Whether the generator may send `kind` to a record in `status` (the modelled transitions). */
export function allowed(kind: Action["kind"], status: RecordStatus): boolean {
  switch (kind) {
    case "suspend":
    case "revoke":
      return true;
    case "restore":
      return status !== "CLOSED";
    case "append":
      return status === "ACTIVE";
  }
}

/** The actions the generator may send to a record in `status`. */
export function allowedKinds(status: RecordStatus): Action["kind"][] {
  return (["suspend", "restore", "revoke", "append"] as const).filter((k) => allowed(k, status));
}

/** The record's status after `kind` (for checking a pair of actions before sending it). */
export function after(kind: Action["kind"], status: RecordStatus): RecordStatus {
  switch (kind) {
    case "suspend":
      return status === "CLOSED" ? "CLOSED" : "MIGRATED_OUT";
    case "restore":
      return "ACTIVE";
    case "revoke":
      return "CLOSED";
    case "append":
      return status;
  }
}

const applied = (outcome = ReceiptOutcome.APPLIED): Expected => ({
  outcome,
  rejection: ReceiptRejection.UNSPECIFIED,
});

/** Adds the doses the record does not hold (by id); returns how many it added. */
function addDoses(r: ModelRecord, doses: Dose[]): number {
  let added = 0;
  for (const d of doses) {
    if (r.doses.some((x) => x.doseId === d.doseId)) continue;
    r.doses.push(d);
    added++;
  }
  return added;
}

/** Applies an action to the model's record and returns what the province must answer. */
export function step(r: ModelRecord, a: Action): Expected {
  if (!allowed(a.kind, r.status)) throw new Error(`the generator sent ${a.kind} to ${r.status}`);
  switch (a.kind) {
    case "suspend":
      if (r.status === "CLOSED") {
        return { outcome: ReceiptOutcome.REJECTED, rejection: ReceiptRejection.INVALID_STATE };
      }
      if (r.status === "ACTIVE") {
        r.status = "MIGRATED_OUT";
        r.certificateStatus = "SUSPENDED";
        r.statusChanges++;
        return { ...applied(), suspended: { doses: [...r.doses], certificate: r.certificate } };
      }
      return {
        ...applied(ReceiptOutcome.ALREADY_APPLIED),
        suspended: { doses: [...r.doses], certificate: r.certificate },
      };
    case "restore":
      if (r.status === "ACTIVE") {
        return applied(
          addDoses(r, a.doses) > 0 ? ReceiptOutcome.APPLIED : ReceiptOutcome.ALREADY_APPLIED,
        );
      }
      addDoses(r, a.doses);
      r.status = "ACTIVE";
      r.certificateStatus = "NORMAL";
      r.statusChanges++;
      return applied();
    case "revoke":
      if (r.status === "CLOSED") return applied(ReceiptOutcome.ALREADY_APPLIED);
      r.status = "CLOSED";
      r.certificateStatus = "REVOKED";
      r.revocationReason = a.reason;
      r.statusChanges++;
      return applied();
    case "append":
      return applied(
        addDoses(r, [a.dose]) === 1 ? ReceiptOutcome.APPLIED : ReceiptOutcome.ALREADY_APPLIED,
      );
  }
}

/** A short description of an action, for the reported history. */
export function describe(a: Action): string {
  switch (a.kind) {
    case "restore":
      return `restore(+${a.doses.length} doses)`;
    case "append":
      return `append(${a.dose.doseId})`;
    case "revoke":
      return `revoke(${CloseReason[a.reason]})`;
    default:
      return a.kind;
  }
}
