import { randomUUID } from "node:crypto";
import { create, fromJson, type JsonValue, toBinary, toJson } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { IdentitySchema } from "@evc-interop/gen/evc/common/v1/identity_pb";
import { type Dose, DoseSchema } from "@evc-interop/gen/evc/common/v1/record_pb";
import { ReportDoseRequestSchema } from "@evc-interop/gen/evc/national/v1/dose_service_pb";
import type {
  SnapshotEntry,
  SnapshotService,
} from "@evc-interop/gen/evc/national/v1/snapshot_service_pb";
import type { Logger } from "pino";
import type { ProvinceStore } from "./store/store.js";

/** Records whose digests are compared per statement. */
const CHECK_BATCH = 500;

/**
 * The contents half of a reconciliation pass: the snapshot carries, on each ACTIVE or CLOSED
 * record's current certificate, a digest of the record's identity number and dose ids; this compares it
 * with the same digest over the local copy (in SQL, a batch of records at a time) and, for a
 * record that differs, reads the hub's contents and repairs the local copy under the record's
 * lock — identity filled in, doses the hub knows added — and reports the doses only this
 * province held to the hub (as dose-report intents). Memory: one batch of entries, plus the
 * records that differ.
 */
export class ContentsCheck {
  private pending: SnapshotEntry[] = [];
  private readonly differing: string[] = [];
  /** Records repaired. */
  repaired = 0;

  constructor(
    private readonly store: ProvinceStore,
    private readonly hub: Client<typeof SnapshotService>,
    private readonly log: Logger,
  ) {}

  /** Takes one snapshot entry; entries without a digest (not an ACTIVE record's current certificate) are ignored. */
  async offer(e: SnapshotEntry): Promise<void> {
    if (!e.contentsDigest || e.ownerProvinceCode !== this.store.code) return;
    this.pending.push(e);
    if (this.pending.length >= CHECK_BATCH) await this.compare();
  }

  /** Compares what is still pending, then repairs every record found to differ. */
  async finish(): Promise<number> {
    await this.compare();
    for (const recordId of this.differing) await this.repair(recordId);
    return this.repaired;
  }

  private async compare(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const rows = await this.store.sql<{ record_id: string; digest: string }[]>`
      SELECT u.id AS record_id, encode(sha256(convert_to(
          coalesce(r.id_number, '') || E'\\n' || coalesce((
            SELECT string_agg(d.dose_id, E'\\n' ORDER BY d.dose_id COLLATE "C")
            FROM doses d WHERE d.record_id = u.id), ''),
        'UTF8')), 'hex') AS digest
      FROM unnest(${batch.map((e) => e.recordId)}::text[]) AS u(id)
      LEFT JOIN records r ON r.record_id = u.id`;
    const local = new Map(rows.map((r) => [r.record_id, r.digest]));
    for (const e of batch)
      if (local.get(e.recordId) !== e.contentsDigest) this.differing.push(e.recordId);
  }

  private async repair(recordId: string): Promise<void> {
    let contents: Awaited<ReturnType<Client<typeof SnapshotService>["getRecordContents"]>>;
    try {
      contents = await this.hub.getRecordContents({ recordId });
    } catch (err) {
      // Moved away or closed since the snapshot was read: nothing of ours to repair.
      if (err instanceof ConnectError && [Code.NotFound, Code.PermissionDenied].includes(err.code))
        return;
      throw err;
    }
    const identity = contents.record?.identity;
    if (!identity || contents.ownerProvinceCode !== this.store.code) return;
    const hubDoses = contents.record?.doses ?? [];
    const outcome = await this.store.sql.begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(hashtext('record:' || ${recordId}))`;
      const [rec] = await tx<{ status: string; id_number: string | null }[]>`
        SELECT status, id_number FROM records WHERE record_id = ${recordId} FOR UPDATE`;
      // Only a copy we own is ours to complete (a suspend applied meanwhile moved it on); a
      // CLOSED one (a lost database brings closed records back) takes the hub's doses only.
      if (rec?.status !== "ACTIVE" && rec?.status !== "CLOSED") return undefined;
      const active = rec.status === "ACTIVE";
      const heldRows = await tx<{ dose_id: string; dose: unknown }[]>`
        SELECT dose_id, dose FROM doses WHERE record_id = ${recordId}`;
      const held = new Set(heldRows.map((d) => d.dose_id));
      const known = new Set(hubDoses.map((d) => d.doseId));
      const add = hubDoses.filter((d) => !held.has(d.doseId));
      const onlyHere = active ? heldRows.filter((d) => !known.has(d.dose_id)) : [];
      if (rec.id_number !== identity.idNumber) {
        await tx`UPDATE records SET id_type = ${String(identity.idType)}, id_number = ${identity.idNumber},
          identity = ${toJson(IdentitySchema, identity) as never}, updated_at = now()
          WHERE record_id = ${recordId}`;
      }
      await this.store.addDoses(tx, recordId, add);
      // Doses only this province holds reach the hub (unless a report is already on its way).
      const [reporting] = await tx`
        SELECT 1 FROM hub_intents WHERE record_id = ${recordId} AND kind = 'report-dose' AND state = 'PENDING'`;
      if (!reporting) {
        for (const d of onlyHere) {
          const dose = this.doseOf(d.dose);
          const request = create(ReportDoseRequestSchema, { identity, dose, heldByReporter: true });
          await tx`INSERT INTO hub_intents (id, kind, record_id, request)
            VALUES (${randomUUID()}, 'report-dose', ${recordId}, ${toBinary(ReportDoseRequestSchema, request)})`;
        }
      }
      return { added: add.length, reported: reporting ? 0 : onlyHere.length };
    });
    if (!outcome) return;
    this.repaired += 1;
    this.log.warn(
      { recordId, added: outcome.added, reported: outcome.reported },
      "reconciliation: repaired a record's contents",
    );
  }

  private doseOf(json: unknown): Dose {
    return fromJson(DoseSchema, json as JsonValue);
  }
}
