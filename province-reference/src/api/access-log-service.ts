import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  type AccessLogService,
  ListReadsResponseSchema,
  ReadSchema,
} from "@evc-interop/gen/evc/province/v1/access_log_service_pb";
import { SCOPE_ACCESS_LOG } from "@evc-interop/runtime";
import type { AccessLog } from "../store/access-log.js";
import { readerKey } from "./reader-auth.js";

/** Who read what at this province, for an auditor (scope `access-log:read`). */
export function accessLogService(log: AccessLog): ServiceImpl<typeof AccessLogService> {
  return {
    async listReads(req, ctx) {
      const reader = ctx.values.get(readerKey);
      if (!reader) throw new ConnectError("a reader token is required", Code.Unauthenticated);
      if (!reader.scopes.has(SCOPE_ACCESS_LOG))
        throw new ConnectError(
          `the access log needs scope ${SCOPE_ACCESS_LOG}`,
          Code.PermissionDenied,
        );
      const limit = req.pageSize || 100;
      const rows = await log.list({
        recordId: req.recordId,
        caller: req.caller,
        limit,
        before: req.beforePosition,
      });
      const last = rows.at(-1);
      return create(ListReadsResponseSchema, {
        reads: rows.map((r) =>
          create(ReadSchema, {
            position: BigInt(r.position),
            readAt: timestampFromDate(r.read_at),
            caller: r.caller,
            scope: r.scope,
            purpose: r.purpose,
            method: r.method,
            recordId: r.record_id ?? "",
            outcome: r.outcome,
          }),
        ),
        nextPosition: rows.length === limit && last ? BigInt(last.position) : 0n,
      });
    },
  };
}
