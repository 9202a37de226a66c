import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { Client, ServiceImpl } from "@connectrpc/connect";
import { CloseReason } from "@evc-interop/gen/evc/common/v1/record_pb";
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
import type { DoseService } from "@evc-interop/gen/evc/national/v1/dose_service_pb";
import type { MigrationService } from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import type { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import type { ReconcileReport } from "../reconcile.js";
import type { ProvinceStore } from "../store/store.js";

export interface HubClients {
  records: Client<typeof RecordService>;
  migrations: Client<typeof MigrationService>;
  doses: Client<typeof DoseService>;
}

export const IMPLEMENTATION = { name: "evc-province-reference", version: "0.1.0" };

/**
 * Province-initiated flows (the operator API of the reference province, which is also the
 * conformance kit's control contract): register a newborn, migrate someone in, record a dose,
 * close a record, reconcile now.
 */
export function controlService(
  store: ProvinceStore,
  hub: HubClients,
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
      const number = store.newCertificateNumber();
      // The hub decides first (I1: refused if the person has a record anywhere).
      const res = await hub.records.registerRecord({
        idempotencyKey: `register-${number}`,
        identity: req.identity,
        certificateNumber: number,
        doses: req.doses,
      });
      const identity = req.identity;
      await store.sql.begin(async (tx) => {
        await tx`INSERT INTO records (record_id, id_type, id_number, identity, status, hub_version, last_sequence)
          VALUES (${res.recordId}, ${String(identity?.idType)}, ${identity?.idNumber ?? ""},
                  ${identity ? (store.identityJson(identity) as never) : null}, 'ACTIVE', 1, 0)`;
        await store.addDoses(tx, res.recordId, req.doses);
        await store.insertCertificate(tx, {
          number,
          recordId: res.recordId,
          status: "NORMAL",
          owner: store.code,
          hubVersion: 1,
          cause: "registered",
        });
      });
      return create(RegisterRecordResponseSchema, {
        recordId: res.recordId,
        certificateNumber: number,
      });
    },

    async migrateIn(req) {
      const res = await hub.migrations.requestMigration({
        idempotencyKey: `migrate-${randomUUID()}`,
        identity: req.identity,
      });
      if (store.broken === "issue-before-suspend-receipt" && req.identity) {
        // The bug: issue the new certificate optimistically, before the hub says the source suspended.
        const identity = req.identity;
        const recordId = res.migration?.recordId ?? randomUUID();
        await store.sql.begin(async (tx) => {
          await tx`INSERT INTO records (record_id, id_type, id_number, identity, status)
            VALUES (${recordId}, ${String(identity.idType)}, ${identity.idNumber},
                    ${store.identityJson(identity) as never}, 'ACTIVE') ON CONFLICT DO NOTHING`;
          await store.insertCertificate(tx, {
            number: store.newCertificateNumber(),
            recordId,
            status: "NORMAL",
            owner: store.code,
            hubVersion: 0,
            cause: "optimistic issuance",
          });
        });
      }
      return create(MigrateInResponseSchema, { migrationId: res.migration?.migrationId ?? "" });
    },

    async recordDose(req) {
      const identity = req.identity;
      const dose = req.dose;
      const local = identity ? await store.recordByIdentity(identity) : undefined;
      if (local && local.status === "ACTIVE" && dose) {
        // Our own record: the dose is ours to keep; the hub learns it with the record's contents.
        await store.sql.begin((tx) => store.addDoses(tx, local.record_id, [dose]));
        return create(RecordDoseResponseSchema, { reportedToHub: false });
      }
      await hub.doses.reportDose({ identity, dose });
      return create(RecordDoseResponseSchema, { reportedToHub: true });
    },

    async closeRecord(req) {
      await hub.records.closeRecord({ recordId: req.recordId, reason: req.reason });
      const reason = CloseReason[req.reason];
      await store.sql.begin(async (tx) => {
        await tx`UPDATE records SET status = 'CLOSED' WHERE record_id = ${req.recordId}`;
        const live = await tx<{ certificate_number: string }[]>`
          SELECT certificate_number FROM certificates WHERE record_id = ${req.recordId} AND status <> 'REVOKED'`;
        for (const c of live)
          await store.setCertificate(
            tx,
            c.certificate_number,
            "REVOKED",
            `closed: ${reason}`,
            0,
            reason,
          );
      });
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
      });
    },
  };
}
