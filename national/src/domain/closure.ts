import { current, directive, iso } from "./decider-parts.js";
import { Refusal } from "./errors.js";
import type {
  CloseReason,
  DecideContext,
  DirectiveIntent,
  HubEvent,
  MigrationStateData,
  PersonState,
  RecordState,
} from "./types.js";

export interface CloseCommand {
  kind: "close";
  caller: string;
  recordId: string;
  reason: CloseReason;
  mergedIntoRecordId?: string;
}

/** Reasons that end a person's record wherever it is, an open migration included. */
const ENDS_EVERYWHERE: readonly CloseReason[] = ["DECEASED", "DELETED"];

/**
 * Closing a record (death, deletion, merge). The certificate is permanently revoked (已注销)
 * everywhere the person has one: the closing province revokes its own, and every other province
 * that holds a copy — a former owner's suspended certificate, the target of an open migration
 * that may have activated it — is sent a revoke. A death or deletion is accepted in every state
 * of an open migration, from its source or its target, and ends it; a merge waits for it.
 */
export function decideClose(state: PersonState, cmd: CloseCommand, ctx: DecideContext): HubEvent[] {
  const r = state.records[cmd.recordId];
  // Closing again what the caller closed is answered as the first closure was: a province
  // completing its closure after a crash must not be told the record does not exist.
  if (r?.status === "CLOSED" && (r.closedBy ?? r.owner) === cmd.caller) return [];
  if (!r || r.recordId !== current(state)?.recordId) {
    throw new Refusal("not_found", "RECORD_NOT_FOUND", `no open record ${cmd.recordId}`, {
      field: "record_id",
      recordId: cmd.recordId,
    });
  }
  const open = openMigrationOf(state, r);
  if (r.owner !== cmd.caller && open?.target !== cmd.caller) {
    throw new Refusal(
      "permission_denied",
      "WRONG_PROVINCE",
      `record ${r.recordId} is owned by ${r.owner}, not ${cmd.caller}`,
      { field: "record_id", ownerProvinceCode: r.owner, recordId: r.recordId },
    );
  }
  if (open && !ENDS_EVERYWHERE.includes(cmd.reason)) {
    throw new Refusal(
      "failed_precondition",
      "MIGRATION_IN_PROGRESS",
      `record ${r.recordId} has open migration ${open.migrationId}; only a death or a deletion ends it`,
      { migrationId: open.migrationId, recordId: r.recordId },
    );
  }
  const live = Object.values(state.certificates).filter(
    (c) => c.recordId === r.recordId && c.status !== "REVOKED",
  );
  const holders = new Set(live.map((c) => c.province));
  if (open) {
    holders.add(open.source);
    // The activation may have been applied at the target: it must revoke what it issued.
    if (open.state !== "REQUESTED") holders.add(open.target);
  }
  holders.delete(cmd.caller);
  const directives: DirectiveIntent[] = [...holders].sort().map((province) =>
    directive(state, ctx, {
      to: province,
      recordId: r.recordId,
      attempt: 1,
      correlationId: r.recordId,
      action: { kind: "revokeCertificate", reason: cmd.reason },
    }),
  );
  const data: Extract<HubEvent, { type: "RecordClosed" }>["data"] = {
    recordId: r.recordId,
    reason: cmd.reason,
    at: iso(ctx.now),
    by: cmd.caller,
    revoked: live.map((c) => c.number).filter((n) => n !== r.certificateNumber),
    directives,
  };
  if (cmd.mergedIntoRecordId) data.mergedIntoRecordId = cmd.mergedIntoRecordId;
  if (open) data.endedMigrationId = open.migrationId;
  return [{ type: "RecordClosed", data }];
}

function openMigrationOf(state: PersonState, r: RecordState): MigrationStateData | undefined {
  const m = state.openMigrationId ? state.migrations[state.openMigrationId] : undefined;
  return m?.recordId === r.recordId ? m : undefined;
}
