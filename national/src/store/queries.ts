import type { JsonObject } from "@bufbuild/protobuf";
import type { ReservedSql, Sql } from "postgres";

/**
 * The hub's read queries, in one place: they read the projections (`records`, `certificates`,
 * `migrations`, `directives`) and the event log, never a person's state row by row. RPC
 * handlers call these and hold no SQL of their own.
 */

export interface MigrationRow {
  migration_id: string;
  record_id: string;
  source_province: string;
  target_province: string;
  state: string;
  attempt: number;
  requested_at: Date;
  updated_at: Date;
  deadline: Date;
  source_certificate_number: string;
  target_certificate_number: string | null;
  end_reason: string | null;
}

export interface MigrationFilter {
  /** Only migrations this province is source or target of (null: all). */
  province: string | null;
  state: string | null;
  /** Only migrations unchanged since this time (null: any). */
  updatedBefore: Date | null;
  /** Keyset: migrations requested before (at, id), newest first. */
  before: { at: Date; id: string };
  limit: number;
}

export interface DirectiveRow {
  directive_id: string;
  payload: Uint8Array;
  state: string;
  publish_count: number;
  last_published_at: Date | null;
  receipt_outcome: string | null;
  receipt: Uint8Array | null;
  created_at: Date;
}

/** Where a directive belongs: its province, person, record, place in the record's sequence. */
export interface DirectiveKeys {
  province: string;
  person_key: string;
  record_id: string;
  record_sequence: number;
  migration_id: string | null;
  action: string;
}

export interface DirectiveFilter {
  province: string | null;
  states: string[];
  /** Only directives written before this time (null: any). */
  createdBefore: Date | null;
  /** Keyset: directives created after (at, id), oldest first. */
  after: { at: Date; id: string };
  limit: number;
  /** Only these records' directives (empty: any). */
  recordIds?: readonly string[];
}

export interface EventRow {
  position: number;
  event_id: string;
  stream_id: string;
  stream_version: number;
  type: string;
  data: JsonObject;
  recorded_at: Date;
  hash: Buffer | null;
  /** The person's data key (null once erased): what unseals the identity in `data`. */
  dek: Buffer | null;
}

export interface SnapshotRow {
  certificate_number: string;
  record_id: string;
  owner_province: string;
  status: "NORMAL" | "SUSPENDED" | "REVOKED";
  record_status: "ACTIVE" | "MIGRATED_OUT" | "CLOSED";
  version: number;
  position: number;
  contents_digest: string;
  /** The record's directive sequence the province has answered without a gap (0: none). */
  record_sequence: number;
}

export class HubQueries {
  constructor(private readonly sql: Sql) {}

  async personOfMigration(migrationId: string): Promise<string | undefined> {
    const [row] = await this.sql<{ person_key: string }[]>`
      SELECT person_key FROM migrations WHERE migration_id = ${migrationId}`;
    return row?.person_key;
  }

  async personOfCertificate(number: string): Promise<string | undefined> {
    const [row] = await this.sql<{ person_key: string }[]>`
      SELECT person_key FROM certificates WHERE certificate_number = ${number}`;
    return row?.person_key;
  }

  async personOfRecord(recordId: string): Promise<string | undefined> {
    const [row] = await this.sql<{ person_key: string }[]>`
      SELECT person_key FROM records WHERE record_id = ${recordId}`;
    return row?.person_key;
  }

  /** A page of migrations from the projection (one row each, as the saga last left it). */
  migrations(f: MigrationFilter): Promise<MigrationRow[]> {
    return this.sql<MigrationRow[]>`
      SELECT migration_id, record_id, source_province, target_province, state, attempt,
             requested_at, updated_at, deadline, source_certificate_number,
             target_certificate_number, end_reason
      FROM migrations
      WHERE (${f.province}::text IS NULL OR source_province = ${f.province} OR target_province = ${f.province})
        AND (${f.state}::text IS NULL OR state = ${f.state})
        AND (${f.updatedBefore}::timestamptz IS NULL OR updated_at < ${f.updatedBefore})
        AND (requested_at, migration_id) < (${f.before.at}, ${f.before.id}::uuid)
      ORDER BY requested_at DESC, migration_id DESC
      LIMIT ${f.limit}`;
  }

