import { createHmac } from "node:crypto";
import { create, fromJson, type JsonValue, toBinary, toJson } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Identity, IdentitySchema } from "@evc-interop/gen/evc/common/v1/identity_pb";
import {
  CertificateStatus,
  CloseReason,
  type Dose,
  DoseSchema,
  RecordContentsSchema,
  RecordStatus,
} from "@evc-interop/gen/evc/common/v1/record_pb";
import { type Directive, DirectiveSchema } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import type {
  CertificateStatus as CertStatusName,
  CloseReason as CloseReasonName,
  DirectiveIntent,
  DoseJson,
  IdentityJson,
  RecordStatus as RecordStatusName,
} from "./types.js";

/** Conversions between protobuf messages and the JSON forms events carry. */

export function doseToJson(d: Dose): DoseJson {
  return toJson(DoseSchema, d) as unknown as DoseJson;
}

export function doseFromJson(d: DoseJson): Dose {
  return fromJson(DoseSchema, d as unknown as JsonValue);
}

export function identityToJson(i: Identity): IdentityJson {
  return toJson(IdentitySchema, i, { alwaysEmitImplicit: true }) as unknown as IdentityJson;
}

export function identityFromJson(i: IdentityJson): Identity {
  return fromJson(IdentitySchema, i as unknown as JsonValue);
}

/**
 * The stable, non-reversible person key: HMAC-SHA256 over the document type and number under
 * the hub's secret. Name, birth date and sex do not enter it (they may be corrected).
 */
export function personKey(secret: string, identity: Identity): string {
  return createHmac("sha256", secret)
    .update(`${identity.idType}:${identity.idNumber.toUpperCase()}`)
    .digest("hex");
}

export const certificateStatusToProto: Record<CertStatusName, CertificateStatus> = {
  NORMAL: CertificateStatus.NORMAL,
  SUSPENDED: CertificateStatus.SUSPENDED,
  REVOKED: CertificateStatus.REVOKED,
};

export const recordStatusToProto: Record<RecordStatusName, RecordStatus> = {
  ACTIVE: RecordStatus.ACTIVE,
  MIGRATED_OUT: RecordStatus.MIGRATED_OUT,
  CLOSED: RecordStatus.CLOSED,
};

export const closeReasonToProto: Record<CloseReasonName, CloseReason> = {
  DELETED: CloseReason.DELETED,
  MERGED: CloseReason.MERGED,
  DECEASED: CloseReason.DECEASED,
  MIGRATION_ABORTED: CloseReason.MIGRATION_ABORTED,
  REISSUED: CloseReason.REISSUED,
};

export function closeReasonFromProto(r: CloseReason): CloseReasonName {
  const name = CloseReason[r] as CloseReasonName | undefined;
  if (!name || !(name in closeReasonToProto)) throw new Error(`unknown close reason ${r}`);
  return name;
}

/** Builds the bus message of a directive decided in an event. */
export function directiveMessage(
  intent: DirectiveIntent,
  causation: { eventId: string; streamVersion: number; at: Date },
): Directive {
  const a = intent.action;
  let action: Directive["action"];
  switch (a.kind) {
    case "suspendForMigration":
      action = {
        case: a.kind,
        value: {
          $typeName: "evc.directive.v1.SuspendForMigration",
          migrationId: a.migrationId,
          targetProvinceCode: a.targetProvince,
        },
      };
      break;
    case "activateMigratedRecord":
      action = {
        case: a.kind,
        value: {
          $typeName: "evc.directive.v1.ActivateMigratedRecord",
          migrationId: a.migrationId,
          sourceProvinceCode: a.sourceProvince,
          record: create(RecordContentsSchema, {
            recordId: intent.recordId,
            identity: identityFromJson(a.identity),
            doses: a.doses.map(doseFromJson),
          }),
        },
      };
      break;
    case "appendDose":
      action = {
        case: a.kind,
        value: { $typeName: "evc.directive.v1.AppendDose", dose: doseFromJson(a.dose) },
      };
      break;
    case "restoreRecord":
      action = {
        case: a.kind,
        value: {
          $typeName: "evc.directive.v1.RestoreRecord",
          migrationId: a.migrationId,
          doses: a.doses.map(doseFromJson),
        },
      };
      break;
    case "revokeCertificate":
      action = {
        case: a.kind,
        value: {
          $typeName: "evc.directive.v1.RevokeCertificate",
          reason: closeReasonToProto[a.reason],
          mergedIntoRecordId: a.mergedIntoRecordId ?? "",
        },
      };
      break;
  }
  return create(DirectiveSchema, {
    directiveId: intent.directiveId,
    targetProvinceCode: intent.province,
    correlationId: intent.correlationId,
    causationEventId: causation.eventId,
    issuedAt: timestampFromDate(causation.at),
    recordId: intent.recordId,
    recordSequence: BigInt(intent.recordSequence),
    attempt: intent.attempt,
    streamVersion: BigInt(causation.streamVersion),
    action,
  });
}

export function encodeDirective(d: Directive): Uint8Array {
  return toBinary(DirectiveSchema, d);
}
