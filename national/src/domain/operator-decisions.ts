import { iso, openMigration, restore } from "./decider-parts.js";
import { Refusal } from "./errors.js";
import { sequenceKey } from "./person.js";
import type { DecideContext, HubEvent, PersonState } from "./types.js";
import { OPEN_MIGRATION_STATES, SAGA_STEP_ACTIONS } from "./types.js";

/**
 * What an operator does to stuck work (OperatorService), as pure deciders like decide.ts: each
 * is an event naming the operator and the reason, or a Refusal saying why not.
 */

/** A directive as its outbox row has it (what an operator action on it needs). */
export interface OutboxDirective {
  directiveId: string;
  province: string;
  recordId: string;
  recordSequence: number;
  migrationId: string | null;
  action: string;
}

export type OperatorCommand =
  | { kind: "forceAbort"; operator: string; migrationId: string; reason: string }
  | {
      kind: "forceComplete";
      operator: string;
      migrationId: string;
      certificateNumber: string;
      reason: string;
    }
  | { kind: "redriveDirective"; operator: string; reason: string; directive: OutboxDirective }
  | { kind: "supersedeDirective"; operator: string; reason: string; directive: OutboxDirective };

/** The directives a migration's saga waits on (dose appends and restores are not steps). */
const SAGA_STEPS = new Set<string>(SAGA_STEP_ACTIONS);

export function decideOperator(
  state: PersonState,
  cmd: OperatorCommand,
  ctx: DecideContext,
): HubEvent[] {
  const at = iso(ctx.now);
  switch (cmd.kind) {
    case "forceAbort": {
      const m = openMigration(state, cmd.migrationId);
      if (m.state !== "NEEDS_OPERATOR" && m.state !== "COMPENSATING")
        throw new Refusal(
          "failed_precondition",
          "INVALID_STATE",
          `migration ${m.migrationId} is ${m.state}: only one waiting on its target's revoke (NEEDS_OPERATOR, COMPENSATING) can be force-aborted`,
          { field: "migration_id", migrationId: m.migrationId },
        );
      return [
        {
          type: "MigrationCompensated",
          data: {
            migrationId: m.migrationId,
            reason: `force-aborted by ${cmd.operator}: ${cmd.reason}`,
            by: cmd.operator,
            directive: restore(state, ctx, m, m.attempt + 1),
            at,
          },
        },
      ];
    }

    case "forceComplete": {
      const m = openMigration(state, cmd.migrationId);
      if (m.state !== "SOURCE_SUSPENDED")
        throw new Refusal(
          "failed_precondition",
          "INVALID_STATE",
          m.state === "REQUESTED"
            ? `migration ${m.migrationId} is REQUESTED: the source has not suspended the record, there is nothing to complete`
            : `migration ${m.migrationId} is ${m.state}: only one waiting for its target's activation (SOURCE_SUSPENDED) can be force-completed${m.state === "COMPENSATING" || m.state === "NEEDS_OPERATOR" ? "; a revoke is on its way to the target: force-abort it instead" : ""}`,
          { field: "migration_id", migrationId: m.migrationId },
        );
      const taken = state.certificates[cmd.certificateNumber];
      if (taken)
        throw new Refusal(
          "already_exists",
          "INVALID_FIELD",
          `certificate ${cmd.certificateNumber} is already the person's (${taken.status} at ${taken.province}): give the one the target issued`,
          { field: "certificate_number", migrationId: m.migrationId },
        );
      if (!cmd.certificateNumber.startsWith(`${m.target}-`))
        throw new Refusal(
          "invalid_argument",
          "INVALID_FIELD",
          `certificate ${cmd.certificateNumber} is not one the target ${m.target} issues (${m.target}-...)`,
          { field: "certificate_number", migrationId: m.migrationId },
        );
      return [
        {
          type: "MigrationCompleted",
          data: {
            migrationId: m.migrationId,
            certificateNumber: cmd.certificateNumber,
            by: cmd.operator,
            reason: `force-completed by ${cmd.operator}: ${cmd.reason}`,
            at,
          },
        },
      ];
    }

    case "supersedeDirective": {
      const d = cmd.directive;
      const m = d.migrationId ? state.migrations[d.migrationId] : undefined;
      if (m && m.awaitingDirectiveId === d.directiveId && OPEN_MIGRATION_STATES.includes(m.state))
        throw new Refusal(
          "failed_precondition",
          "INVALID_STATE",
          `directive ${d.directiveId} is awaited by migration ${m.migrationId} (${m.state}): its deadline, or force-abort / force-complete, moves it on`,
          { field: "directive_id", migrationId: m.migrationId },
        );
      return [
        {
          type: "DirectiveSuperseded",
          data: {
            directiveId: d.directiveId,
            province: d.province,
            by: cmd.operator,
            reason: cmd.reason,
            at,
          },
        },
      ];
    }

    case "redriveDirective": {
      const d = cmd.directive;
      const refuse = (why: string) =>
        new Refusal("failed_precondition", "INVALID_STATE", `directive ${d.directiveId} ${why}`, {
          field: "directive_id",
        });
      const latest = state.sequences[sequenceKey(d.recordId, d.province)] ?? 0;
      if (d.recordSequence !== latest)
        throw refuse(
          `is no longer the latest to ${d.province} for its record (sequence ${d.recordSequence}, latest ${latest}): sent again, it would undo what came after it`,
        );
      const m = d.migrationId ? state.migrations[d.migrationId] : undefined;
      if (m && SAGA_STEPS.has(d.action)) {
        // A step of a migration goes again only while the migration waits for it; a revoke also
        // after the migration ended (compensated: the target must hold no NORMAL certificate).
        const waits =
          m.awaitingDirectiveId === d.directiveId &&
          (OPEN_MIGRATION_STATES.includes(m.state) || d.action === "revokeCertificate");
        if (!waits)
          throw refuse(
            `belongs to migration ${m.migrationId}, which no longer waits for it (${m.state})`,
          );
      }
      return [
        {
          type: "DirectiveRedriven",
          data: {
            directiveId: d.directiveId,
            province: d.province,
            by: cmd.operator,
            reason: cmd.reason,
            at,
          },
        },
      ];
    }
  }
}
