import type { Client } from "@connectrpc/connect";
import type { Directive } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import {
  type DirectiveService,
  DirectiveState,
} from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import type { ProvinceStore } from "./store/store.js";

/** States of a directive the hub still waits for this province's receipt to. */
const UNANSWERED = new Set([
  DirectiveState.PENDING,
  DirectiveState.DELIVERED,
  DirectiveState.FAILED,
]);

/**
 * The directives of these records that the hub still waits for this province to answer and
 * that the province has not applied (above its last sequence), in sequence order per record.
 * A province restored from a backup lost the directives it applied after it, and with them the
 * receipts not yet sent: the bus delivered and forgot them (acknowledged), and JetStream drops
 * the hub's republishes inside its duplicate window (2 min by default) — so the record's next
 * directive would wait on that gap. Read from the hub's outbox (ListDirectives, record_ids),
 * they are applied like any delivery: a copy still on its way is a duplicate (the inbox).
 */
export async function lostPredecessors(
  store: ProvinceStore,
  hub: Client<typeof DirectiveService>,
  recordIds: string[],
): Promise<Directive[]> {
  if (recordIds.length === 0) return [];
  const found: Directive[] = [];
  let pageToken = "";
  do {
    const page = await hub.listDirectives({ recordIds, pageSize: 1000, pageToken });
    for (const s of page.directives)
      if (s.directive && UNANSWERED.has(s.state)) found.push(s.directive);
    pageToken = page.nextPageToken;
  } while (pageToken);
  if (found.length === 0) return [];
  const rows = await store.sql<{ record_id: string; last: number }[]>`
    SELECT record_id, last_sequence::float8 AS last FROM records
    WHERE record_id = ANY(${recordIds}::text[])`;
  const last = new Map(rows.map((r) => [r.record_id, r.last]));
  // Those parked here already wait for their turn (drained after the others are applied).
  const parked = new Set(
    (
      await store.sql<{ directive_id: string }[]>`
        SELECT directive_id::text FROM parked WHERE record_id = ANY(${recordIds}::text[])`
    ).map((r) => r.directive_id),
  );
  return found
    .filter((d) => Number(d.recordSequence) > (last.get(d.recordId) ?? 0))
    .filter((d) => !parked.has(d.directiveId))
    .sort((a, b) =>
      a.recordId === b.recordId
        ? Number(a.recordSequence - b.recordSequence)
        : a.recordId < b.recordId
          ? -1
          : 1,
    );
}
