import type { PendingQuery, Row, Sql, TransactionSql } from "postgres";
import { contentsDigest, hasContentsDigest } from "../domain/contents-digest.js";
import type { PersonState } from "../domain/types.js";
import { type Columns, unnestRows } from "./unnest.js";

/**
 * The snapshot projection: rows of `records`, `certificates` and `migrations` derived from a
 * person's state. The same function serves the live path (rows changed by one command) and the
 * rebuild from the log (every row), so a rebuild reproduces the live snapshot exactly (I5).
 */
export interface ProjectionRows {
  records: Record<string, unknown>[];
  certificates: Record<string, unknown>[];
  migrations: Record<string, unknown>[];
}

export function projectionRows(
  personKey: string,
  state: PersonState,
  changed: (version: number) => boolean = () => true,
  time: (iso: string) => unknown = toDate,
): ProjectionRows {
  const records = Object.values(state.records);
  const open = state.openMigrationId ? state.migrations[state.openMigrationId] : undefined;
  /** While a record is migrating out, its certificate is held for the target (the source was told so). */
  const ownerOf = (recordId: string): string | undefined => {
    const record = state.records[recordId];
    if (record?.status === "MIGRATED_OUT" && open?.recordId === recordId) return open.target;
    return record?.owner;
  };
  const changedRecords = new Set(records.filter((r) => changed(r.version)).map((r) => r.recordId));
  return {
    records: records
      .filter((r) => changedRecords.has(r.recordId))
      .map((r) => ({
        record_id: r.recordId,
        person_key: personKey,
        owner_province: r.owner,
        status: r.status,
        certificate_number: r.certificateNumber,
        version: r.version,
        position: r.position,
      })),
    certificates: Object.values(state.certificates)
      .filter((c) => changed(c.version) || changedRecords.has(c.recordId))
      .map((c) => {
        const record = state.records[c.recordId];
        return {
          certificate_number: c.number,
          record_id: c.recordId,
          person_key: personKey,
          province: c.province,
          owner_province: ownerOf(c.recordId) ?? c.province,
          status: c.status,
          record_status: record?.status ?? "ACTIVE",
          revocation_reason: c.revocationReason ?? null,
          issued_at: time(c.issuedAt),
          status_changed_at: time(c.statusChangedAt),
          version: c.version,
          position: c.position,
          contents_digest:
            hasContentsDigest(record, c.number) && state.identity
              ? contentsDigest(state.identity.idNumber, record.doses)
              : "",
        };
      })
      // NORMAL last, so the one-NORMAL-per-person index sees the old one leave NORMAL first.
      .sort((a, b) => Number(a.status === "NORMAL") - Number(b.status === "NORMAL")),
    migrations: Object.values(state.migrations)
      .filter((m) => changed(m.version))
      .map((m) => ({
        migration_id: m.migrationId,
        person_key: personKey,
        record_id: m.recordId,
        source_province: m.source,
        target_province: m.target,
        state: m.state,
        attempt: m.attempt,
        requested_at: time(m.requestedAt),
        updated_at: time(m.updatedAt),
        deadline: time(m.deadline),
        source_certificate_number: m.sourceCertificateNumber,
        target_certificate_number: m.targetCertificateNumber ?? null,
        end_reason: m.endReason ?? null,
      })),
  };
}

function toDate(iso: string): Date {
  return new Date(iso);
}

/**
 * A state's timestamp as COPY text: the hub writes them as Date.toISOString does, which
 * PostgreSQL reads as the same instant; anything else goes through Date as the live path does.
 */
export function isoText(iso: string): string {
  return ISO_UTC.test(iso) ? iso : new Date(iso).toISOString();
}

const ISO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?Z$/;

const RECORD_COLUMNS: Columns = {
  record_id: "text",
  person_key: "text",
  owner_province: "text",
  status: "text",
  certificate_number: "text",
  version: "bigint",
  position: "bigint",
};
const CERTIFICATE_COLUMNS: Columns = {
  certificate_number: "text",
  record_id: "text",
  person_key: "text",
  province: "text",
  owner_province: "text",
  status: "text",
  record_status: "text",
  revocation_reason: "text",
  issued_at: "timestamptz",
  status_changed_at: "timestamptz",
  version: "bigint",
  position: "bigint",
  contents_digest: "text",
};
const MIGRATION_COLUMNS: Columns = {
  migration_id: "uuid",
  person_key: "text",
  record_id: "text",
  source_province: "text",
  target_province: "text",
  state: "text",
  attempt: "int",
  requested_at: "timestamptz",
  updated_at: "timestamptz",
  deadline: "timestamptz",
  source_certificate_number: "text",
  target_certificate_number: "text",
  end_reason: "text",
};

/**
 * The upserts of projection rows, not yet sent: the caller awaits them together so they are
 * pipelined on the transaction's connection (in order: certificates leaving NORMAL first).
 */
export function projectionQueries(
  tx: Sql | TransactionSql,
  rows: ProjectionRows,
): PendingQuery<Row[]>[] {
  const queries: PendingQuery<Row[]>[] = [];
  if (rows.records.length > 0) {
    queries.push(tx`INSERT INTO records ${unnestRows(tx, RECORD_COLUMNS, rows.records)}
      ON CONFLICT (record_id) DO UPDATE SET owner_province = EXCLUDED.owner_province,
        status = EXCLUDED.status, certificate_number = EXCLUDED.certificate_number,
        version = EXCLUDED.version, position = EXCLUDED.position`);
  }
  // One statement, rows in order: PostgreSQL checks a non-deferrable unique index row by row,
  // so a person's old certificate leaves NORMAL before the new one arrives. person_key is set
  // so that a write onto another person's row is refused (trigger certificates_keep_person).
  if (rows.certificates.length > 0) {
    queries.push(tx`INSERT INTO certificates ${unnestRows(tx, CERTIFICATE_COLUMNS, rows.certificates)}
      ON CONFLICT (certificate_number) DO UPDATE SET person_key = EXCLUDED.person_key,
        owner_province = EXCLUDED.owner_province,
        status = EXCLUDED.status, record_status = EXCLUDED.record_status,
        revocation_reason = EXCLUDED.revocation_reason,
        status_changed_at = EXCLUDED.status_changed_at,
        version = EXCLUDED.version, position = EXCLUDED.position,
        contents_digest = EXCLUDED.contents_digest`);
  }
  if (rows.migrations.length > 0) {
    queries.push(tx`INSERT INTO migrations ${unnestRows(tx, MIGRATION_COLUMNS, rows.migrations)}
      ON CONFLICT (migration_id) DO UPDATE SET state = EXCLUDED.state, attempt = EXCLUDED.attempt,
        updated_at = EXCLUDED.updated_at, deadline = EXCLUDED.deadline,
        target_certificate_number = EXCLUDED.target_certificate_number,
        end_reason = EXCLUDED.end_reason`);
  }
  return queries;
}
