import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  GetCertificateStatusByIdentityResponseSchema,
  GetCertificateStatusResponseSchema,
  GetRecordResponseSchema,
  type ProvinceService,
  WatchCertificateResponseSchema,
} from "@evc-interop/gen/evc/province/v1/province_service_pb";
import { SCOPE_HOLDER, SCOPE_RECORDS } from "@evc-interop/runtime";
import type { AccessLog, ReadOutcome } from "../store/access-log.js";
import { type CertificateRow, certificateMessage } from "../store/rows.js";
import type { ProvinceStore } from "../store/store.js";
import type { CertificateChanges } from "../watch.js";
import { type Reader, readerKey } from "./reader-auth.js";

function notFound(field: string, what: string): ConnectError {
  return new ConnectError(`${field}: no ${what} at this province`, Code.NotFound);
}

/** The reader the auth interceptor verified (it refuses guarded calls without one). */
function readerOf(values: { get: (k: typeof readerKey) => Reader | undefined }): Reader {
  const r = values.get(readerKey);
  if (!r) throw new ConnectError("a reader token is required", Code.Unauthenticated);
  return r;
}

/** The scope a read of person-level data is made under, or PermissionDenied. */
function readScope(r: Reader): typeof SCOPE_RECORDS | typeof SCOPE_HOLDER {
  if (r.scopes.has(SCOPE_RECORDS)) return SCOPE_RECORDS;
  if (r.scopes.has(SCOPE_HOLDER)) return SCOPE_HOLDER;
  throw new ConnectError(
    `this token has neither scope ${SCOPE_RECORDS} nor ${SCOPE_HOLDER}`,
    Code.PermissionDenied,
  );
}

/** A holder is told the same for a record that is not theirs as for one that does not exist. */
const notYours = (field: string) =>
  new ConnectError(`${field}: this token reads only its holder's record`, Code.PermissionDenied);

/**
 * A certificate for a caller who may not know whose it is: status, validity and issuing
 * province, no record id (the key to the person's data).
 */
function publicCertificate(row: CertificateRow, reader: Reader | undefined) {
  const c = certificateMessage(row);
  const mayLink =
    reader?.scopes.has(SCOPE_RECORDS) === true || reader?.holderRecord === row.record_id;
  if (!mayLink) c.recordId = "";
  return c;
}

/** The phone-facing read API every province exposes (answers from the province store). */
export function provinceService(
  store: ProvinceStore,
  changes: CertificateChanges,
  accessLog: AccessLog,
): ServiceImpl<typeof ProvinceService> {
  const logRead = (
    r: Reader,
    scope: string,
    method: string,
    recordId: string | undefined,
    outcome: ReadOutcome,
  ) => accessLog.record({ caller: r.caller, scope, purpose: r.purpose, method, recordId, outcome });

  return {
    async getCertificateStatus(req, ctx) {
      const row = await store.cachedCertificate(req.certificateNumber);
      if (!row) throw notFound("certificate_number", `certificate ${req.certificateNumber}`);
      return create(GetCertificateStatusResponseSchema, {
        certificate: publicCertificate(row, ctx.values.get(readerKey)),
      });
    },

    async getCertificateStatusByIdentity(req, ctx) {
      const reader = readerOf(ctx.values);
      const scope = readScope(reader);
      if (!req.identity) throw new ConnectError("identity: is required", Code.InvalidArgument);
      const method = "GetCertificateStatusByIdentity";
      const row = await store.certificateByIdentity(req.identity);
      if (scope === SCOPE_HOLDER && row?.record_id !== reader.holderRecord) {
        await logRead(reader, scope, method, row?.record_id, "PERMISSION_DENIED");
        throw notYours("identity");
      }
      if (!row) {
        await logRead(reader, scope, method, undefined, "NOT_FOUND");
        throw notFound("identity", "certificate for this person");
      }
      await logRead(reader, scope, method, row.record_id, "OK");
      return create(GetCertificateStatusByIdentityResponseSchema, {
        certificate: certificateMessage(row),
      });
    },

    async *watchCertificate(req, ctx) {
      const number = req.certificateNumber;
      // Subscribe before the first read so no change between the two is missed.
      const queue: string[] = [];
      let wake: (() => void) | undefined;
      const unsubscribe = changes.subscribe(number, (n) => {
        queue.push(n);
        wake?.();
      });
      try {
        const reader = ctx.values.get(readerKey);
        let last: CertificateRow | undefined = await store.certificate(number);
        if (!last) throw notFound("certificate_number", `certificate ${number}`);
        yield create(WatchCertificateResponseSchema, {
          certificate: publicCertificate(last, reader),
        });
        while (!ctx.signal.aborted) {
          if (queue.length === 0) {
            await new Promise<void>((resolve) => {
              wake = resolve;
              ctx.signal.addEventListener("abort", () => resolve(), { once: true });
            });
            wake = undefined;
            continue;
          }
          queue.length = 0;
          const now = await store.certificate(number);
          if (!now) break; // removed by reconciliation: the stream ends
          if (now.status !== last.status || now.owner_province !== last.owner_province) {
            last = now;
            yield create(WatchCertificateResponseSchema, {
              certificate: publicCertificate(now, reader),
            });
          }
        }
      } finally {
        unsubscribe();
      }
    },

    async getRecord(req, ctx) {
      const reader = readerOf(ctx.values);
      const scope = readScope(reader);
      if (scope === SCOPE_HOLDER && req.recordId !== reader.holderRecord) {
        await logRead(reader, scope, "GetRecord", req.recordId, "PERMISSION_DENIED");
        throw notYours("record_id");
      }
      const r = await store.record(req.recordId);
      if (!r) {
        await logRead(reader, scope, "GetRecord", req.recordId, "NOT_FOUND");
        throw notFound("record_id", `record ${req.recordId}`);
      }
      await logRead(reader, scope, "GetRecord", req.recordId, "OK");
      return create(GetRecordResponseSchema, {
        record: r.contents,
        status: r.status,
        certificate: r.certificate ? certificateMessage(r.certificate) : undefined,
      });
    },
  };
}
