import type { TransactionSql } from "postgres";

/**
 * What recording a receipt writes on its directive, and the fencing that decides whether it is
 * recorded at all. The store applies both in the transaction of the command the receipt moves
 * on (if any), so a receipt is recorded exactly when its effect is.
 */

export type Disposition = "RECORDED" | "DUPLICATE" | "REFUSED";

export interface ReceiptVerdict {
  disposition: Disposition;
  detail: string;
}

/** A receipt to record on its directive. */
export interface ReceiptToMark {
  directiveId: string;
  /** The attempt the receipt answers. */
  attempt: number;
  /** The attempt of the directive as the hub sent it. */
  directiveAttempt: number;
  /** The receipt as received (binary protobuf). */
  bytes: Uint8Array;
  outcome: "APPLIED" | "ALREADY_APPLIED" | "REJECTED";
  /**
   * No saga waits on this directive (dose appends, restores): a REJECTED receipt would go
   * unseen, so its directive gets the state REJECTED (listed and alarmed) instead of ACKNOWLEDGED.
   */
  noSaga: boolean;
}

/** A receipt with what recording it came to. */
export interface Mark {
  receipt: ReceiptToMark;
  disposition: "RECORDED" | "REFUSED";
}

/** Locks the directives' rows (in one order) and returns their dispositions by id. */
export async function lockDispositions(
  tx: TransactionSql,
  ids: string[],
): Promise<Map<string, string | null>> {
  if (ids.length === 0) return new Map();
  const rows = await tx<{ directive_id: string; disposition: string | null }[]>`
    SELECT directive_id, disposition FROM directives
    WHERE directive_id = ANY(${ids}::uuid[]) ORDER BY directive_id FOR UPDATE`;
  return new Map(rows.map((r) => [r.directive_id, r.disposition]));
}

/**
 * DUPLICATE if the directive already has a disposition (the first receipt wins), REFUSED for an
 * attempt other than the directive's (nothing is written); undefined: record it.
 */
export function fence(r: ReceiptToMark, current: string | null): ReceiptVerdict | undefined {
  if (current) return { disposition: "DUPLICATE", detail: `already ${current}` };
  if (r.attempt !== r.directiveAttempt) {
    return {
      disposition: "REFUSED",
      detail: `attempt ${r.attempt} does not match the directive's ${r.directiveAttempt}`,
    };
  }
  return undefined;
}

/**
 * Records receipts on their directives: RECORDED ones acknowledge it (REJECTED where no saga
 * waits on it), REFUSED ones (the saga moved past their attempt) supersede it; either way the
 * receipt is kept as the directive's delivery record.
 */
export function markReceipts(tx: TransactionSql, marks: readonly Mark[], now: Date) {
  return tx`UPDATE directives d SET
      state = CASE WHEN u.disposition = 'REFUSED' THEN 'SUPERSEDED'
                   WHEN u.no_saga = 'yes' AND u.outcome = 'REJECTED' THEN 'REJECTED'
                   ELSE 'ACKNOWLEDGED' END,
      receipt = decode(u.receipt_b64, 'base64'),
      receipt_outcome = u.outcome,
      disposition = u.disposition,
      acknowledged_at = ${now}
    FROM unnest(${marks.map((m) => m.receipt.directiveId)}::uuid[],
                ${marks.map((m) => Buffer.from(m.receipt.bytes).toString("base64"))}::text[],
                ${marks.map((m) => m.receipt.outcome)}::text[],
                ${marks.map((m) => m.disposition)}::text[],
                ${marks.map((m) => (m.receipt.noSaga ? "yes" : "no"))}::text[])
      AS u(id, receipt_b64, outcome, disposition, no_saga)
    WHERE d.directive_id = u.id AND d.receipt IS NULL`;
}
