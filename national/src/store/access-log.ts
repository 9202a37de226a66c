import type { Sql } from "postgres";

export interface PersonReadEntry {
  caller: string;
  personKey: string;
  purpose: string;
  method: string;
}

export interface PersonReadRow {
  position: string;
  read_at: Date;
  caller: string;
  person_key: string;
  purpose: string;
  method: string;
}

/**
 * The hub's append-only access log (table `person_reads`): one row per read of a person's
 * data, written before the answer leaves, so no read goes unrecorded.
 */
export class PersonReads {
  constructor(private readonly sql: Sql) {}

  async record(e: PersonReadEntry): Promise<void> {
    await this.sql`INSERT INTO person_reads (caller, person_key, purpose, method)
      VALUES (${e.caller}, ${e.personKey}, ${e.purpose}, ${e.method})`;
  }

  /** Newest first, below `before` (0: from the newest). */
  list(q: { personKey: string; caller: string; limit: number; before: bigint }) {
    const sql = this.sql;
    return sql<PersonReadRow[]>`
      SELECT position::text AS position, read_at, caller, person_key, purpose, method
      FROM person_reads
      WHERE (${q.before.toString()}::bigint = 0 OR person_reads.position < ${q.before.toString()}::bigint)
        ${q.personKey ? sql`AND person_key = ${q.personKey}` : sql``}
        ${q.caller ? sql`AND caller = ${q.caller}` : sql``}
      ORDER BY person_reads.position DESC -- the column, not the text alias
      LIMIT ${q.limit}`;
  }
}
