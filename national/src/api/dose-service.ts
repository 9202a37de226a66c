import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  type DoseService,
  ReportDoseResponseSchema,
} from "@evc-interop/gen/evc/national/v1/dose_service_pb";
import { doseToJson, identityToJson } from "../domain/codec.js";
import { callerProvince, type HubDeps, keyOf } from "./context.js";
import { denied, invalid } from "./errors.js";

export function doseService(deps: HubDeps): ServiceImpl<typeof DoseService> {
  return {
    async reportDose(req, ctx) {
      const caller = callerProvince(ctx);
      if (!req.dose || !req.identity) throw invalid(req.dose ? "identity" : "dose", "is required");
      if (req.dose.administeredProvinceCode !== caller) {
        throw denied(
          `a province reports only doses it gave: administered_province_code is ${req.dose.administeredProvinceCode}, caller is ${caller}`,
          "dose.administered_province_code",
        );
      }
      const dose = doseToJson(req.dose);
      const { response } = await deps.store.execute(
        await keyOf(deps, req.identity),
        {
          kind: "reportDose",
          caller,
          identity: identityToJson(req.identity),
          dose,
          heldByReporter: req.heldByReporter,
        },
        (state, events) => {
          const record = state.currentRecordId ? state.records[state.currentRecordId] : undefined;
          return create(ReportDoseResponseSchema, {
            recordId: record?.recordId ?? "",
            ownerProvinceCode: record?.owner ?? "",
            duplicate: events.length === 0,
          });
        },
      );
      return response;
    },
  };
}
