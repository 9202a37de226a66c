import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { Identity } from "@evc-interop/gen/evc/common/v1/identity_pb";
import { CloseReason } from "@evc-interop/gen/evc/common/v1/record_pb";
import {
  CloseRecordResponseSchema,
  GetImmunizationHistoryResponseSchema,
  LocateRecordResponseSchema,
  type RecordService,
  RegisterRecordRequestSchema,
  RegisterRecordResponseSchema,
  ReissueCertificateRequestSchema,
  ReissueCertificateResponseSchema,
} from "@evc-interop/gen/evc/national/v1/record_service_pb";
import {
  closeReasonFromProto,
  doseFromJson,
  doseToJson,
  identityToJson,
  recordStatusToProto,
} from "../domain/codec.js";
import type { DocumentToLink } from "../domain/registration.js";
import type { PersonState } from "../domain/types.js";
import {
  callerProvince,
  certificateMessage,
  documentKeyOf,
  type HubDeps,
  keyOf,
  linkedPersons,
  logRead,
  refuseOthersCertificate,
} from "./context.js";
import { denied, invalid, refusalError } from "./errors.js";
import { codecOf, requestHash } from "./util.js";

/**
 * Whom a registration is for, and which of its documents the hub does not know yet: the person
 * the identity's document belongs to; else the person a known_as document belongs to (by the
 * province's evidence); else a new person keyed by the identity's document. Documents of two
 * persons in one request are refused: those persons must be merged first.
 */
async function registrant(
  deps: HubDeps,
  identity: Identity,
  knownAs: Identity[],
): Promise<{ key: string; byEvidence: boolean; links: DocumentToLink[] }> {
  const doc = documentKeyOf(deps, identity);
  const docs = new Map<string, DocumentToLink>([
    [doc, { documentKey: doc, identity: identityToJson(identity), field: "identity" }],
  ]);
  for (const [i, other] of knownAs.entries()) {
    const field = `known_as[${i}]`;
    const documentKey = documentKeyOf(deps, other, field);
    if (!docs.has(documentKey))
      docs.set(documentKey, { documentKey, identity: identityToJson(other), field });
  }
  const owners = await linkedPersons(deps, [...docs.keys()]);
  const persons = [...new Set(owners.values())];
  const unknown = [...docs.values()].filter((d) => !owners.has(d.documentKey));
  const person = owners.get(doc) ?? persons[0];
  if (persons.length > 1) {
    const other = [...docs.values()].find((d) => {
      const owner = owners.get(d.documentKey);
      return owner !== undefined && owner !== person;
    });
    throw refusalError(
      "failed_precondition",
      "INVALID_STATE",
      `${other?.field} belongs to another person at the hub than the rest of the request: two records of one person must be merged first`,
      { field: other?.field ?? "known_as" },
    );
  }
  // A new person: identity's document is its key; the known_as ones are linked to it.
  if (!person)
    return { key: doc, byEvidence: false, links: unknown.filter((d) => d.documentKey !== doc) };
  return { key: person, byEvidence: person !== doc, links: unknown };
}

function currentRecord(state: PersonState) {
  return state.currentRecordId ? state.records[state.currentRecordId] : undefined;
}

/** The person's open record, the read logged first (who, what for); NotFound if none. */
async function readOpenRecord(deps: HubDeps, ctx: HandlerContext, identity: Identity | undefined) {
  const key = await keyOf(deps, identity);
  await logRead(deps, ctx, key);
  const state = await deps.store.load(key);
  const record = currentRecord(state);
  if (!record) {
    throw refusalError("not_found", "RECORD_NOT_FOUND", "person has no record", {
      field: "identity",
    });
  }
  return { state, record };
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
      const { key, byEvidence, links } = await registrant(deps, identity, req.knownAs);
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
          byEvidence,
          links,
        },
        (state, events) => {
          const record = currentRecord(state);
          const cert = record ? state.certificates[record.certificateNumber] : undefined;
          return create(RegisterRecordResponseSchema, {
            recordId: record?.recordId ?? "",
            certificate: cert ? certificateMessage(cert) : undefined,
            linked: byEvidence && !events.some((e) => e.type === "RecordRegistered"),
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
      const { state, record } = await readOpenRecord(deps, ctx, req.identity);
      const cert = state.certificates[record.certificateNumber];
      return create(LocateRecordResponseSchema, {
        recordId: record.recordId,
        ownerProvinceCode: record.owner,
        status: recordStatusToProto[record.status],
        certificate: cert ? certificateMessage(cert) : undefined,
        openMigrationId: state.openMigrationId ?? "",
      });
    },

    async getImmunizationHistory(req, ctx) {
      callerProvince(ctx);
      // Purpose-bound: a history is read for a reason the access log keeps, never by default.
      if (!ctx.requestHeader.get("evc-purpose"))
        throw invalid(
          "evc-purpose",
          "header is required: name what the history is read for (e.g. care)",
        );
      const { record } = await readOpenRecord(deps, ctx, req.identity);
      const doses = [...record.doses].sort((a, b) =>
        (a.administeredAt ?? "") < (b.administeredAt ?? "") ? -1 : 1,
      );
      return create(GetImmunizationHistoryResponseSchema, {
        recordId: record.recordId,
        ownerProvinceCode: record.owner,
        status: recordStatusToProto[record.status],
        doses: doses.map(doseFromJson),
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

    async reissueCertificate(req, ctx) {
      const caller = callerProvince(ctx);
      if (!req.certificateNumber.startsWith(`${caller}-`))
        throw invalid(
          "certificate_number",
          `must start with the caller's province code ${caller}-`,
        );
      const key = await deps.queries.personOfRecord(req.recordId);
      if (!key) {
        throw refusalError("not_found", "RECORD_NOT_FOUND", `no record ${req.recordId}`, {
          field: "record_id",
          recordId: req.recordId,
        });
      }
      await refuseOthersCertificate(deps, req.certificateNumber, key, "certificate_number");
      const { response } = await deps.store.execute(
        key,
        {
          kind: "reissue",
          caller,
          recordId: req.recordId,
          certificateNumber: req.certificateNumber,
          reason: req.reason,
        },
        (state) => {
          const fresh = state.certificates[req.certificateNumber];
          const old = Object.values(state.certificates).find(
            (c) => c.replacedBy === req.certificateNumber,
          );
          return create(ReissueCertificateResponseSchema, {
            certificate: fresh ? certificateMessage(fresh) : undefined,
            replaced: old ? certificateMessage(old) : undefined,
          });
        },
        {
          idempotency: {
            province: caller,
            key: req.idempotencyKey,
            requestHash: requestHash(ReissueCertificateRequestSchema, req),
          },
          ...codecOf(ReissueCertificateResponseSchema),
        },
      );
      return response;
    },
  };
}
