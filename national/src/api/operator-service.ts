import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  ForceAbortMigrationResponseSchema,
  ForceCompleteMigrationResponseSchema,
  type OperatorService,
  RedriveDirectiveResponseSchema,
  SupersedeDirectiveResponseSchema,
} from "@evc-interop/gen/evc/national/v1/operator_service_pb";
import type { OutboxDirective } from "../domain/decide.js";
import type { DirectiveKeys, DirectiveRow } from "../store/queries.js";
import { type HubDeps, migrationMessage, principalOf, refuseOthersCertificate } from "./context.js";
import { directiveStatus } from "./directive-service.js";
import { denied, refusalError } from "./errors.js";
import { migrationIn, personOfMigration } from "./migration-service.js";

/** The calling operator's name; anyone else (a viewer included) is refused. */
function operatorOf(ctx: HandlerContext): string {
  const p = principalOf(ctx);
  if (p.kind !== "operator") throw denied("operator actions are for national operators");
  return p.subject;
}

type Row = DirectiveRow & DirectiveKeys;

/** The directive's outbox row, or NotFound naming the field. */
async function directiveRow(deps: HubDeps, id: string): Promise<Row> {
  const row = await deps.queries.directive(id);
  if (!row)
    throw refusalError("not_found", "NOT_FOUND", `no directive ${id}`, { field: "directive_id" });
  return row;
}

function refuseState(row: Row, why: string): never {
  throw refusalError(
    "failed_precondition",
    "INVALID_STATE",
    `directive ${row.directive_id} is ${row.state}: ${why}`,
    { field: "directive_id" },
  );
}

function outboxDirective(row: Row): OutboxDirective {
  return {
    directiveId: row.directive_id,
    province: row.province,
    recordId: row.record_id,
    recordSequence: row.record_sequence,
    migrationId: row.migration_id,
    action: row.action,
  };
}

/** Operator actions on stuck work; each an event carrying the operator and the reason. */
export function operatorService(deps: HubDeps): ServiceImpl<typeof OperatorService> {
  const directiveAfter = async (id: string) => {
    const after = await deps.queries.directive(id);
    return after ? directiveStatus(after, false) : undefined;
  };
  return {
    async forceAbortMigration(req, ctx) {
      const operator = operatorOf(ctx);
      const key = await personOfMigration(deps, req.migrationId);
      const { response } = await deps.store.execute(
        key,
        { kind: "forceAbort", operator, migrationId: req.migrationId, reason: req.reason },
        (state) =>
          create(ForceAbortMigrationResponseSchema, {
            migration: migrationMessage(migrationIn(state, req.migrationId)),
          }),
      );
      return response;
    },

    async forceCompleteMigration(req, ctx) {
      const operator = operatorOf(ctx);
      const key = await personOfMigration(deps, req.migrationId);
      // Another child's number (a typo) would be written over that child's certificate.
      await refuseOthersCertificate(deps, req.certificateNumber, key, "certificate_number");
      const { response } = await deps.store.execute(
        key,
        {
          kind: "forceComplete",
          operator,
          migrationId: req.migrationId,
          certificateNumber: req.certificateNumber,
          reason: req.reason,
        },
        (state) =>
          create(ForceCompleteMigrationResponseSchema, {
            migration: migrationMessage(migrationIn(state, req.migrationId)),
          }),
      );
      return response;
    },

    async redriveDirective(req, ctx) {
      const operator = operatorOf(ctx);
      const row = await directiveRow(deps, req.directiveId);
      const settled = row.state === "SUPERSEDED" && row.receipt === null;
      if (row.state !== "FAILED" && !settled)
        refuseState(row, "only a dead-lettered (FAILED) or superseded one is re-driven");
      await deps.store.execute(
        row.person_key,
        { kind: "redriveDirective", operator, reason: req.reason, directive: outboxDirective(row) },
        () => null,
      );
      return create(RedriveDirectiveResponseSchema, {
        directive: await directiveAfter(req.directiveId),
      });
    },

    async supersedeDirective(req, ctx) {
      const operator = operatorOf(ctx);
      const row = await directiveRow(deps, req.directiveId);
      if (row.state === "ACKNOWLEDGED")
        refuseState(row, "its province answered it, there is nothing to settle");
      if (row.state === "PENDING" && row.publish_count === 0)
        refuseState(
          row,
          "it was never published: the directives after it in its record's order would wait for it",
        );
      // Superseding again changes nothing: answered as the first time.
      if (row.state !== "SUPERSEDED")
        await deps.store.execute(
          row.person_key,
          {
            kind: "supersedeDirective",
            operator,
            reason: req.reason,
            directive: outboxDirective(row),
          },
          () => null,
        );
      return create(SupersedeDirectiveResponseSchema, {
        directive: await directiveAfter(req.directiveId),
      });
    },
  };
}
