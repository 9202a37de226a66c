import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  GetCertificateStatusByIdentityResponseSchema,
  GetCertificateStatusResponseSchema,
  GetRecordResponseSchema,
  type ProvinceService,
  WatchCertificateResponseSchema,
} from "@evc-interop/gen/evc/province/v1/province_service_pb";
import { type CertificateRow, certificateMessage, type ProvinceStore } from "../store/store.js";
import type { CertificateChanges } from "../watch.js";

function notFound(field: string, what: string): ConnectError {
  return new ConnectError(`${field}: no ${what} at this province`, Code.NotFound);
}

/** The phone-facing read API every province exposes (answers from the province store). */
export function provinceService(
  store: ProvinceStore,
  changes: CertificateChanges,
): ServiceImpl<typeof ProvinceService> {
  return {
    async getCertificateStatus(req) {
      const row = await store.cachedCertificate(req.certificateNumber);
      if (!row) throw notFound("certificate_number", `certificate ${req.certificateNumber}`);
      return create(GetCertificateStatusResponseSchema, { certificate: certificateMessage(row) });
    },

    async getCertificateStatusByIdentity(req) {
      if (!req.identity) throw new ConnectError("identity: is required", Code.InvalidArgument);
      const row = await store.certificateByIdentity(req.identity);
      if (!row) throw notFound("identity", "certificate for this person");
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
        let last: CertificateRow | undefined = await store.certificate(number);
        if (!last) throw notFound("certificate_number", `certificate ${number}`);
        yield create(WatchCertificateResponseSchema, { certificate: certificateMessage(last) });
        if (store.broken === "watch-never-pushes") {
          await new Promise<void>((resolve) =>
            ctx.signal.addEventListener("abort", () => resolve(), { once: true }),
          );
          return;
        }
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
            yield create(WatchCertificateResponseSchema, { certificate: certificateMessage(now) });
          }
        }
      } finally {
        unsubscribe();
      }
    },

    async getRecord(req) {
      const r = await store.record(req.recordId);
      if (!r) throw notFound("record_id", `record ${req.recordId}`);
      return create(GetRecordResponseSchema, {
        record: r.contents,
        status: r.status,
        certificate: r.certificate ? certificateMessage(r.certificate) : undefined,
      });
    },
  };
}
