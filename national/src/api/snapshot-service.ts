import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  CertificateStatus,
  RecordContentsSchema,
  RecordStatus,
} from "@evc-interop/gen/evc/common/v1/record_pb";
import {
  GetRecordContentsResponseSchema,
  type SnapshotEntry,
  SnapshotEntrySchema,
  type SnapshotService,
  StreamSnapshotResponseSchema,
} from "@evc-interop/gen/evc/national/v1/snapshot_service_pb";
import { doseFromJson, identityFromJson } from "../domain/codec.js";
import { contentsDigest, hasContentsDigest } from "../domain/contents-digest.js";
import { snapshotPage, snapshotWatermark } from "../store/queries.js";
import { type HubDeps, logRead, notViewer } from "./context.js";
import { denied, invalid, refusalError } from "./errors.js";

export function snapshotService(deps: HubDeps): ServiceImpl<typeof SnapshotService> {
  return {
    async *streamSnapshot(req, ctx) {
      const p = notViewer(ctx, "the snapshot");
      let province = req.provinceCode;
      if (p.kind === "province") {
        if (province && province !== p.code) {
          throw denied(`province ${p.code} may only read its own snapshot`, "province_code");
        }
        province = p.code;
      } else if (!province) {
        throw invalid("province_code", "is required for an operator");
      }
      const chunk = req.chunkSize || 1000;
      const conn = await deps.sql.reserve();
      let committed = false;
      // Set when a reader left a page untaken for snapshotStallMs: the transaction was then
      // rolled back and the connection released without waiting for the reader (one that
      // stops reading without cancelling would otherwise hold them, and the xmin horizon, for
      // as long as its HTTP/2 connection lives).
      let abandoned: Promise<void> | undefined;
      try {
        // One consistent read for the whole stream, in keyset pages of bounded size.
        await conn`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`;
        const watermark = await snapshotWatermark(conn);
        let after = req.afterCertificateNumber;
        for (;;) {
          const rows = await snapshotPage(conn, province, after, chunk, req.recordIds);
          const last = rows.length < chunk;
          const page = create(StreamSnapshotResponseSchema, {
            watermark,
            last,
            // Every field set: a literal of the message type, not create() per entry.
            entries: rows.map(
              (r): SnapshotEntry => ({
                $typeName: SnapshotEntrySchema.typeName,
                certificateNumber: r.certificate_number,
                recordId: r.record_id,
                ownerProvinceCode: r.owner_province,
                certificateStatus: CertificateStatus[r.status],
                recordStatus: RecordStatus[r.record_status],
                version: BigInt(r.version),
                lastPosition: BigInt(r.position),
                contentsDigest: r.contents_digest,
                recordSequence: BigInt(r.record_sequence),
              }),
            ),
          });
          const stall = setTimeout(() => {
            abandoned = conn`ROLLBACK`.then(
              () => conn.release(),
              () => conn.release(),
            );
          }, deps.snapshotStallMs);
          try {
            yield page;
          } finally {
            clearTimeout(stall);
          }
          if (abandoned) {
            throw new ConnectError(
              `snapshot stream stalled: a page was left untaken for ${deps.snapshotStallMs} ms; read the snapshot again`,
              Code.DeadlineExceeded,
            );
          }
          if (last) break;
          after = rows.at(-1)?.certificate_number ?? after;
        }
        await conn`COMMIT`;
        committed = true;
        // The province's reconciliation pass read it all: when, for operators (the console,
        // evc_hub_last_reconciliation_timestamp_seconds).
        // Bookkeeping only: a failure here must not fail the snapshot the province has read.
        // A resync of some records (record_ids) is not a pass.
        if (p.kind === "province" && req.recordIds.length === 0)
          await deps.sql`INSERT INTO province_snapshot_reads (province, last_read_at)
            VALUES (${province}, now())
            ON CONFLICT (province) DO UPDATE SET last_read_at = EXCLUDED.last_read_at`.catch(
            () => undefined,
          );
      } finally {
        if (abandoned) {
          await abandoned;
        } else {
          // Also reached when the client goes away mid-stream: never return an open transaction.
          if (!committed) await conn`ROLLBACK`.catch(() => undefined);
          conn.release();
        }
      }
    },

    async getRecordContents(req, ctx) {
      const p = notViewer(ctx, "a record's contents");
      const key = await deps.queries.personOfRecord(req.recordId);
      const state = key ? await deps.store.load(key) : undefined;
      const record = state?.records[req.recordId];
      if (!state || !record) {
        throw refusalError("not_found", "RECORD_NOT_FOUND", `no record ${req.recordId}`, {
          field: "record_id",
          recordId: req.recordId,
        });
      }
      if (p.kind === "province" && record.owner !== p.code) {
        throw denied(
          `record ${req.recordId} is owned by ${record.owner}; a province reads only its own records`,
          "record_id",
        );
      }
      if (key) await logRead(deps, ctx, key);
      const idNumber = state.identity?.idNumber ?? "";
      return create(GetRecordContentsResponseSchema, {
        record: create(RecordContentsSchema, {
          recordId: record.recordId,
          identity: state.identity ? identityFromJson(state.identity) : undefined,
          doses: record.doses.map(doseFromJson),
        }),
        ownerProvinceCode: record.owner,
        contentsDigest:
          hasContentsDigest(record, record.certificateNumber) && state.identity
            ? contentsDigest(idNumber, record.doses)
            : "",
      });
    },
  };
}
