import { create, fromBinary } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  type Directive,
  DirectiveSchema,
  type Receipt,
  ReceiptOutcome,
  ReceiptSchema,
} from "@evc-interop/gen/evc/directive/v1/directive_pb";
import {
  type DirectiveService,
  DirectiveState,
  type DirectiveStatus,
  DirectiveStatusSchema,
  ListDirectivesResponseSchema,
  ReceiptDisposition,
  type ReceiptResult,
  ReceiptResultSchema,
  SubmitReceiptsResponseSchema,
} from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import type { DirectiveRow } from "../store/queries.js";
import { directiveRows, type ReceiptOfBatch, recordReceipts } from "../store/receipts.js";
import { callerProvince, type HubDeps, principalOf, refuseOthersCertificates } from "./context.js";
import { denied } from "./errors.js";
import { decodePageToken, encodePageToken } from "./page-token.js";

/** The directive or receipt without the identity of the person whose record it carries. */
function withoutIdentity<T extends Directive | Receipt>(m: T): T {
  const record =
    m.$typeName === "evc.directive.v1.Directive"
      ? m.action.case === "activateMigratedRecord"
        ? m.action.value.record
        : undefined
      : m.result.case === "suspended"
        ? m.result.value.record
        : undefined;
  if (record) record.identity = undefined;
  return m;
}

/**
 * A directive's outbox row as the contract shows it. A viewer sees what moves, not whom: the
 * identity a record's contents carry is left out.
 */
export function directiveStatus(r: DirectiveRow, viewer: boolean): DirectiveStatus {
  const shown = <T extends Directive | Receipt>(m: T): T => (viewer ? withoutIdentity(m) : m);
  return create(DirectiveStatusSchema, {
    directive: shown(fromBinary(DirectiveSchema, r.payload)),
    state: DirectiveState[r.state as keyof typeof DirectiveState],
    publishCount: r.publish_count,
    lastPublishedAt: r.last_published_at ? timestampFromDate(r.last_published_at) : undefined,
    receiptOutcome: r.receipt_outcome
      ? ReceiptOutcome[r.receipt_outcome as keyof typeof ReceiptOutcome]
      : ReceiptOutcome.UNSPECIFIED,
    receipt: r.receipt ? shown(fromBinary(ReceiptSchema, r.receipt)) : undefined,
  });
}

export function directiveService(deps: HubDeps): ServiceImpl<typeof DirectiveService> {
  return {
    async submitReceipts(req, ctx) {
      const caller = callerProvince(ctx);
      const rows = await directiveRows(
        deps.store,
        req.receipts.map((r) => r.directiveId),
      );
      // I7 first: one receipt for another province's directive fails the whole call.
      req.receipts.forEach((r, i) => {
        const row = rows.get(r.directiveId);
        if (row && row.province !== caller) {
          throw denied(
            `directive ${r.directiveId} is addressed to ${row.province}, not ${caller}`,
            `receipts[${i}].directive_id`,
          );
        }
      });
      const batch: ReceiptOfBatch[] = [];
      const results: ReceiptResult[] = new Array(req.receipts.length);
      req.receipts.forEach((receipt, i) => {
        const row = rows.get(receipt.directiveId);
        if (row) {
          batch.push({ receipt, row, index: i });
        } else {
          results[i] = create(ReceiptResultSchema, {
            directiveId: receipt.directiveId,
            disposition: ReceiptDisposition.REFUSED,
            detail: "unknown directive",
          });
        }
      });
      // An activation's certificate must be this person's, never another's (before anything of
      // the batch is recorded, as for the I7 check above).
      await refuseOthersCertificates(
        deps,
        batch.flatMap(({ receipt, row, index }) =>
          receipt.result.case === "activated"
            ? [
                {
                  certificateNumber: receipt.result.value.certificateNumber,
                  personKey: row.person_key,
                  field: `receipts[${index}].activated.certificate_number`,
                },
              ]
            : [],
        ),
      );
      const recorded = await recordReceipts(deps.store, batch, caller);
      const now = Date.now();
      recorded.forEach((d, n) => {
        const { row, index } = batch[n] as ReceiptOfBatch;
        if (d.disposition === "RECORDED") {
          deps.metrics.receiptLatency.observe(
            { province: row.province },
            Math.max(0, now - row.created_ms) / 1000,
          );
        }
        results[index] = create(ReceiptResultSchema, {
          directiveId: d.directiveId,
          disposition: ReceiptDisposition[d.disposition],
          detail: d.detail,
        });
      });
      return create(SubmitReceiptsResponseSchema, { results });
    },

    async listDirectives(req, ctx) {
      const p = principalOf(ctx);
      let province = req.provinceCode;
      if (p.kind === "province") {
        if (province && province !== p.code) {
          throw denied(`province ${p.code} may only list its own directives`, "province_code");
        }
        province = p.code;
      }
      const size = req.pageSize || 100;
      const after = req.pageToken
        ? decodePageToken(req.pageToken)
        : { at: new Date("1970-01-01T00:00:00Z"), id: "00000000-0000-0000-0000-000000000000" };
      const states = req.state
        ? [DirectiveState[req.state]]
        : ["PENDING", "DELIVERED", "FAILED", "SUPERSEDED", "REJECTED"];
      const rows = await deps.queries.directives({
        province: province || null,
        states,
        createdBefore: req.createdBefore ? timestampDate(req.createdBefore) : null,
        after,
        limit: size + 1,
        recordIds: req.recordIds,
      });
      const page = rows.slice(0, size);
      const last = page.at(-1);
      return create(ListDirectivesResponseSchema, {
        directives: page.map((r) => directiveStatus(r, p.kind === "viewer")),
        nextPageToken:
          rows.length > size && last
            ? encodePageToken({ at: last.created_at, id: last.directive_id })
            : "",
      });
    },
  };
}
