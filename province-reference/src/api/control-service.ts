import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { Identity } from "@evc-interop/gen/evc/common/v1/identity_pb";
import {
  CloseRecordResponseSchema,
  type ControlService,
  GetFeaturesResponseSchema,
  MigrateInResponseSchema,
  Profile,
  ReconcileResponseSchema,
  RecordDoseResponseSchema,
  RegisterRecordResponseSchema,
} from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import type { HubIntents } from "../hub-intents.js";
import type { ReconcileReport } from "../reconcile.js";
import type { ProvinceStore } from "../store/store.js";
import { local } from "./local-refusal.js";

export const IMPLEMENTATION = { name: "evc-province-reference", version: "0.1.0" };

/**
 * Province-initiated flows (the operator API of the reference province, which is also the
 * conformance kit's control contract): register a newborn, migrate someone in, record a dose,
 * close a record, reconcile now.
 */
export function controlService(
  store: ProvinceStore,
  intents: HubIntents,
  reconcileNow: () => Promise<ReconcileReport>,
): ServiceImpl<typeof ControlService> {
  return {
    getFeatures() {
      return create(GetFeaturesResponseSchema, {
        implementationName: IMPLEMENTATION.name,
        implementationVersion: IMPLEMENTATION.version,
        provinceCode: store.code,
        profiles: [Profile.CORE, Profile.INITIATOR, Profile.RECONCILIATION, Profile.RESILIENCE],
      });
    },

    async registerRecord(req) {
      if (!req.identity) throw new ConnectError("identity: is required", Code.InvalidArgument);
      const res = await local(() =>
        intents.register(req.identity as Identity, req.doses, req.knownAs),
      );
      return create(RegisterRecordResponseSchema, res);
    },

    async migrateIn(req) {
      if (!req.identity) throw new ConnectError("identity: is required", Code.InvalidArgument);
      const migrationId = await local(() => intents.migrateIn(req.identity as Identity));
      return create(MigrateInResponseSchema, { migrationId });
    },

    async recordDose(req) {
      const { identity, dose } = req;
      if (!identity || !dose) {
        throw new ConnectError(
          `${identity ? "dose" : "identity"}: is required`,
          Code.InvalidArgument,
        );
      }
      if (dose.administeredProvinceCode !== store.code) {
        throw new ConnectError(
          `dose.administered_province_code: must be this province (${store.code}), is "${dose.administeredProvinceCode}"`,
          Code.InvalidArgument,
        );
      }
      const res = await local(() => intents.recordDose(identity, dose));
      return create(RecordDoseResponseSchema, res);
    },

    async closeRecord(req) {
      await local(() => intents.close(req.recordId, req.reason));
      return create(CloseRecordResponseSchema, {});
    },

    async reconcile() {
      const r = await reconcileNow();
      return create(ReconcileResponseSchema, {
        watermark: r.watermark,
        compared: BigInt(r.compared),
        missingRepaired: BigInt(r.missing),
        extraRepaired: BigInt(r.extra),
        statusRepaired: BigInt(r.status),
        ownerRepaired: BigInt(r.owner),
        contentsRepaired: BigInt(r.contents),
        sequenceRepaired: BigInt(r.sequence),
      });
    },
  };
}
