import { toBinary } from "@bufbuild/protobuf";
import {
  type Receipt,
  ReceiptOutcome,
  ReceiptSchema,
} from "@evc-interop/gen/evc/directive/v1/directive_pb";
import type { TransactionSql } from "postgres";
import { doseToJson } from "../domain/codec.js";
import { Refusal } from "../domain/errors.js";
import type { HubStore } from "./hub-store.js";

export type Disposition = "RECORDED" | "DUPLICATE" | "REFUSED";

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
    SELECT directive_id, province, person_key, migration_id, action, attempt, disposition
    FROM directives WHERE directive_id = ANY(${ids}::uuid[])`;
  return new Map(rows.map((r) => [r.directive_id, r]));
}

async function markReceipt(
  tx: TransactionSql,
  receipt: Receipt,
  disposition: Disposition,
  now: Date,
): Promise<void> {
  await tx`UPDATE directives SET
      state = ${disposition === "REFUSED" ? "SUPERSEDED" : "ACKNOWLEDGED"},
      receipt = ${toBinary(ReceiptSchema, receipt)},
      receipt_outcome = ${ReceiptOutcome[receipt.outcome] ?? "UNSPECIFIED"},
      disposition = ${disposition},
      acknowledged_at = ${now}
    WHERE directive_id = ${receipt.directiveId} AND receipt IS NULL`;
}

/**
 * Records one receipt (whose directive row the caller already checked belongs to the calling
 * province) and moves the saga on. Idempotent by directive id: the first receipt wins and
 * later copies are DUPLICATE; a receipt for an attempt the saga no longer waits for is REFUSED
 * (fencing) and changes nothing but the directive's delivery record.
 */
export async function recordReceipt(
  store: HubStore,
  row: DirectiveRow,
  receipt: Receipt,
  caller: string,
): Promise<ReceiptDisposition> {
  const result = (disposition: Disposition, detail = ""): ReceiptDisposition => ({
    directiveId: receipt.directiveId,
    disposition,
    detail,
  });
  const outcome = OUTCOMES[receipt.outcome];
  if (!outcome)
    throw new Refusal("invalid_argument", "INVALID_FIELD", "is unspecified", { field: "outcome" });

  const lockRow = async (tx: TransactionSql): Promise<ReceiptDisposition | undefined> => {
    const current = await tx<{ disposition: string | null }[]>`
      SELECT disposition FROM directives WHERE directive_id = ${receipt.directiveId} FOR UPDATE`;
    if (current[0]?.disposition) return result("DUPLICATE", `already ${current[0].disposition}`);
    if (receipt.attempt !== row.attempt) {
      return result(
        "REFUSED",
        `attempt ${receipt.attempt} does not match the directive's ${row.attempt}`,
      );
    }
    return undefined;
  };

  if (!row.migration_id || !SAGA_ACTIONS.has(row.action)) {
    // Dose appends and restores: the receipt closes the directive, the saga does not wait on it.
    return store.sql.begin(async (tx) => {
      const early = await lockRow(tx);
      if (early) return early;
      await markReceipt(tx, receipt, "RECORDED", store.clock());
      return result("RECORDED");
    });
  }

  const cmd = {
    kind: "receipt" as const,
    caller,
    migrationId: row.migration_id,
    directiveId: receipt.directiveId,
    attempt: receipt.attempt,
    outcome,
    detail: receipt.detail,
    ...(receipt.result.case === "suspended"
      ? { sourceDoses: (receipt.result.value.record?.doses ?? []).map(doseToJson) }
      : {}),
    ...(receipt.result.case === "activated"
      ? { certificateNumber: receipt.result.value.certificateNumber }
      : {}),
  };
  try {
    const { response } = await store.execute(row.person_key, cmd, () => result("RECORDED"), {
      before: lockRow,
      after: (tx) => markReceipt(tx, receipt, "RECORDED", store.clock()),
    });
    return response;
  } catch (err) {
    if (err instanceof Refusal && err.reason === "STALE_ATTEMPT") {
      const refused = result("REFUSED", err.message);
      await store.sql.begin(async (tx) => {
        if (!(await lockRow(tx))) await markReceipt(tx, receipt, "REFUSED", store.clock());
      });
      return refused;
    }
    throw err;
  }
}
