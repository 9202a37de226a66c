import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  type CertificateService,
  GetCertificateStatusResponseSchema,
} from "@evc-interop/gen/evc/national/v1/certificate_service_pb";
import { certificateMessage, type HubDeps, principalOf } from "./context.js";
import { refusalError } from "./errors.js";

export function certificateService(deps: HubDeps): ServiceImpl<typeof CertificateService> {
  return {
    async getCertificateStatus(req, ctx) {
      principalOf(ctx);
      const key = await deps.queries.personOfCertificate(req.certificateNumber);
      const state = key ? await deps.store.load(key) : undefined;
      const cert = state?.certificates[req.certificateNumber];
      if (!state || !cert) {
        throw refusalError("not_found", "NOT_FOUND", `no certificate ${req.certificateNumber}`, {
          field: "certificate_number",
        });
      }
      return create(GetCertificateStatusResponseSchema, {
        certificate: certificateMessage(cert),
        ownerProvinceCode: state.records[cert.recordId]?.owner ?? cert.province,
      });
    },
  };
}