  directives(f: DirectiveFilter): Promise<DirectiveRow[]> {
    return this.sql<DirectiveRow[]>`
      SELECT directive_id, payload, state, publish_count, last_published_at, receipt_outcome,
             receipt, created_at
      FROM directives
      WHERE (${f.province}::text IS NULL OR province = ${f.province})
        AND state = ANY(${f.states})
        AND (${f.createdBefore}::timestamptz IS NULL OR created_at < ${f.createdBefore})
        AND (created_at, directive_id) > (${f.after.at}, ${f.after.id}::uuid)
        ${f.recordIds?.length ? this.sql`AND record_id = ANY(${f.recordIds}::text[])` : this.sql``}
      ORDER BY created_at, directive_id
      LIMIT ${f.limit}`;
  }

  /** One directive with what an operator action on it needs (its person, record, migration). */
  async directive(id: string): Promise<(DirectiveRow & DirectiveKeys) | undefined> {
    const [row] = await this.sql<(DirectiveRow & DirectiveKeys)[]>`
      SELECT directive_id::text, payload, state, publish_count, last_published_at, receipt_outcome,
             receipt, created_at, province, person_key, record_id, record_sequence::int,
             migration_id::text, action
      FROM directives WHERE directive_id = ${id}::uuid`;
    return row;
  }

  /** A person's events in order, with their chain hashes, up to `asOf` if given. */
  events(personKey: string, asOf?: Date): Promise<EventRow[]> {
    return this.sql<EventRow[]>`
      SELECT e.position, e.event_id, e.stream_id, e.stream_version, e.type, e.data, e.recorded_at,
             c.hash, k.dek
      FROM events e LEFT JOIN event_chain c ON c.position = e.position
        LEFT JOIN person_keys k ON k.person_key = e.stream_id
      WHERE e.stream_id = ${personKey}
        AND (${asOf ?? null}::timestamptz IS NULL OR e.recorded_at <= ${asOf ?? null})
      ORDER BY e.stream_version`;
  }
}

/** The log position a snapshot read sees (inside its REPEATABLE READ transaction). */
export async function snapshotWatermark(conn: ReservedSql): Promise<bigint> {
  const [w] = await conn<{ watermark: number }[]>`
    SELECT coalesce(max(position), 0) AS watermark FROM events`;
  return BigInt(w?.watermark ?? 0);
}

/**
 * One keyset page of a province's certificates (of the given records only, if any), in
 * byte-wise number order, each with its record's answered sequence: the highest n such that
 * the hub holds the province's receipts for every directive 1..n of the record to it, or no
 * longer waits for one (SUPERSEDED: its saga moved on, and it is never published again — a
 * province that lost it must not wait for it) (SnapshotEntry.record_sequence; one probe of the
 * directives' (province, record, sequence) index per row, in the snapshot's transaction, so it
 * matches the row beside it).
 */
export function snapshotPage(
  conn: ReservedSql,
  province: string,
  after: string,
  limit: number,
  recordIds: readonly string[] = [],
): Promise<SnapshotRow[]> {
  const only = recordIds.length > 0 ? conn`AND c.record_id = ANY(${recordIds}::text[])` : conn``;
  return conn<SnapshotRow[]>`
    SELECT c.certificate_number, c.record_id, c.owner_province, c.status, c.record_status,
      c.version, c.position, c.contents_digest, coalesce(a.answered, 0)::int AS record_sequence
    FROM certificates c
    LEFT JOIN LATERAL (
      SELECT coalesce(
          min(d.record_sequence) FILTER (WHERE d.receipt IS NULL AND d.state <> 'SUPERSEDED') - 1,
          max(d.record_sequence)) AS answered
      FROM directives d WHERE d.province = c.province AND d.record_id = c.record_id
    ) a ON true
    WHERE c.province = ${province} AND c.certificate_number COLLATE "C" > ${after} ${only}
    ORDER BY c.certificate_number COLLATE "C"
    LIMIT ${limit}`;
}
