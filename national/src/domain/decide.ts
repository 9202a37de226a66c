import { type CloseCommand, decideClose } from "./closure.js";
import { after, current, directive, iso, openMigration, restore } from "./decider-parts.js";
import { Refusal } from "./errors.js";
import { mustBeThePerson } from "./identity-match.js";
import { decideOnboard, type OnboardCommand } from "./onboarding.js";
import { decideOperator, type OperatorCommand } from "./operator-decisions.js";
import { knownDoseIds, mergeDoses } from "./person.js";
import { decideRegister, type RegisterCommand } from "./registration.js";
import { decideReissue, type ReissueCommand } from "./reissue.js";
import type { DecideContext, DoseJson, HubEvent, IdentityJson, PersonState } from "./types.js";

export type { OperatorCommand, OutboxDirective } from "./operator-decisions.js";

/**
 * The most doses a record may hold (evc.common.v1.RecordContents): with every dose at its
 * largest, a record still fits one directive within NATS's default max_payload (1 MiB).
 */
export const MAX_DOSES_PER_RECORD = 1000;

/**
 * Business rules of the hub as pure deciders: given a person's state and a command, return
 * the events to append (possibly none) or throw a Refusal. No I/O; clock and ids come from ctx.
 */

export type Command =
  | RegisterCommand
  | OnboardCommand
  | CloseCommand
  | ReissueCommand
  | { kind: "requestMigration"; caller: string; identity: IdentityJson }
  | { kind: "cancelMigration"; caller: string; migrationId: string; reason: string }
  | OperatorCommand
  | {
      kind: "receipt";
      caller: string;
      migrationId: string;
      directiveId: string;
      attempt: number;
      outcome: "APPLIED" | "ALREADY_APPLIED" | "REJECTED";
      detail: string;
      /** From a suspend receipt: the record's doses at the source. */
      sourceDoses?: DoseJson[];
      /** From an activate receipt: the certificate issued at the target. */
      certificateNumber?: string;
    }
  | {
      kind: "reportIssued";
      caller: string;
      migrationId: string;
      attempt: number;
      certificateNumber: string;
    }
  | {
      kind: "reportDose";
      caller: string;
      identity: IdentityJson;
      dose: DoseJson;
      /** The caller owns the record and has stored the dose in it: nothing to route back. */
      heldByReporter?: boolean;
    }
  | { kind: "deadline"; migrationId: string };

