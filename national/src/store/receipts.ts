import { toBinary } from "@bufbuild/protobuf";
import {
  type Receipt,
  ReceiptOutcome,
  ReceiptSchema,
} from "@evc-interop/gen/evc/directive/v1/directive_pb";
import { doseToJson } from "../domain/codec.js";
import { Refusal } from "../domain/errors.js";
import type { HubStore } from "./hub-store.js";
import type { Disposition } from "./receipt-marks.js";

export type { Disposition };

export interface ReceiptDisposition {
  directiveId: string;
  disposition: Disposition;
  detail: string;
}

interface DirectiveRow {
  directive_id: string;
  province: string;
  person_key: string;
  migration_id: string | null;
  action: string;
  attempt: number;
  disposition: string | null;
  /** When the directive was committed, in epoch milliseconds. */
  created_ms: number;
}

const SAGA_ACTIONS = new Set([
  "suspendForMigration",
  "activateMigratedRecord",
  "revokeCertificate",
]);

const OUTCOMES: Record<number, "APPLIED" | "ALREADY_APPLIED" | "REJECTED"> = {
  [ReceiptOutcome.APPLIED]: "APPLIED",
  [ReceiptOutcome.ALREADY_APPLIED]: "ALREADY_APPLIED",
  [ReceiptOutcome.REJECTED]: "REJECTED",
};

/** Loads the directive rows a batch of receipts refers to. */
export async function directiveRows(
  store: HubStore,
  ids: string[],
): Promise<Map<string, DirectiveRow>> {
  const rows = await store.sql<DirectiveRow[]>`
    SELECT directive_id, province, person_key, migration_id, action, attempt, disposition,
      (extract(epoch FROM created_at) * 1000)::float8 AS created_ms
    FROM directives WHERE directive_id = ANY(${ids}::uuid[])`;
  return new Map(rows.map((r) => [r.directive_id, r]));
}

/** A receipt of a batch with the directive row it answers (already checked to be the caller's). */
export interface ReceiptOfBatch {
  receipt: Receipt;
  row: DirectiveRow;
  /** Its index in the request, to name it in errors. */
  index: number;
}

/**
 * Records a batch of receipts and moves their sagas on, each receipt in the transaction of the
 * command it causes, in as few transactions as their persons and directives allow (see
 * HubStore.recordReceipts). Idempotent by directive id: the first receipt wins and later copies
 * are DUPLICATE; a receipt for an attempt the saga no longer waits for is REFUSED (fencing) and
 * changes nothing but the directive's delivery record. Results come in the order of the batch.
 * A refusal of one receipt's command by the rules fails the call (after the others were
 * recorded), as it would have on its own.
 */
export async function recordReceipts(
  store: HubStore,
  batch: ReceiptOfBatch[],
  caller: string,
): Promise<ReceiptDisposition[]> {
  const items = batch.map(({ receipt, row, index }) => {
    const outcome = OUTCOMES[receipt.outcome];
    if (!outcome) {
      throw new Refusal("invalid_argument", "INVALID_FIELD", "is unspecified", {
        field: `receipts[${index}].outcome`,
      });
    }
    // Dose appends and restores: the receipt closes the directive, no saga waits on it.
    const saga = row.migration_id !== null && SAGA_ACTIONS.has(row.action);
    return {
      personKey: row.person_key,
      receipt: {
        directiveId: receipt.directiveId,
        attempt: receipt.attempt,
        directiveAttempt: row.attempt,
        bytes: toBinary(ReceiptSchema, receipt),
        outcome,
        noSaga: !saga,
      },
      ...(saga ? { cmd: sagaCommand(receipt, row, caller) } : {}),
    };
  });
  const settled = await store.recordReceipts(items);
  let failure: unknown;
  // A copy of a refused receipt in the same batch is refused as the first was (a copy of one
  // recorded earlier, or recorded in this batch, is DUPLICATE).
  const refusedHere = new Map<string, ReceiptDisposition>();
  const results = settled.map((s, i): ReceiptDisposition => {
    const directiveId = items[i]?.receipt.directiveId ?? "";
    if (s.status === "rejected") {
      failure ??= s.reason;
      return { directiveId, disposition: "REFUSED", detail: "" };
    }
    const first = refusedHere.get(directiveId);
    if (first && s.value.disposition === "DUPLICATE") return first;
    const result = { directiveId, ...s.value };
    if (result.disposition === "REFUSED") refusedHere.set(directiveId, result);
    return result;
  });
  if (failure !== undefined) throw failure;
  return results;
}

function sagaCommand(receipt: Receipt, row: DirectiveRow, caller: string) {
  return {
    kind: "receipt" as const,
    caller,
    migrationId: row.migration_id ?? "",
    directiveId: receipt.directiveId,
    attempt: receipt.attempt,
    outcome: OUTCOMES[receipt.outcome] ?? "REJECTED",
    detail: receipt.detail,
    ...(receipt.result.case === "suspended"
      ? { sourceDoses: (receipt.result.value.record?.doses ?? []).map(doseToJson) }
      : {}),
    ...(receipt.result.case === "activated"
      ? { certificateNumber: receipt.result.value.certificateNumber }
      : {}),
  };
}
