import type { Sql } from "postgres";

/** What a phone-tier caller was told. */
export type ReadOutcome = "OK" | "NOT_FOUND" | "PERMISSION_DENIED";

export interface ReadEntry {
  caller: string;
  scope: string;
  purpose: string;
  method: string;
  recordId: string | undefined;
  outcome: ReadOutcome;
}

export interface ReadRow {
  position: string;
  read_at: Date;
  caller: string;
  scope: string;
  purpose: string;
  method: string;
  record_id: string | null;
  outcome: ReadOutcome;
}

/**
 * The province's append-only access log (table `record_reads`): one row per read of
 * person-level data, written before the answer leaves, so no read goes unrecorded.
 */
export class AccessLog {
  constructor(private readonly sql: Sql) {}

  async record(e: ReadEntry): Promise<void> {
    await this.sql`INSERT INTO record_reads (caller, scope, purpose, method, record_id, outcome)
      VALUES (${e.caller}, ${e.scope}, ${e.purpose}, ${e.method}, ${e.recordId ?? null}, ${e.outcome})`;
  }

  /** Newest first, below `before` (0: from the newest). */
  list(q: { recordId: string; caller: string; limit: number; before: bigint }): Promise<ReadRow[]> {
    const sql = this.sql;
    return sql<ReadRow[]>`
      SELECT position::text AS position, read_at, caller, scope, purpose, method, record_id, outcome
      FROM record_reads
      WHERE (${q.before.toString()}::bigint = 0 OR position < ${q.before.toString()}::bigint)
        ${q.recordId ? sql`AND record_id = ${q.recordId}` : sql``}
        ${q.caller ? sql`AND caller = ${q.caller}` : sql``}
      ORDER BY record_reads.position DESC -- the column, not the text alias
      LIMIT ${q.limit}`;
  }
}
