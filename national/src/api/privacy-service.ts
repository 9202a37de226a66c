import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  EraseIdentityResponseSchema,
  type PrivacyService,
} from "@evc-interop/gen/evc/national/v1/privacy_service_pb";
import { eraseIdentity } from "../store/erasure.js";
import { type HubDeps, keyOf, principalOf } from "./context.js";
import { refusalError } from "./errors.js";

/** Erasure of a person's identity (crypto-shredding); national operators only. */
export function privacyService(deps: HubDeps): ServiceImpl<typeof PrivacyService> {
  return {
    async eraseIdentity(req, ctx) {
      const p = principalOf(ctx);
      if (p.kind !== "operator")
        throw refusalError(
          "permission_denied",
          "WRONG_PROVINCE",
          "erasure is for national operators",
        );
      const key = await keyOf(deps, req.identity);
      const done = await eraseIdentity(deps.sql, key, p.subject, req.reason, new Date());
      return create(EraseIdentityResponseSchema, {
        streamId: key,
        position: BigInt(done.position),
        erasedAt: timestampFromDate(done.erasedAt),
      });
    },
  };
}
