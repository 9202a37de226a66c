import { Refusal } from "./errors.js";
import { mergeDoses, sequenceKey } from "./person.js";
import type {
  DecideContext,
  DirectiveAction,
  DirectiveIntent,
  MigrationStateData,
  PersonState,
  RecordState,
} from "./types.js";

/** What the deciders (decide.ts, operator-decisions.ts) build their events from. */

export function iso(d: Date): string {
  return d.toISOString();
}

export function after(ctx: DecideContext, ms: number): string {
  return iso(new Date(ctx.now.getTime() + ms));
}

export function current(state: PersonState): RecordState | undefined {
  return state.currentRecordId ? state.records[state.currentRecordId] : undefined;
}

/** A directive to a province, its sequence the next of its record there. */
interface DirectiveSpec {
  to: string;
  recordId: string;
  attempt: number;
  correlationId: string;
  action: DirectiveAction;
  migrationId?: string;
}

export function directive(
  state: PersonState,
  ctx: DecideContext,
  { to: province, recordId, attempt, correlationId, action, migrationId }: DirectiveSpec,
): DirectiveIntent {
  const d: DirectiveIntent = {
    directiveId: ctx.newId(),
    province,
    recordId,
    recordSequence: (state.sequences[sequenceKey(recordId, province)] ?? 0) + 1,
    attempt,
    correlationId,
    action,
  };
  if (migrationId) d.migrationId = migrationId;
  return d;
}

export function openMigration(state: PersonState, id: string): MigrationStateData {
  const m = state.migrations[id];
  if (!m) throw new Refusal("not_found", "NOT_FOUND", `no migration ${id}`, { migrationId: id });
  return m;
}

export function restore(
  state: PersonState,
  ctx: DecideContext,
  m: MigrationStateData,
  attempt: number,
): DirectiveIntent {
  const record = state.records[m.recordId];
  return directive(state, ctx, {
    to: m.source,
    recordId: m.recordId,
    attempt,
    correlationId: m.migrationId,
    action: {
      kind: "restoreRecord",
      migrationId: m.migrationId,
      doses: mergeDoses(record?.doses ?? [], m.heldDoses),
    },
    migrationId: m.migrationId,
  });
}
