import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import type { Directive } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import {
  type DirectiveService,
  DirectiveState,
  type DirectiveStatus,
} from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import type { ProvinceStore } from "./store/store.js";

/** States of a directive the hub still waits for this province's receipt to. */
const UNANSWERED = new Set([
  DirectiveState.PENDING,
  DirectiveState.DELIVERED,
  DirectiveState.FAILED,
]);

/**
 * The hub holds no receipt for it: it waits for one, or gave up on it (SUPERSEDED: its
 * migration ended) — a directive the province still applies in its record's order, and that may
 * still be on the bus (a killed province's unacknowledged copy comes again after ack_wait).
 * Drill seed 60058: a death ended a migration whose activation 110000 had not taken yet; the
 * closure's revoke, arriving first, was applied over that "given up" gap (RECORD_NOT_FOUND), and
 * the activation, redelivered, then issued a NORMAL certificate to the dead child.
 */
function withoutReceipt(s: DirectiveStatus): boolean {
  return (
    UNANSWERED.has(s.state) || (s.state === DirectiveState.SUPERSEDED && s.receipt === undefined)
  );
}

/** What the hub's outbox says of records with parked directives (see lostPredecessors). */
export interface HubGaps {
  /**
   * Directives the hub holds no receipt for and the province has not applied: apply them first,
   * in order (a copy still on the bus then comes as a duplicate).
   */
  lost: Directive[];
  /**
   * Per record asked about, the sequences of every directive to this province the hub holds no
   * receipt for (applied here or not). A gap holding none of them is one the hub proves closed:
   * every directive in it was answered — applied here, then lost with the store.
   */
  unanswered: ReadonlyMap<string, readonly number[]>;
}

/**
 * The directives of these records the hub holds no receipt for (it waits for one, or gave up on
 * it) and that the province has not applied (above its last sequence), in sequence order per
 * record, with the sequences without a receipt per record (HubGaps).
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
): Promise<HubGaps> {
  const unanswered = new Map<string, number[]>(recordIds.map((id) => [id, []]));
  if (recordIds.length === 0) return { lost: [], unanswered };
  const found: Directive[] = [];
  let pageToken = "";
  do {
    const page = await hub.listDirectives({ recordIds, pageSize: 1000, pageToken });
    for (const s of page.directives)
      if (s.directive && withoutReceipt(s)) {
        found.push(s.directive);
        unanswered.get(s.directive.recordId)?.push(Number(s.directive.recordSequence));
      }
    pageToken = page.nextPageToken;
  } while (pageToken);
  if (found.length === 0) return { lost: [], unanswered };
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
  const lost = found
    .filter((d) => Number(d.recordSequence) > (last.get(d.recordId) ?? 0))
    .filter((d) => !parked.has(d.directiveId))
    .sort(inRecordOrder);
  return { lost, unanswered };
}

/** Orders directives by record, then by sequence within a record (the order they apply in). */
export function inRecordOrder(a: Directive, b: Directive): number {
  if (a.recordId !== b.recordId) return a.recordId < b.recordId ? -1 : 1;
  return Number(a.recordSequence - b.recordSequence);
}

/**
 * Whether the hub proves the gap before directive `seq` closed, the record being at `last`
 * here: the hub holds that directive without a receipt (its outbox holds it: a copy from
 * anywhere else, or from a hub restored to before it, proves nothing) and holds a receipt for
 * every directive of the record to this province between them.
 */
export function gapProvenClosed(
  unanswered: readonly number[] | undefined,
  last: number,
  seq: number,
): boolean {
  if (!unanswered?.includes(seq)) return false;
  return !unanswered.some((u) => u > last && u < seq);
}

/** At most this many forgotten directives are taken per reconciliation pass. */
const FORGOTTEN_PER_PASS = 5000;

/**
 * Directives the hub has waited on longer than `graceMs` (DELIVERED, FAILED) that this
 * province has not applied, oldest first. A province restored from a backup lost what it
 * applied after it, receipts not yet sent included; the bus took those acks and drops the
 * hub's republishes inside its duplicate window, and no later directive may come to park and
 * set off a resync (a compensation's revoke is its record's last). A reconciliation pass takes
 * them from the hub's outbox; one still on its way becomes a duplicate (the inbox).
 */
export async function forgottenDirectives(
  store: ProvinceStore,
  hub: Client<typeof DirectiveService>,
  graceMs: number,
): Promise<Directive[]> {
  const createdBefore = timestampFromDate(new Date(Date.now() - graceMs));
  const found: Directive[] = [];
  for (const state of [DirectiveState.DELIVERED, DirectiveState.FAILED]) {
    let pageToken = "";
    do {
      const page = await hub.listDirectives({ state, createdBefore, pageSize: 1000, pageToken });
      for (const s of page.directives) if (s.directive) found.push(s.directive);
      pageToken = found.length < FORGOTTEN_PER_PASS ? page.nextPageToken : "";
    } while (pageToken);
  }
  if (found.length === 0) return [];
  const held = new Set(
    (
      await store.sql<{ directive_id: string }[]>`
        SELECT directive_id::text FROM inbox WHERE directive_id = ANY(${found.map((d) => d.directiveId)}::uuid[])
        UNION SELECT directive_id::text FROM parked WHERE directive_id = ANY(${found.map((d) => d.directiveId)}::uuid[])`
    ).map((r) => r.directive_id),
  );
  return found.filter((d) => !held.has(d.directiveId));
}