export function decide(state: PersonState, cmd: Command, ctx: DecideContext): HubEvent[] {
  const at = iso(ctx.now);
  switch (cmd.kind) {
    case "register":
      return decideRegister(state, cmd, ctx);

    case "onboard":
      return decideOnboard(state, cmd, ctx);

    case "close":
      return decideClose(state, cmd, ctx);

    case "reissue":
      return decideReissue(state, cmd, ctx);

    case "requestMigration": {
      const r = current(state);
      if (!r) {
        throw new Refusal("not_found", "RECORD_NOT_FOUND", "person has no record to migrate", {
          field: "identity",
        });
      }
      // Before anything about the record is told: the caller must know the person, not only
      // the document number.
      mustBeThePerson(state.identity, cmd.identity);
      if (state.openMigrationId) {
        throw new Refusal(
          "failed_precondition",
          "MIGRATION_IN_PROGRESS",
          `person already has open migration ${state.openMigrationId}`,
          { migrationId: state.openMigrationId, ownerProvinceCode: r.owner, recordId: r.recordId },
        );
      }
      if (r.owner === cmd.caller) {
        throw new Refusal(
          "failed_precondition",
          "ALREADY_OWNER",
          `province ${cmd.caller} already owns record ${r.recordId}`,
          { ownerProvinceCode: r.owner, recordId: r.recordId },
        );
      }
      const migrationId = ctx.newId();
      return [
        {
          type: "MigrationRequested",
          data: {
            migrationId,
            recordId: r.recordId,
            source: r.owner,
            target: cmd.caller,
            identity: state.identity ?? cmd.identity,
            deadline: after(ctx, ctx.deadlines.suspendMs),
            directive: directive(state, ctx, {
              to: r.owner,
              recordId: r.recordId,
              attempt: 1,
              correlationId: migrationId,
              action: { kind: "suspendForMigration", migrationId, targetProvince: cmd.caller },
              migrationId,
            }),
            at,
          },
        },
      ];
    }

    case "forceAbort":
    case "forceComplete":
    case "redriveDirective":
    case "supersedeDirective":
      return decideOperator(state, cmd, ctx);

    case "cancelMigration": {
      const m = openMigration(state, cmd.migrationId);
      if (m.target !== cmd.caller) {
        throw new Refusal(
          "permission_denied",
          "WRONG_PROVINCE",
          `only the target province ${m.target} may cancel migration ${m.migrationId}`,
          { migrationId: m.migrationId },
        );
      }
      if (m.state === "CANCELLED") return [];
      if (m.state !== "REQUESTED") {
        throw new Refusal(
          "failed_precondition",
          "INVALID_STATE",
          `migration ${m.migrationId} is ${m.state}; only a REQUESTED migration can be cancelled`,
          { migrationId: m.migrationId },
        );
      }
      return [
        {
          type: "MigrationCancelled",
          data: {
            migrationId: m.migrationId,
            reason: cmd.reason || "cancelled by target",
            directive: restore(state, ctx, m, m.attempt + 1),
            at,
          },
        },
      ];
    }

    case "receipt":
      return decideReceipt(state, cmd, ctx);

    case "reportIssued":
      return decideReceipt(
        state,
        {
          kind: "receipt",
          caller: cmd.caller,
          migrationId: cmd.migrationId,
          directiveId: "",
          attempt: cmd.attempt,
          outcome: "APPLIED",
          detail: "",
          certificateNumber: cmd.certificateNumber,
        },
        ctx,
      );

    case "reportDose": {
      const r = current(state);
      if (!r) {
        throw new Refusal("not_found", "RECORD_NOT_FOUND", "person has no record", {
          field: "identity",
        });
      }
      const known = knownDoseIds(state);
      if (known.has(cmd.dose.doseId)) return [];
      if (known.size >= MAX_DOSES_PER_RECORD) {
        throw new Refusal(
          "resource_exhausted",
          "RECORD_FULL",
          `the record already holds ${known.size} doses, the most a record may hold (${MAX_DOSES_PER_RECORD})`,
          { field: "dose", recordId: r.recordId },
        );
      }
      const open = state.openMigrationId ? state.migrations[state.openMigrationId] : undefined;
      const data: Extract<HubEvent, { type: "DoseReported" }>["data"] = {
        dose: cmd.dose,
        reportedBy: cmd.caller,
        recordId: r.recordId,
        at,
      };
      if (open?.state === "SOURCE_SUSPENDED") {
        // The activate directive already left: the dose follows the record to the target.
        data.directive = directive(state, ctx, {
          to: open.target,
          recordId: r.recordId,
          attempt: open.attempt,
          correlationId: open.migrationId,
          action: {
            kind: "appendDose",
            dose: cmd.dose,
          },
        });
      } else if (!open && !(r.owner === cmd.caller && cmd.heldByReporter)) {
        // A non-owner's dose, or the owner's own that it did not store: the owner appends it.
        data.directive = directive(state, ctx, {
          to: r.owner,
          recordId: r.recordId,
          attempt: 1,
          correlationId: cmd.dose.doseId,
          action: {
            kind: "appendDose",
            dose: cmd.dose,
          },
        });
      }
      // Otherwise: held by the open migration (merged into activate or restore), or already
      // stored by the owner that reported it (the hub only learns it).
      return [{ type: "DoseReported", data }];
    }

    case "deadline": {
      const m = state.migrations[cmd.migrationId];
      if (!m || new Date(m.deadline) > ctx.now) return [];
      if (m.state === "REQUESTED") {
        return [
          {
            type: "MigrationCompensated",
            data: {
              migrationId: m.migrationId,
              reason: "source did not confirm the suspension before the deadline",
              directive: restore(state, ctx, m, m.attempt + 1),
              at,
            },
          },
        ];
      }
      if (m.state === "SOURCE_SUSPENDED") {
        const attempt = m.attempt + 1;
        return [
          {
            type: "MigrationCompensationStarted",
            data: {
              migrationId: m.migrationId,
              reason: "target did not confirm the issuance before the deadline",
              attempt,
              deadline: after(ctx, ctx.deadlines.compensateMs),
              directive: directive(state, ctx, {
                to: m.target,
                recordId: m.recordId,
                attempt,
                correlationId: m.migrationId,
                action: { kind: "revokeCertificate", reason: "MIGRATION_ABORTED" },
                migrationId: m.migrationId,
              }),
              at,
            },
          },
        ];
      }
      if (m.state === "COMPENSATING") {
        // Restoring the source before the target's revoke receipt would risk two NORMAL
        // certificates (I2): the revoke is re-driven, each round waiting twice as long, and then
        // the hub stops guessing — the lock stays, an operator is called.
        const round = (m.compensationRounds ?? 0) + 1;
        if (round <= ctx.deadlines.compensateRounds)
          return [
            {
              type: "CompensationRetried",
              data: {
                migrationId: m.migrationId,
                round,
                deadline: after(ctx, ctx.deadlines.compensateMs * 2 ** round),
                at,
              },
            },
          ];
        return [
          {
            type: "MigrationNeedsOperator",
            data: {
              migrationId: m.migrationId,
              reason: `the target ${m.target} did not answer the revoke in ${round} rounds`,
              at,
            },
          },
        ];
      }
      return [];
    }
  }
}

