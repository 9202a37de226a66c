import { current, iso } from "./decider-parts.js";
import { Refusal } from "./errors.js";
import type { DecideContext, HubEvent, PersonState } from "./types.js";

export interface ReissueCommand {
  kind: "reissue";
  caller: string;
  recordId: string;
  certificateNumber: string;
  reason: string;
}

/**
 * Reissue: the owner replaces the record's certificate in one step (a lost phone, a
 * compromised number). One valid certificate still (I2): the old one is revoked in the same
 * event that makes the new one NORMAL. A suspended certificate (an open migration) or a record
 * that is not ACTIVE is not reissued.
 */
export function decideReissue(
  state: PersonState,
  cmd: ReissueCommand,
  ctx: DecideContext,
): HubEvent[] {
  const r = state.records[cmd.recordId];
  if (!r || r.recordId !== current(state)?.recordId) {
    throw new Refusal("not_found", "RECORD_NOT_FOUND", `no open record ${cmd.recordId}`, {
      field: "record_id",
      recordId: cmd.recordId,
    });
  }
  if (r.owner !== cmd.caller) {
    throw new Refusal(
      "permission_denied",
      "WRONG_PROVINCE",
      `record ${r.recordId} is owned by ${r.owner}, not ${cmd.caller}`,
      { field: "record_id", ownerProvinceCode: r.owner, recordId: r.recordId },
    );
  }
  // Reissued to this number already (a retry with another key): answered as it was.
  if (r.certificateNumber === cmd.certificateNumber) return [];
  if (state.openMigrationId) {
    throw new Refusal(
      "failed_precondition",
      "MIGRATION_IN_PROGRESS",
      `record ${r.recordId} has open migration ${state.openMigrationId}: its certificate is suspended`,
      { migrationId: state.openMigrationId, recordId: r.recordId },
    );
  }
  if (r.status !== "ACTIVE") {
    throw new Refusal(
      "failed_precondition",
      "INVALID_STATE",
      `record ${r.recordId} is ${r.status}, not ACTIVE`,
      { field: "record_id", recordId: r.recordId },
    );
  }
  if (state.certificates[cmd.certificateNumber]) {
    throw new Refusal(
      "already_exists",
      "INVALID_FIELD",
      `certificate ${cmd.certificateNumber} was issued before: each number is issued once`,
      { field: "certificate_number" },
    );
  }
  return [
    {
      type: "CertificateReissued",
      data: {
        recordId: r.recordId,
        replaced: r.certificateNumber,
        certificateNumber: cmd.certificateNumber,
        reason: cmd.reason,
        by: cmd.caller,
        at: iso(ctx.now),
      },
    },
  ];
}
