import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  ForceAbortMigrationResponseSchema,
  type OperatorService,
  RedriveDirectiveResponseSchema,
} from "@evc-interop/gen/evc/national/v1/operator_service_pb";
import { type HubDeps, migrationMessage, principalOf } from "./context.js";
import { directiveStatus } from "./directive-service.js";
import { denied, refusalError } from "./errors.js";
import { migrationIn, personOfMigration } from "./migration-service.js";

/** Operator actions on stuck work; each an event carrying the operator and the reason. */
export function operatorService(deps: HubDeps): ServiceImpl<typeof OperatorService> {
  return {
    async forceAbortMigration(req, ctx) {
      const p = principalOf(ctx);
      if (p.kind !== "operator") throw denied("operator actions are for national operators");
      const key = await personOfMigration(deps, req.migrationId);
      const { response } = await deps.store.execute(
        key,
        {
          kind: "forceAbort",
          operator: p.subject,
          migrationId: req.migrationId,
          reason: req.reason,
        },
        (state) =>
          create(ForceAbortMigrationResponseSchema, {
            migration: migrationMessage(migrationIn(state, req.migrationId)),
          }),
      );
      return response;
    },

    async redriveDirective(req, ctx) {
      const p = principalOf(ctx);
      if (p.kind !== "operator") throw denied("operator actions are for national operators");
      const row = await deps.queries.directive(req.directiveId);
      if (!row) {
        throw refusalError("not_found", "NOT_FOUND", `no directive ${req.directiveId}`, {
          field: "directive_id",
        });
      }
      if (row.state !== "FAILED") {
        throw refusalError(
          "failed_precondition",
          "INVALID_STATE",
          `directive ${req.directiveId} is ${row.state}: only a dead-lettered (FAILED) one is re-driven`,
          { field: "directive_id" },
        );
      }
      await deps.store.execute(
        row.person_key,
        {
          kind: "redriveDirective",
          operator: p.subject,
          reason: req.reason,
          directive: {
            directiveId: row.directive_id,
            province: row.province,
            recordId: row.record_id,
            recordSequence: row.record_sequence,
            migrationId: row.migration_id,
            action: row.action,
          },
        },
        () => null,
      );
      const after = await deps.queries.directive(req.directiveId);
      return create(RedriveDirectiveResponseSchema, {
        directive: after ? directiveStatus(after, false) : undefined,
      });
    },
  };
}