function decideReceipt(
  state: PersonState,
  cmd: Extract<Command, { kind: "receipt" }>,
  ctx: DecideContext,
): HubEvent[] {
  const at = iso(ctx.now);
  const m = openMigration(state, cmd.migrationId);
  const stale = (why: string) =>
    new Refusal("aborted", "STALE_ATTEMPT", `${why} (migration ${m.migrationId} is ${m.state})`, {
      migrationId: m.migrationId,
      currentVersion: state.version,
    });
  if (cmd.attempt !== m.attempt)
    throw stale(`attempt ${cmd.attempt} is superseded by ${m.attempt}`);
  if (cmd.directiveId && cmd.directiveId !== m.awaitingDirectiveId) {
    throw stale(`directive ${cmd.directiveId} is not awaited`);
  }

  switch (m.state) {
    case "REQUESTED": {
      if (cmd.caller !== m.source) throw stale(`province ${cmd.caller} is not the source`);
      if (cmd.outcome === "REJECTED") {
        // Doses reported meanwhile were held for the target: the source keeps the record, so
        // they go to it (drill seed 70127: they were dropped, the dose lost at the hub, I3).
        const held = m.heldDoses.length > 0 ? restore(state, ctx, m, m.attempt + 1) : undefined;
        return [
          {
            type: "MigrationRejected",
            data: {
              migrationId: m.migrationId,
              reason: cmd.detail || "rejected by source",
              at,
              ...(held ? { directive: held } : {}),
            },
          },
        ];
      }
      const record = state.records[m.recordId];
      const doses = mergeDoses(record?.doses ?? [], cmd.sourceDoses ?? [], m.heldDoses);
      const identity = state.identity;
      if (!identity) throw new Error(`person of migration ${m.migrationId} has no identity`);
      return [
        {
          type: "SourceSuspended",
          data: {
            migrationId: m.migrationId,
            sourceDoses: cmd.sourceDoses ?? [],
            deadline: after(ctx, ctx.deadlines.activateMs),
            directive: directive(state, ctx, {
              to: m.target,
              recordId: m.recordId,
              attempt: m.attempt,
              correlationId: m.migrationId,
              action: {
                kind: "activateMigratedRecord",
                migrationId: m.migrationId,
                sourceProvince: m.source,
                identity,
                doses,
              },
              migrationId: m.migrationId,
            }),
            at,
          },
        },
      ];
    }
    case "SOURCE_SUSPENDED": {
      if (cmd.caller !== m.target) throw stale(`province ${cmd.caller} is not the target`);
      if (cmd.outcome === "REJECTED") {
        // The target activated nothing: restore the source at once.
        return [
          {
            type: "MigrationCompensated",
            data: {
              migrationId: m.migrationId,
              reason: `target rejected the activation: ${cmd.detail}`,
              directive: restore(state, ctx, m, m.attempt + 1),
              at,
            },
          },
        ];
      }
      if (!cmd.certificateNumber) {
        throw new Refusal(
          "invalid_argument",
          "INVALID_FIELD",
          "an activate receipt must carry the issued certificate (activated.certificate_number)",
          { field: "receipts.activated.certificate_number", migrationId: m.migrationId },
        );
      }
      return [
        {
          type: "MigrationCompleted",
          data: { migrationId: m.migrationId, certificateNumber: cmd.certificateNumber, at },
        },
      ];
    }
    case "COMPENSATING":
    case "NEEDS_OPERATOR": {
      if (cmd.caller !== m.target) throw stale(`province ${cmd.caller} is not the target`);
      // Whatever the target answered (revoked, or never had the record), it holds no NORMAL
      // certificate now: the source may be restored (I2).
      return [
        {
          type: "MigrationCompensated",
          data: {
            migrationId: m.migrationId,
            reason: m.endReason ?? "compensated",
            directive: restore(state, ctx, m, m.attempt + 1),
            at,
          },
        },
      ];
    }
    default:
      throw stale("the migration is over");
  }
}
