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

/**
 * Records receipts on their directives. `noSaga`: no saga waits on these (dose appends,
 * restores), so a REJECTED one would otherwise go unseen — it gets the state REJECTED, listed
 * and alarmed, instead of ACKNOWLEDGED.
 */
async function markReceipts(
  tx: TransactionSql,
  receipts: Receipt[],
  disposition: Disposition,
  now: Date,
  noSaga = false,
): Promise<void> {
  if (receipts.length === 0) return;
  await tx`UPDATE directives d SET
      state = CASE WHEN ${noSaga} AND u.outcome = 'REJECTED' THEN 'REJECTED'
                   ELSE ${disposition === "REFUSED" ? "SUPERSEDED" : "ACKNOWLEDGED"} END,
      receipt = decode(u.receipt_b64, 'base64'),
      receipt_outcome = u.outcome,
      disposition = ${disposition},
      acknowledged_at = ${now}
    FROM unnest(${receipts.map((r) => r.directiveId)}::uuid[],
                ${receipts.map((r) => Buffer.from(toBinary(ReceiptSchema, r)).toString("base64"))}::text[],
                ${receipts.map((r) => ReceiptOutcome[r.outcome] ?? "UNSPECIFIED")}::text[])
      AS u(id, receipt_b64, outcome)
    WHERE d.directive_id = u.id AND d.receipt IS NULL`;
}

/** A receipt of a batch with the directive row it answers (already checked to be the caller's). */
export interface ReceiptOfBatch {
  receipt: Receipt;
  row: DirectiveRow;
  /** Its index in the request, to name it in errors. */
  index: number;
}

/**
 * Records a batch of receipts and moves their sagas on, in as few transactions as their
 * persons allow (see HubStore.executeAll). Idempotent by directive id: the first receipt wins
 * and later copies are DUPLICATE; a receipt for an attempt the saga no longer waits for is
 * REFUSED (fencing) and changes nothing but the directive's delivery record. Results come in
 * the order of the batch. A refusal of one receipt's command by the rules fails the call
 * (after the others were recorded), as it would have on its own.
 */
export async function recordReceipts(
  store: HubStore,
  batch: ReceiptOfBatch[],
  caller: string,
): Promise<ReceiptDisposition[]> {
  batch.forEach(({ receipt, index }) => {
    if (!OUTCOMES[receipt.outcome]) {
      throw new Refusal("invalid_argument", "INVALID_FIELD", "is unspecified", {
        field: `receipts[${index}].outcome`,
      });
    }
  });
  const results: ReceiptDisposition[] = new Array(batch.length);
  const simple: number[] = [];
  const saga: number[] = [];
  batch.forEach(({ row }, i) => {
    (row.migration_id && SAGA_ACTIONS.has(row.action) ? saga : simple).push(i);
  });

  if (simple.length > 0) {
    // Dose appends and restores: the receipt closes the directive, the saga does not wait on
    // it. One transaction for all of them.
    await store.sql.begin(async (tx) => {
      const disposition = await lockDispositions(
        tx,
        simple.map((i) => batch[i]?.receipt.directiveId ?? ""),
      );
      const marks: Receipt[] = [];
      for (const i of simple) {
        const { receipt, row } = batch[i] as ReceiptOfBatch;
        const early = fence(receipt, row, disposition.get(receipt.directiveId) ?? null);
        if (early) {
          results[i] = early;
          continue;
        }
        disposition.set(receipt.directiveId, "RECORDED");
        marks.push(receipt);
        results[i] = disposed(receipt, "RECORDED");
      }
      await markReceipts(tx, marks, "RECORDED", store.clock(), true);
    });
  }

  if (saga.length > 0) {
    const settled = await store.executeAll(
      saga.map((i) => {
        const { receipt, row } = batch[i] as ReceiptOfBatch;
        return {
          personKey: row.person_key,
          cmd: sagaCommand(receipt, row, caller),
          respond: () => disposed(receipt, "RECORDED"),
          tag: batch[i] as ReceiptOfBatch,
        };
      }),
      {
        // Copies of one receipt share a person, so they run in successive transactions and
        // the later ones find the disposition of the first.
        before: async (tx, tags) => {
          const disposition = await lockDispositions(
            tx,
            tags.map((t) => t.receipt.directiveId),
          );
          return tags.map((t) =>
            fence(t.receipt, t.row, disposition.get(t.receipt.directiveId) ?? null),
          );
        },
        after: (tx, tags) =>
          markReceipts(
            tx,
            tags.map((t) => t.receipt),
            "RECORDED",
            store.clock(),
          ),
      },
    );
    const stale: number[] = [];
    let failure: unknown;
    settled.forEach((s, n) => {
      const i = saga[n] as number;
      if (s.status === "fulfilled") results[i] = s.value.response;
      else if (s.reason instanceof Refusal && s.reason.reason === "STALE_ATTEMPT") {
        results[i] = disposed((batch[i] as ReceiptOfBatch).receipt, "REFUSED", s.reason.message);
        stale.push(i);
      } else failure ??= s.reason;
    });
    if (stale.length > 0) {
      // The saga moved past these attempts: keep the receipt as the directive's delivery
      // record, unless a copy was recorded meanwhile.
      await store.sql.begin(async (tx) => {
        const receipts = stale.map((i) => (batch[i] as ReceiptOfBatch).receipt);
        const disposition = await lockDispositions(
          tx,
          receipts.map((r) => r.directiveId),
        );
        // The first copy of a receipt is the one kept.
        const unmarked = receipts.filter(
          (r, n) =>
            !disposition.get(r.directiveId) &&
            receipts.findIndex((o) => o.directiveId === r.directiveId) === n,
        );
        await markReceipts(tx, unmarked, "REFUSED", store.clock());
      });
    }
    if (failure !== undefined) throw failure;
  }
  return results;
}

/** Locks the directives' rows (in one order) and returns their dispositions by id. */
async function lockDispositions(
  tx: TransactionSql,
  ids: string[],
): Promise<Map<string, string | null>> {
  const rows = await tx<{ directive_id: string; disposition: string | null }[]>`
    SELECT directive_id, disposition FROM directives
    WHERE directive_id = ANY(${ids}::uuid[]) ORDER BY directive_id FOR UPDATE`;
  return new Map(rows.map((r) => [r.directive_id, r.disposition]));
}

function disposed(receipt: Receipt, disposition: Disposition, detail = ""): ReceiptDisposition {
  return { directiveId: receipt.directiveId, disposition, detail };
}

/** DUPLICATE if the directive already has a disposition, REFUSED for another attempt. */
function fence(
  receipt: Receipt,
  row: DirectiveRow,
  current: string | null,
): ReceiptDisposition | undefined {
  if (current) return disposed(receipt, "DUPLICATE", `already ${current}`);
  if (receipt.attempt !== row.attempt) {
    return disposed(
      receipt,
      "REFUSED",
      `attempt ${receipt.attempt} does not match the directive's ${row.attempt}`,
    );
  }
  return undefined;
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
