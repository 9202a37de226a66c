/**
 * Refusals decided by business rules. Deciders throw these; the API layer turns them into
 * Connect errors with an evc.common.v1.ErrorDetail attached (see api/errors.ts).
 */
export type RefusalCode =
  | "invalid_argument"
  | "failed_precondition"
  | "not_found"
  | "already_exists"
  | "aborted"
  | "permission_denied"
  | "resource_exhausted";

export type RefusalReason =
  | "INVALID_FIELD"
  | "RECORD_EXISTS"
  | "RECORD_NOT_FOUND"
  | "MIGRATION_IN_PROGRESS"
  | "IDEMPOTENCY_KEY_REUSED"
  | "WRONG_PROVINCE"
  | "STALE_ATTEMPT"
  | "VERSION_CONFLICT"
  | "INVALID_STATE"
  | "ALREADY_OWNER"
  | "NOT_FOUND"
  | "RECORD_FULL"
  | "IDENTITY_MISMATCH";

export interface RefusalDetail {
  field?: string;
  ownerProvinceCode?: string;
  recordId?: string;
  migrationId?: string;
  currentVersion?: number;
}

export class Refusal extends Error {
  constructor(
    readonly code: RefusalCode,
    readonly reason: RefusalReason,
    message: string,
    readonly detail: RefusalDetail = {},
  ) {
    super(message);
    this.name = "Refusal";
  }
}
