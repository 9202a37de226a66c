import { create } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import type { Identity } from "@evc-interop/gen/evc/common/v1/identity_pb";
import type { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import {
  type GetImmunizationHistoryResponse,
  GetImmunizationHistoryResponseSchema,
} from "@evc-interop/gen/evc/province/v1/clinic_service_pb";
import { SCOPE_WRITE } from "@evc-interop/runtime";
import type { AccessLog, ReadOutcome } from "../store/access-log.js";
import type { ProvinceStore } from "../store/store.js";
import type { Reader } from "./reader-auth.js";

const METHOD = "GetImmunizationHistory";

/**
 * A person's immunization history for a clinic here (#28 story 5): this province's own record
 * when it owns the person's, else the hub's (RecordService.GetImmunizationHistory, with the
 * clinic's purpose: the hub logs the read too). Every read is written to this province's
 * access log before the answer leaves.
 */
export class ImmunizationHistory {
  constructor(
    private readonly code: string,
    private readonly store: ProvinceStore,
    private readonly accessLog: AccessLog,
    private readonly hub: Client<typeof RecordService>,
  ) {}

  async read(
    identity: Identity,
    reader: Reader,
    purpose: string,
  ): Promise<GetImmunizationHistoryResponse> {
    const log = (recordId: string | undefined, outcome: ReadOutcome) =>
      this.accessLog.record({
        caller: reader.caller,
        scope: SCOPE_WRITE,
        purpose,
        method: METHOD,
        recordId,
        outcome,
      });
    const own = await this.store.activeRecordByIdentity(identity);
    if (own) {
      await log(own.recordId, "OK");
      return create(GetImmunizationHistoryResponseSchema, {
        recordId: own.recordId,
        ownerProvinceCode: this.code,
        doses: own.doses,
        source: "province",
      });
    }
    try {
      const h = await this.hub.getImmunizationHistory(
        { identity },
        { headers: { "evc-purpose": purpose } },
      );
      await log(h.recordId, "OK");
      return create(GetImmunizationHistoryResponseSchema, {
        recordId: h.recordId,
        ownerProvinceCode: h.ownerProvinceCode,
        doses: h.doses,
        source: "hub",
      });
    } catch (err) {
      const e = ConnectError.from(err);
      if (e.code === Code.NotFound) {
        await log(undefined, "NOT_FOUND");
        throw new ConnectError(
          "identity: no record of this person here or at the hub",
          Code.NotFound,
        );
      }
      throw new ConnectError(
        `the hub could not be asked for the history (${Code[e.code]}): try again`,
        Code.Unavailable,
      );
    }
  }
}
