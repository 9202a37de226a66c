import type { Directive } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import type { Sql } from "postgres";

/** A parked directive: its bytes as they came off the bus. */
export interface ParkedRow {
  directive_id: string;
  record_id: string;
  record_sequence: string;
  payload: Uint8Array;
}

/**
 * Directives that arrived before an earlier one of their record (see the `parked` table): kept
 * here so the bus message can be acknowledged at once, applied when their turn comes.
 */
export class ParkedStore {
  constructor(private readonly sql: Sql) {}

  /** Parks a directive (a copy parked before is left as it is). */
  async park(d: Directive, payload: Uint8Array): Promise<void> {
    await this.sql`
      INSERT INTO parked (directive_id, record_id, record_sequence, payload)
      VALUES (${d.directiveId}, ${d.recordId}, ${String(d.recordSequence)}, ${payload})
      ON CONFLICT (directive_id) DO NOTHING`;
  }

  /** The record's parked directives, in sequence order. */
  of(recordId: string): Promise<ParkedRow[]> {
    return this.sql<ParkedRow[]>`
      SELECT directive_id, record_id, record_sequence::text, payload FROM parked
      WHERE record_id = ${recordId} ORDER BY record_sequence, parked_at`;
  }

  /** The records that have parked directives. */
  async records(): Promise<string[]> {
    const rows = await this.sql<{ record_id: string }[]>`SELECT DISTINCT record_id FROM parked`;
    return rows.map((r) => r.record_id);
  }

  async remove(directiveId: string): Promise<void> {
    await this.sql`DELETE FROM parked WHERE directive_id = ${directiveId}`;
  }

  /** Removes and returns the directives parked longer than `ms`. */
  expire(ms: number): Promise<ParkedRow[]> {
    return this.sql<ParkedRow[]>`
      DELETE FROM parked WHERE parked_at < now() - ${ms} * interval '1 millisecond'
      RETURNING directive_id, record_id, record_sequence::text, payload`;
  }
}
