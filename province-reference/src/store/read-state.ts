import { fromBinary, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { IdentitySchema } from "@evc-interop/gen/evc/common/v1/identity_pb";
import { DoseSchema } from "@evc-interop/gen/evc/common/v1/record_pb";
import { type Directive, ReceiptSchema } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import type { TransactionSql } from "postgres";
import type { LocalState } from "../domain/decide.js";
import type { CertificateRow, RecordRow } from "./rows.js";

/** The ids of the doses a directive brings to a record that already exists (appended, restored). */
function arrivingDoseIds(d: Directive): string[] {
  if (d.action.case === "appendDose" && d.action.value.dose) return [d.action.value.dose.doseId];
  if (d.action.case === "restoreRecord") return d.action.value.doses.map((x) => x.doseId);
  return [];
}

function groupBy<T>(rows: readonly T[], key: (row: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const row of rows) {
    const k = key(row);
    const list = out.get(k);
    if (list) list.push(row);
    else out.set(k, [row]);
  }
  return out;
}

/**
 * Reads, for directives of distinct records, what the decider needs (domain/decide.ts), in one
 * round of statements: first the records' locks, taken in one order by every transaction (several
 * processes may consume for one province), so a copy delivered concurrently waits and then finds
 * the first copy's inbox row (I4). The statements go out pipelined; the server runs them in order.
 */
export async function readStates(
  tx: TransactionSql,
  code: string,
  ds: readonly Directive[],
): Promise<LocalState[]> {
  const recordIds = ds.map((d) => d.recordId);
  const suspending = ds.filter((d) => d.action.case === "suspendForMigration");
  // A dose's identity is scoped to its record: (record, dose) pairs.
  const arriving = ds.flatMap((d) =>
    arrivingDoseIds(d).map((doseId) => ({ recordId: d.recordId, doseId })),
  );
  const [, seenRows, recRows, certRows, doseRows, knownDoses] = await Promise.all([
    tx`SELECT pg_advisory_xact_lock(hashtext('record:' || id))
      FROM (SELECT id FROM unnest(${recordIds}::text[]) AS id ORDER BY id OFFSET 0) AS ordered`,
    tx<{ directive_id: string; receipt: Uint8Array }[]>`
      SELECT directive_id, receipt FROM inbox
      WHERE directive_id = ANY(${ds.map((d) => d.directiveId)}::uuid[])`,
    tx<RecordRow[]>`SELECT * FROM records WHERE record_id = ANY(${recordIds}::text[]) FOR UPDATE`,
    tx<CertificateRow[]>`
      SELECT * FROM certificates WHERE record_id = ANY(${recordIds}::text[]) AND status <> 'REVOKED'
      ORDER BY issued_at DESC`,
    suspending.length === 0
      ? Promise.resolve([])
      : tx<{ record_id: string; dose: JsonValue }[]>`
          SELECT record_id, dose FROM doses
          WHERE record_id = ANY(${suspending.map((d) => d.recordId)}::text[])
          ORDER BY administered_at, dose_id`,
    arriving.length === 0
      ? Promise.resolve([])
      : tx<{ record_id: string; dose_id: string }[]>`
          SELECT d.record_id, d.dose_id FROM doses d
          JOIN unnest(${arriving.map((a) => a.recordId)}::text[], ${arriving.map((a) => a.doseId)}::text[])
            AS u(record_id, dose_id) ON d.record_id = u.record_id AND d.dose_id = u.dose_id`,
  ]);
  const seen = new Map(seenRows.map((r) => [r.directive_id, r.receipt]));
  const records = new Map(recRows.map((r) => [r.record_id, r]));
  const live = groupBy(certRows, (c) => c.record_id);
  const doses = groupBy(doseRows, (r) => r.record_id);
  const known = groupBy(knownDoses, (r) => r.record_id);
  return ds.map((d): LocalState => {
    const stored = seen.get(d.directiveId);
    const rec = records.get(d.recordId);
    return {
      code,
      ...(stored ? { storedReceipt: fromBinary(ReceiptSchema, stored) } : {}),
      ...(rec
        ? {
            record: {
              recordId: rec.record_id,
              identity: rec.identity ? fromJson(IdentitySchema, rec.identity) : undefined,
              status: rec.status,
              lastSequence: Number(rec.last_sequence),
            },
          }
        : {}),
      live: (live.get(d.recordId) ?? []).map((c) => ({
        number: c.certificate_number,
        status: c.status,
      })),
      doses: (doses.get(d.recordId) ?? []).map((r) => fromJson(DoseSchema, r.dose)),
      knownDoseIds: new Set((known.get(d.recordId) ?? []).map((r) => r.dose_id)),
    };
  });
}
