import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  ForceAbortMigrationResponseSchema,
  type OperatorService,
} from "@evc-interop/gen/evc/national/v1/operator_service_pb";
import { type HubDeps, migrationMessage, principalOf } from "./context.js";
import { denied } from "./errors.js";
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
  };
}
