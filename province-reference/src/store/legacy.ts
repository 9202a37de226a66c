import { toJson } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type Identity, IdentitySchema } from "@evc-interop/gen/evc/common/v1/identity_pb";
import { type Dose, DoseSchema } from "@evc-interop/gen/evc/common/v1/record_pb";
import type { Sql } from "postgres";

/** A record as the province held it before the hub existed. */
export interface LegacyRecord {
  /** A UUID (map other ids to UUIDs when loading). */
  recordId: string;
  identity: Identity;
  /** Its NORMAL certificate, prefixed with the province code. */
  certificateNumber: string;
  doses: Dose[];
}

/**
 * Writes records the province held before the hub existed into its schema, ACTIVE with a NORMAL
 * certificate, pending onboarding (records.onboarding): the shape a province's own data
 * migration produces (docs/onboarding.md), multi-row, in one transaction. Then
 * `evc-province onboard` loads them into the hub.
 */
export async function insertLegacyRecords(
  sql: Sql,
  code: string,
  records: readonly LegacyRecord[],
): Promise<void> {
  if (records.length === 0) return;
  const doses = records.flatMap((r) => r.doses.map((d) => ({ recordId: r.recordId, d })));
  await sql.begin(async (tx) => {
    await tx`
      INSERT INTO records (record_id, id_type, id_number, identity, status, onboarding)
      SELECT id, t, n, i::jsonb, 'ACTIVE', 'pending'
      FROM unnest(${records.map((r) => r.recordId)}::text[],
        ${records.map((r) => String(r.identity.idType))}::text[],
        ${records.map((r) => r.identity.idNumber)}::text[],
        ${records.map((r) => JSON.stringify(toJson(IdentitySchema, r.identity)))}::text[])
        AS u(id, t, n, i)`;
    await tx`
      INSERT INTO certificates (certificate_number, record_id, status, owner_province, issued_at, status_changed_at)
      SELECT c, id, 'NORMAL', ${code}, now(), now()
      FROM unnest(${records.map((r) => r.certificateNumber)}::text[],
        ${records.map((r) => r.recordId)}::text[]) AS u(c, id)`;
    if (doses.length > 0)
      await tx`
        INSERT INTO doses (dose_id, record_id, dose, administered_at)
        SELECT id, r, d::jsonb, at
        FROM unnest(${doses.map((x) => x.d.doseId)}::text[], ${doses.map((x) => x.recordId)}::text[],
          ${doses.map((x) => JSON.stringify(toJson(DoseSchema, x.d)))}::text[],
          ${doses.map((x) => (x.d.administeredAt ? timestampDate(x.d.administeredAt) : new Date(0)).toISOString())}::timestamptz[])
          AS u(id, r, d, at)`;
  });
}
