import { toBinary, toJson } from "@bufbuild/protobuf";
import { IdentitySchema } from "@evc-interop/gen/evc/common/v1/identity_pb";
import {
  type Directive,
  type Receipt,
  ReceiptSchema,
} from "@evc-interop/gen/evc/directive/v1/directive_pb";
import type { TransactionSql } from "postgres";
import type { Effect, RecStatus } from "../domain/decide.js";
import { type CertificateChange, type DoseRow, doseRow, type NewCertificate } from "./rows.js";
import type { ProvinceStore } from "./store.js";

/** A directive the decider said to apply, with its receipt and effects. */
export interface Applied {
  directive: Directive;
  receipt: Receipt;
  effects: Effect[];
}

/** A record's contents as an activation writes them (identity as JSON text). */
interface ActivatedRow {
  record_id: string;
  id_type: string;
  id_number: string;
  identity: string;
  hub_version: number;
}

/**
 * Writes the effects of a batch of applied directives (distinct records) with each one's inbox
 * row, which holds its receipt and moves its record's sequence on: one statement per kind of
 * change, pipelined in an order the foreign keys accept (records before their doses and
 * certificates).
 */
export async function writeEffects(
  tx: TransactionSql,
  store: ProvinceStore,
  applied: readonly Applied[],
): Promise<void> {
  const created: ActivatedRow[] = [];
  const activated: ActivatedRow[] = [];
  const statuses = new Map<string, RecStatus>();
  const doses: DoseRow[] = [];
  const certificates: CertificateChange[] = [];
  const issued: NewCertificate[] = [];
  for (const e of applied.flatMap((a) => a.effects)) {
    switch (e.kind) {
      case "activate-record":
        (e.known ? activated : created).push({
          record_id: e.recordId,
          id_type: String(e.identity.idType),
          id_number: e.identity.idNumber,
          identity: JSON.stringify(toJson(IdentitySchema, e.identity)),
          hub_version: e.hubVersion,
        });
        break;
      case "record-status":
        statuses.set(e.recordId, e.status);
        break;
      case "add-doses":
        doses.push(...e.doses.map((x) => doseRow(e.recordId, x)));
        break;
      case "certificate-status":
        certificates.push({
          number: e.number,
          status: e.status,
          cause: e.cause,
          version: e.hubVersion,
          reason: e.reason,
          owner: e.owner,
        });
        break;
      case "issue-certificate":
        issued.push({
          number: e.number,
          recordId: e.recordId,
          status: "NORMAL",
          owner: e.owner,
          hubVersion: e.hubVersion,
          cause: e.cause,
        });
        break;
    }
  }
  const writes: Promise<unknown>[] = [];
  if (created.length > 0) {
    writes.push(
      tx`INSERT INTO records (record_id, id_type, id_number, identity, status, hub_version)
        SELECT id, t, n, i::jsonb, 'ACTIVE', v FROM unnest(
          ${created.map((r) => r.record_id)}::text[], ${created.map((r) => r.id_type)}::text[],
          ${created.map((r) => r.id_number)}::text[], ${created.map((r) => r.identity)}::text[],
          ${created.map((r) => r.hub_version)}::bigint[]) AS u(id, t, n, i, v)`.execute(),
    );
  }
  if (activated.length > 0) {
    writes.push(
      tx`UPDATE records r SET status = 'ACTIVE', identity = u.i::jsonb, id_type = u.t, id_number = u.n
        FROM unnest(
          ${activated.map((r) => r.record_id)}::text[], ${activated.map((r) => r.id_type)}::text[],
          ${activated.map((r) => r.id_number)}::text[], ${activated.map((r) => r.identity)}::text[])
          AS u(id, t, n, i)
        WHERE r.record_id = u.id`.execute(),
    );
  }
  if (statuses.size > 0) {
    writes.push(
      tx`UPDATE records r SET status = u.s
        FROM unnest(${[...statuses.keys()]}::text[], ${[...statuses.values()]}::text[]) AS u(id, s)
        WHERE r.record_id = u.id`.execute(),
    );
  }
  if (doses.length > 0) writes.push(store.insertDoses(tx, doses).execute());
  if (certificates.length > 0) writes.push(store.changeCertificates(tx, certificates));
  if (issued.length > 0) writes.push(store.issueCertificates(tx, issued));
  if (applied.length > 0) {
    const inbox = applied.map(({ directive: d, receipt }) => ({
      directive_id: d.directiveId,
      record_id: d.recordId,
      action: d.action.case ?? "unknown",
      receipt: Buffer.from(toBinary(ReceiptSchema, receipt)).toString("base64"),
      sequence: Number(d.recordSequence),
      version: Number(d.streamVersion),
    }));
    writes.push(
      tx`
        WITH u AS (
          SELECT * FROM unnest(${inbox.map((r) => r.directive_id)}::uuid[], ${inbox.map((r) => r.record_id)}::text[],
            ${inbox.map((r) => r.action)}::text[], ${inbox.map((r) => r.receipt)}::text[],
            ${inbox.map((r) => r.sequence)}::bigint[], ${inbox.map((r) => r.version)}::bigint[])
            AS u(directive_id, record_id, action, receipt, seq, version)
        ), sequenced AS (
          UPDATE records r SET last_sequence = GREATEST(r.last_sequence, u.seq),
            hub_version = GREATEST(r.hub_version, u.version), updated_at = now()
          FROM u WHERE r.record_id = u.record_id
        )
        INSERT INTO inbox (directive_id, record_id, action, receipt)
        SELECT directive_id, record_id, action, decode(receipt, 'base64') FROM u`.execute(),
    );
  }
  await Promise.all(writes);
}
