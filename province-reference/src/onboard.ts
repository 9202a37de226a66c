import { create, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { IdentitySchema } from "@evc-interop/gen/evc/common/v1/identity_pb";
import { DoseSchema } from "@evc-interop/gen/evc/common/v1/record_pb";
import {
  OnboardConflict,
  type OnboardingService,
  OnboardOutcome,
  type OnboardRecord,
  OnboardRecordSchema,
  type OnboardResult,
} from "@evc-interop/gen/evc/national/v1/onboarding_service_pb";
import type { Sql } from "postgres";

/** Where an onboarding run is: counts since it started, and what was pending then. */
export interface OnboardProgress {
  /** Records pending when the run started. */
  total: number;
  onboarded: number;
  already: number;
  conflicts: number;
  invalid: number;
  /** Pending records that cannot be sent: not ACTIVE, or without a NORMAL certificate. */
  skipped: number;
}

export interface OnboardOptions {
  /** Records per request (the hub takes at most 1000). */
  batch: number;
  /** Requests in flight at once. */
  concurrency: number;
  onProgress?: (p: Readonly<OnboardProgress>) => void;
  /** Stops after the batches in flight (Ctrl-C): a later run goes on from there. */
  signal?: AbortSignal;
}

interface PendingRow {
  record_id: string;
  identity: JsonValue;
  certificate_number: string;
  doses: JsonValue[] | null;
}

/**
 * Loads the records this province held before the hub existed (records.onboarding =
 * 'pending') into the hub, in record-id order, `batch` per request. Each answer is noted in the
 * same transaction for the whole batch: onboarded ones become ordinary records, conflicts are
 * kept for review (onboarding_conflicts). Resumable: a kill leaves the unanswered batches
 * pending, and the hub answers a batch sent again ALREADY_ONBOARDED. A batch the hub refuses as
 * malformed is split in halves until the bad record travels alone ('invalid', the hub's words).
 */
export async function onboard(
  sql: Sql,
  hub: Client<typeof OnboardingService>,
  opts: OnboardOptions,
): Promise<OnboardProgress> {
  // Fresh statistics for the pages below (records loaded a moment ago by the province's own
  // data migration are otherwise planned as if none were pending: a full scan per page).
  await sql`ANALYZE records`;
  const [count] = await sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM records WHERE onboarding = 'pending'`;
  const p: OnboardProgress = {
    total: count?.n ?? 0,
    onboarded: 0,
    already: 0,
    conflicts: 0,
    invalid: 0,
    skipped: 0,
  };
  opts.onProgress?.(p);
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  let after = "";
  while (!opts.signal?.aborted && failure === undefined) {
    const rows = await pendingPage(sql, after, opts.batch);
    if (rows.length === 0) break;
    after = rows.at(-1)?.record_id ?? after;
    const sendable = rows.filter((r) => r.certificate_number !== null);
    p.skipped += rows.length - sendable.length;
    const job = send(sql, hub, sendable.map(toRecord), p)
      .then(() => opts.onProgress?.(p))
      .catch((err: unknown) => {
        failure ??= err;
      });
    inFlight.add(job);
    void job.finally(() => inFlight.delete(job));
    if (inFlight.size >= opts.concurrency) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  if (failure !== undefined) throw failure;
  return p;
}

/**
 * The next pending records after `after` (by id), each with its NORMAL certificate (null when
 * it has none, or is not ACTIVE) and its doses in the order given.
 */
function pendingPage(sql: Sql, after: string, limit: number): Promise<PendingRow[]> {
  return sql<PendingRow[]>`
    SELECT r.record_id, r.identity,
      (SELECT c.certificate_number FROM certificates c
       WHERE c.record_id = r.record_id AND c.status = 'NORMAL' AND r.status = 'ACTIVE'
       ORDER BY c.issued_at DESC LIMIT 1) AS certificate_number,
      (SELECT json_agg(d.dose ORDER BY d.administered_at, d.dose_id) FROM doses d
       WHERE d.record_id = r.record_id) AS doses
    FROM records r
    WHERE r.onboarding = 'pending' AND r.record_id > ${after}
    ORDER BY r.record_id LIMIT ${limit}`;
}

function toRecord(row: PendingRow): OnboardRecord {
  return create(OnboardRecordSchema, {
    recordId: row.record_id,
    identity: fromJson(IdentitySchema, row.identity),
    certificateNumber: row.certificate_number,
    doses: (row.doses ?? []).map((d) => fromJson(DoseSchema, d)),
  });
}

/** Sends records and notes the answers; splits a batch the hub refuses as malformed. */
async function send(
  sql: Sql,
  hub: Client<typeof OnboardingService>,
  records: OnboardRecord[],
  p: OnboardProgress,
): Promise<void> {
  if (records.length === 0) return;
  let results: OnboardResult[];
  try {
    results = (await hub.onboardRecords({ records })).results;
  } catch (err) {
    if (!(err instanceof ConnectError && err.code === Code.InvalidArgument)) throw err;
    if (records.length === 1) {
      await note(sql, [], [{ recordId: records[0]?.recordId ?? "", detail: err.rawMessage }]);
      p.invalid += 1;
      return;
    }
    const half = Math.ceil(records.length / 2);
    await send(sql, hub, records.slice(0, half), p);
    await send(sql, hub, records.slice(half), p);
    return;
  }
  await note(sql, results, []);
  for (const r of results) {
    if (r.outcome === OnboardOutcome.ONBOARDED) p.onboarded += 1;
    else if (r.outcome === OnboardOutcome.ALREADY_ONBOARDED) p.already += 1;
    else p.conflicts += 1;
  }
}

/** Notes the hub's answers (and refusals) in one transaction. */
async function note(
  sql: Sql,
  results: readonly OnboardResult[],
  invalid: readonly { recordId: string; detail: string }[],
): Promise<void> {
  const loaded = results
    .filter((r) => r.outcome !== OnboardOutcome.CONFLICT)
    .map((r) => r.recordId);
  const conflicts = [
    ...results
      .filter((r) => r.outcome === OnboardOutcome.CONFLICT)
      .map((r) => ({
        record_id: r.recordId,
        state: "conflict",
        conflict: OnboardConflict[r.conflict] ?? "UNSPECIFIED",
        holder_province: r.holderProvinceCode,
        holder_record_id: r.holderRecordId,
        detail: r.detail,
      })),
    ...invalid.map((r) => ({
      record_id: r.recordId,
      state: "invalid",
      conflict: "INVALID",
      holder_province: "",
      holder_record_id: "",
      detail: r.detail,
    })),
  ];
  await sql.begin(async (tx) => {
    if (loaded.length > 0)
      await tx`UPDATE records SET onboarding = NULL, updated_at = now()
        WHERE record_id = ANY(${loaded}::text[]) AND onboarding IS NOT NULL`;
    if (conflicts.length === 0) return;
    const col = <K extends keyof (typeof conflicts)[number]>(k: K) => conflicts.map((c) => c[k]);
    await tx`
      WITH u AS (
        SELECT * FROM unnest(${col("record_id")}::text[], ${col("state")}::text[],
          ${col("conflict")}::text[], ${col("holder_province")}::text[],
          ${col("holder_record_id")}::text[], ${col("detail")}::text[])
          AS u(record_id, state, conflict, holder_province, holder_record_id, detail)
      ), marked AS (
        UPDATE records r SET onboarding = u.state, updated_at = now()
        FROM u WHERE r.record_id = u.record_id
      )
      INSERT INTO onboarding_conflicts (record_id, conflict, holder_province, holder_record_id, detail)
      SELECT record_id, conflict, holder_province, holder_record_id, detail FROM u
      ON CONFLICT (record_id) DO UPDATE SET conflict = excluded.conflict,
        holder_province = excluded.holder_province, holder_record_id = excluded.holder_record_id,
        detail = excluded.detail, at = now()`;
  });
}
