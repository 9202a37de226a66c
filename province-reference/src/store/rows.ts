import { create, type JsonValue, toJson } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type Certificate,
  CertificateSchema,
  CertificateStatus,
  CloseReason,
  type Dose,
  DoseSchema,
} from "@evc-interop/gen/evc/common/v1/record_pb";
import type { CertStatus, RecStatus } from "../domain/decide.js";

/** The province's rows as the store reads and writes them. */

export interface RecordRow {
  record_id: string;
  identity: JsonValue | null;
  status: RecStatus;
  hub_version: number;
  last_sequence: number;
}

export interface CertificateRow {
  certificate_number: string;
  record_id: string;
  status: CertStatus;
  revocation_reason: string | null;
  owner_province: string;
  issued_at: Date;
  status_changed_at: Date;
  hub_version: number;
  /** The certificate that replaced it (a reissue). */
  replaced_by?: string | null;
}

export function certificateMessage(row: CertificateRow): Certificate {
  return create(CertificateSchema, {
    certificateNumber: row.certificate_number,
    recordId: row.record_id,
    provinceCode: row.certificate_number.slice(0, 6),
    status: CertificateStatus[row.status],
    revocationReason: row.revocation_reason
      ? CloseReason[row.revocation_reason as keyof typeof CloseReason]
      : 0,
    issuedAt: timestampFromDate(row.issued_at),
    statusChangedAt: timestampFromDate(row.status_changed_at),
    replacedBy: row.replaced_by ?? "",
  });
}

/** A dose as written: its JSON as text, its time as ISO text (both cast by the statement). */
export interface DoseRow {
  dose_id: string;
  record_id: string;
  dose: string;
  administered_at: string;
}

export function doseRow(recordId: string, d: Dose): DoseRow {
  return {
    dose_id: d.doseId,
    record_id: recordId,
    dose: JSON.stringify(toJson(DoseSchema, d)),
    administered_at: (d.administeredAt
      ? timestampDate(d.administeredAt)
      : new Date(0)
    ).toISOString(),
  };
}

/** A status change of a certificate (owner null keeps the current owner). */
export interface CertificateChange {
  number: string;
  status: CertStatus;
  cause: string;
  version: number;
  reason: string | null;
  owner: string | null;
}

export interface NewCertificate {
  number: string;
  recordId: string;
  status: CertStatus;
  owner: string;
  hubVersion: number;
  cause: string;
}
