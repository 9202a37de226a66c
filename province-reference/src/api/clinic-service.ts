import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  type ClinicService,
  CloseRecordResponseSchema,
  RecordDoseResponseSchema,
  RegisterBirthResponseSchema,
  ReissueCertificateResponseSchema,
  RequestMigrationResponseSchema,
} from "@evc-interop/gen/evc/province/v1/clinic_service_pb";
import type { HubIntents } from "../hub-intents.js";
import type { ImmunizationHistory } from "./history.js";
import { local } from "./local-refusal.js";
import { readerKey } from "./reader-auth.js";

/**
 * The clinic-facing write API (scope `records:write`, checked by the token interceptor): each
 * change is a durable intent completed with the hub, as the control API's flows are.
 */
export function clinicService(
  code: string,
  intents: HubIntents,
  history: ImmunizationHistory,
): ServiceImpl<typeof ClinicService> {
  return {
    async getImmunizationHistory(req, ctx) {
      const reader = ctx.values.get(readerKey);
      if (!reader) throw new ConnectError("a token is required", Code.Unauthenticated);
      if (!req.identity) throw new ConnectError("identity: is required", Code.InvalidArgument);
      // Purpose-bound: both access logs keep what the history was read for.
      if (!ctx.requestHeader.get("evc-purpose"))
        throw new ConnectError(
          "evc-purpose: the header is required: name what the history is read for (e.g. care)",
          Code.InvalidArgument,
        );
      return history.read(req.identity, reader, reader.purpose);
    },

    async registerBirth(req) {
      const { identity } = req;
      if (!identity) throw new ConnectError("identity: is required", Code.InvalidArgument);
      for (const [i, d] of req.doses.entries())
        if (d.administeredProvinceCode !== code)
          throw new ConnectError(
            `doses[${i}].administered_province_code: a birth dose is given here (${code})`,
            Code.InvalidArgument,
          );
      return create(
        RegisterBirthResponseSchema,
        await local(() => intents.register(identity, req.doses, req.knownAs)),
      );
    },

    async recordDose(req) {
      const { identity, dose } = req;
      if (!identity || !dose)
        throw new ConnectError(
          `${identity ? "dose" : "identity"}: is required`,
          Code.InvalidArgument,
        );
      if (dose.administeredProvinceCode !== code)
        throw new ConnectError(
          `dose.administered_province_code: must be this province (${code}), is "${dose.administeredProvinceCode}"`,
          Code.InvalidArgument,
        );
      return create(
        RecordDoseResponseSchema,
        await local(() => intents.recordDose(identity, dose)),
      );
    },

    async requestMigration(req) {
      const { identity } = req;
      if (!identity) throw new ConnectError("identity: is required", Code.InvalidArgument);
      const migrationId = await local(() => intents.migrateIn(identity));
      return create(RequestMigrationResponseSchema, { migrationId });
    },

    async reissueCertificate(req) {
      return create(
        ReissueCertificateResponseSchema,
        await local(() => intents.reissue(req.recordId, req.reason)),
      );
    },

    async closeRecord(req) {
      await local(() => intents.close(req.recordId, req.reason));
      return create(CloseRecordResponseSchema, {});
    },
  };
}
