import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorDetailSchema, ErrorReason } from "@evc-interop/gen/evc/common/v1/error_details_pb";
import {
  Refusal,
  type RefusalCode,
  type RefusalDetail,
  type RefusalReason,
} from "../domain/errors.js";

const CODES: Record<RefusalCode, Code> = {
  invalid_argument: Code.InvalidArgument,
  failed_precondition: Code.FailedPrecondition,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  aborted: Code.Aborted,
  permission_denied: Code.PermissionDenied,
  resource_exhausted: Code.ResourceExhausted,
};

/** A Connect error carrying an evc.common.v1.ErrorDetail for machines to read. */
export function refusalError(
  code: RefusalCode,
  reason: RefusalReason,
  message: string,
  detail: RefusalDetail = {},
): ConnectError {
  const d = create(ErrorDetailSchema, {
    reason: ErrorReason[reason],
    field: detail.field ?? "",
    description: message,
    ownerProvinceCode: detail.ownerProvinceCode ?? "",
    recordId: detail.recordId ?? "",
    migrationId: detail.migrationId ?? "",
    currentVersion: BigInt(detail.currentVersion ?? 0),
  });
  const text = detail.field ? `${detail.field}: ${message}` : message;
  return new ConnectError(text, CODES[code], undefined, [{ desc: ErrorDetailSchema, value: d }]);
}

/** Turns a business refusal into its Connect error; anything else passes through. */
export function toConnectError(err: unknown): unknown {
  if (err instanceof Refusal) return refusalError(err.code, err.reason, err.message, err.detail);
  return err;
}

export function invalid(field: string, message: string): ConnectError {
  return refusalError("invalid_argument", "INVALID_FIELD", message, { field });
}

export function denied(message: string, field?: string): ConnectError {
  return refusalError("permission_denied", "WRONG_PROVINCE", message, field ? { field } : {});
}
