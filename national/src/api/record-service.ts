import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { Identity } from "@evc-interop/gen/evc/common/v1/identity_pb";
import { CloseReason } from "@evc-interop/gen/evc/common/v1/record_pb";
import {
  CloseRecordResponseSchema,
  LocateRecordResponseSchema,
  type RecordService,
  RegisterRecordRequestSchema,
  RegisterRecordResponseSchema,
} from "@evc-interop/gen/evc/national/v1/record_service_pb";
import {
  closeReasonFromProto,
  doseToJson,
  identityToJson,
  recordStatusToProto,
} from "../domain/codec.js";
import type { PersonState } from "../domain/types.js";
import {
  callerProvince,
  certificateMessage,
  documentKeyOf,
  type HubDeps,
  keyOf,
  linkedPerson,
  logRead,
  refuseOthersCertificate,
} from "./context.js";
import { denied, invalid, refusalError } from "./errors.js";
import { codecOf, requestHash } from "./util.js";

/**
 * Whom a registration is for: the person the identity's document belongs to; or, for a
 * document the hub does not know, the person one of the known_as documents belongs to (the new
 * document is then linked to them); else a new person keyed by the document.
 */
async function registrant(
  deps: HubDeps,
  identity: Identity,
  knownAs: Identity[],
): Promise<{ key: string; link?: { documentKey: string } }> {
  const doc = documentKeyOf(deps, identity);
  const person = await linkedPerson(deps, doc);
  // Linked a moment ago (a retry, a concurrent call with the same evidence): answered as linked.
  if (person)
    return person !== doc && knownAs.length > 0
      ? { key: person, link: { documentKey: doc } }
      : { key: person };
  for (const [i, other] of knownAs.entries()) {
    const found = await linkedPerson(deps, documentKeyOf(deps, other, `known_as[${i}]`));
    if (found) return { key: found, link: { documentKey: doc } };
  }
  return { key: doc };
}

function currentRecord(state: PersonState) {
  return state.currentRecordId ? state.records[state.currentRecordId] : undefined;
}

export function recordService(deps: HubDeps): ServiceImpl<typeof RecordService> {
  return {
    async registerRecord(req, ctx) {
      const caller = callerProvince(ctx);
      if (!req.certificateNumber.startsWith(`${caller}-`)) {
        throw invalid(
          "certificate_number",
          `must start with the caller's province code ${caller}-`,
        );
      }
      const identity = req.identity;
      if (!identity) throw invalid("identity", "is required");
      const { key, link } = await registrant(deps, identity, req.knownAs);
      await refuseOthersCertificate(deps, req.certificateNumber, key, "certificate_number");
      const foreign = req.doses.findIndex((d) => d.administeredProvinceCode !== caller);
      if (foreign >= 0) {
        throw denied(
          `a province registers only doses it gave: administered_province_code is ${req.doses[foreign]?.administeredProvinceCode}, caller is ${caller}`,
          `doses[${foreign}].administered_province_code`,
        );
      }
      const { response } = await deps.store.execute(
        key,
        {
          kind: "register",
          caller,
          identity: identityToJson(identity),
          certificateNumber: req.certificateNumber,
          doses: req.doses.map(doseToJson),
          ...(link ? { link } : {}),
        },
        (state, events) => {
          const record = currentRecord(state);
          const cert = record ? state.certificates[record.certificateNumber] : undefined;
          return create(RegisterRecordResponseSchema, {
            recordId: record?.recordId ?? "",
            certificate: cert ? certificateMessage(cert) : undefined,
            linked: link !== undefined && !events.some((e) => e.type === "RecordRegistered"),
          });
        },
        {
          idempotency: {
            province: caller,
            key: req.idempotencyKey,
            requestHash: requestHash(RegisterRecordRequestSchema, req),
          },
          ...codecOf(RegisterRecordResponseSchema),
        },
      );
      return response;
    },

    async locateRecord(req, ctx) {
      callerProvince(ctx);
      const key = await keyOf(deps, req.identity);
      await logRead(deps, ctx, key);
      const state = await deps.store.load(key);
      const record = currentRecord(state);
      if (!record) {
        throw refusalError("not_found", "RECORD_NOT_FOUND", "person has no record", {
          field: "identity",
        });
      }
      const cert = state.certificates[record.certificateNumber];
      return create(LocateRecordResponseSchema, {
        recordId: record.recordId,
        ownerProvinceCode: record.owner,
        status: recordStatusToProto[record.status],
        certificate: cert ? certificateMessage(cert) : undefined,
        openMigrationId: state.openMigrationId ?? "",
      });
    },

    async closeRecord(req, ctx) {
      const caller = callerProvince(ctx);
      if (req.reason === CloseReason.MERGED && !req.mergedIntoRecordId) {
        throw invalid("merged_into_record_id", "is required when reason is CLOSE_REASON_MERGED");
      }
      const key = await deps.queries.personOfRecord(req.recordId);
      if (!key) {
        throw refusalError("not_found", "RECORD_NOT_FOUND", `no record ${req.recordId}`, {
          field: "record_id",
          recordId: req.recordId,
        });
      }
      const cmd = {
        kind: "close" as const,
        caller,
        recordId: req.recordId,
        reason: closeReasonFromProto(req.reason),
        ...(req.mergedIntoRecordId ? { mergedIntoRecordId: req.mergedIntoRecordId } : {}),
      };
      const { response } = await deps.store.execute(key, cmd, (state) => {
        const record = state.records[req.recordId];
        const cert = record ? state.certificates[record.certificateNumber] : undefined;
        return create(CloseRecordResponseSchema, {
          certificate: cert ? certificateMessage(cert) : undefined,
        });
      });
      return response;
    },
  };
}
