import type { Client } from "@connectrpc/connect";
import type {
  SnapshotEntry,
  SnapshotService,
} from "@evc-interop/gen/evc/national/v1/snapshot_service_pb";
import type { Logger } from "pino";
import type { ProvinceStore } from "./store/store.js";

/** Records whose sequences are compared (and later raised) per statement. */
const BATCH = 500;

/**
 * The directive-sequence half of a reconciliation pass (#28): the snapshot carries, for each
 * record, the sequence of directives to this province the hub holds receipts for without a gap
 * (SnapshotEntry.record_sequence). A province that applied those directives and then lost them
 * (restored from an older backup, rows lost) holds a lower last sequence, and the next
 * directive would wait on a gap nothing fills. This finds those records while the pass runs (a
 * batch of records per query) and, once the pass has repaired their certificates and contents
 * from the snapshot, raises their last sequence to the hub's — never lowers it. In a province
 * that lost nothing the hub's answered sequence is ahead only over a directive the hub stopped
 * waiting for (SUPERSEDED) that is still on its way: a receipt is sent only after its directive
 * committed. Such a directive, arriving after the raise, is stale (domain/decide.ts): it
 * changes nothing but the doses it carries, so it can neither hold up the next one nor undo
 * it. Memory: one batch, plus the records behind.
 */
export class SequenceCheck {
  private pending = new Map<string, number>();
  private readonly behind = new Map<string, number>();

  constructor(
    private readonly store: ProvinceStore,
    private readonly log: Logger,
  ) {}

  /** Takes one snapshot entry (each certificate of a record carries the same sequence). */
  async offer(e: SnapshotEntry): Promise<void> {
    const n = Number(e.recordSequence);
    if (n === 0) return;
    this.pending.set(e.recordId, Math.max(n, this.pending.get(e.recordId) ?? 0));
    if (this.pending.size >= BATCH) await this.compare();
  }

  /** Compares what is pending, then raises every record found behind; returns how many. */
  async finish(): Promise<number> {
    await this.compare();
    const ids = [...this.behind.keys()];
    let raised = 0;
    for (let i = 0; i < ids.length; i += BATCH) {
      const batch = ids.slice(i, i + BATCH);
      const rows = await this.store.sql<{ record_id: string }[]>`
        UPDATE records r SET last_sequence = u.n, updated_at = now()
        FROM unnest(${batch}::text[], ${batch.map((id) => this.behind.get(id) ?? 0)}::bigint[])
          AS u(id, n)
        WHERE r.record_id = u.id AND r.last_sequence < u.n
        RETURNING r.record_id`;
      raised += rows.length;
    }
    if (raised > 0)
      this.log.warn(
        { records: raised, first: ids.slice(0, 5) },
        "reconciliation: records behind the hub's directive sequence (lost after applying: restored from a backup?) resynced",
      );
    return raised;
  }

  private async compare(): Promise<void> {
    const batch = this.pending;
    this.pending = new Map();
    for (const [id, n] of await behindOf(this.store, batch)) this.behind.set(id, n);
  }
}

/**
 * Of records found waiting on a gap, those provably behind the hub: the hub's answered
 * sequence (read from its snapshot of just these records) is above the province's own. Only
 * these are resynced: a gap the hub cannot prove — a predecessor still on its way — is left to
 * fill, and the record's copy is not touched.
 */
export async function recordsBehind(
  store: ProvinceStore,
  hub: Client<typeof SnapshotService>,
  recordIds: string[],
): Promise<string[]> {
  const answered = new Map<string, number>();
  for await (const page of hub.streamSnapshot({ recordIds }))
    for (const e of page.entries)
      answered.set(e.recordId, Math.max(Number(e.recordSequence), answered.get(e.recordId) ?? 0));
  return [...(await behindOf(store, answered)).keys()];
}

/**
 * Of the hub's answered sequences by record, those above the province's own last applied
 * (a record not held yet counts as 0).
 */
async function behindOf(
  store: ProvinceStore,
  answered: ReadonlyMap<string, number>,
): Promise<Map<string, number>> {
  if (answered.size === 0) return new Map();
  const rows = await store.sql<{ record_id: string; last: number }[]>`
    SELECT record_id, last_sequence::float8 AS last FROM records
    WHERE record_id = ANY(${[...answered.keys()]}::text[])`;
  const local = new Map(rows.map((r) => [r.record_id, r.last]));
  return new Map([...answered].filter(([id, n]) => n > (local.get(id) ?? 0)));
}
