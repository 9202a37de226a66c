import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { CertificateStatus, RecordStatus } from "@evc-interop/gen/evc/common/v1/record_pb";
import type { CertificateService } from "@evc-interop/gen/evc/national/v1/certificate_service_pb";
import type {
  SnapshotEntry,
  SnapshotService,
} from "@evc-interop/gen/evc/national/v1/snapshot_service_pb";
import type { Logger } from "pino";
import type { ProvinceMetrics } from "./metrics.js";
import { ContentsCheck } from "./reconcile-contents.js";
import { SequenceCheck } from "./reconcile-sequences.js";
import type { CertificateRow } from "./store/rows.js";
import type { ProvinceStore } from "./store/store.js";

export interface ReconcileReport {
  watermark: bigint;
  compared: number;
  missing: number;
  extra: number;
  status: number;
  owner: number;
  /** Records whose contents (identity, doses) differed from the hub's and were repaired. */
  contents: number;
  /** Records whose directive sequence was behind the hub's answered one, raised (#28). */
  sequence: number;
  /** Rows the province changed after the snapshot was read (left alone this pass). */
  newerLocally: number;
  seconds: number;
}

export interface ReconcileOptions {
  /** Rows per page, local and remote. */
  chunk: number;
  /** A local row the hub does not know is removed only if it is older than this. */
  extraGraceMs: number;
  /** Missing and differing rows repaired per transaction (default 500). */
  repairBatch?: number;
  /** Only these records (a resync of records found behind); absent: every record. */
  recordIds?: string[];
}

type Local = Pick<
  CertificateRow,
  "certificate_number" | "record_id" | "status" | "owner_province" | "hub_version"
> & {
  /** status_changed_at in epoch milliseconds (a number parses without making a Date per row). */
  changed_ms: number;
};

/**
 * Pages of the local certificates in certificate-number order; the next page is read while
 * this one is merged (bounded memory: two pages). Certificates of records not onboarded yet
 * (held before the hub existed, or in conflict there) are left out: the hub does not know
 * them, and reconciliation must never remove what the province held before it.
 */
async function* localPages(
  store: ProvinceStore,
  chunk: number,
  recordIds: string[] | undefined,
): AsyncGenerator<Local[]> {
  const only = recordIds ? store.sql`AND record_id = ANY(${recordIds}::text[])` : store.sql``;
  const page = (after: string) => {
    const rows = store.sql<Local[]>`
      SELECT certificate_number, record_id, status, owner_province, hub_version,
        (extract(epoch FROM status_changed_at) * 1000)::float8 AS changed_ms
      FROM certificates c WHERE certificate_number COLLATE "C" > ${after} ${only}
        AND NOT EXISTS (SELECT 1 FROM records r
                        WHERE r.record_id = c.record_id AND r.onboarding IS NOT NULL)
      ORDER BY certificate_number COLLATE "C" LIMIT ${chunk}`;
    // Awaited below; until then a failure must not count as unhandled.
    rows.catch(() => undefined);
    return rows;
  };
  let next: Promise<Local[]> | undefined = page("");
  try {
    while (next) {
      const rows: Local[] = await next;
      next = rows.length < chunk ? undefined : page(rows.at(-1)?.certificate_number ?? "");
      yield rows;
    }
  } finally {
    // A pass that ended early (an error) leaves no read behind.
    await next?.catch(() => undefined);
  }
}

async function* remotePages(
  hub: Client<typeof SnapshotService>,
  chunk: number,
  recordIds: string[] | undefined,
  onWatermark: (w: bigint) => void,
  signal: AbortSignal,
): AsyncGenerator<SnapshotEntry[]> {
  const req = { chunkSize: chunk, recordIds: recordIds ?? [] };
  for await (const page of hub.streamSnapshot(req, { signal })) {
    onWatermark(page.watermark);
    yield page.entries;
  }
}

/**
 * A cursor over pages of rows that waits only when a page is used up: the merge of a
 * million certificates steps through rows without a promise per row.
 */
class Cursor<T> {
  private rows: T[] = [];
  private i = 0;

  constructor(private readonly pages: AsyncIterator<T[]>) {}

  /** The current row; undefined once every page is used up. */
  get row(): T | undefined {
    return this.rows[this.i];
  }

  /** Loads pages until one has a row, or there are no more. */
  async load(): Promise<void> {
    while (this.i >= this.rows.length) {
      const page = await this.pages.next();
      this.i = 0;
      this.rows = page.done ? [] : page.value;
      if (page.done) return;
    }
  }

  /** Moves to the next row; true when that used up the page (then `await load()`). */
  advance(): boolean {
    this.i += 1;
    return this.i >= this.rows.length;
  }

  /** Ends the pages early (a failed pass): a page read or a stream from the hub stops. */
  async close(): Promise<void> {
    await this.pages.return?.();
  }
}

/** The status of this province's copy of a record: only the owner holds it ACTIVE (I1). */
function localRecordStatus(
  store: ProvinceStore,
  e: SnapshotEntry,
): "ACTIVE" | "MIGRATED_OUT" | "CLOSED" {
  const hubStatus = RecordStatus[e.recordStatus] as
    | "ACTIVE"
    | "MIGRATED_OUT"
    | "CLOSED"
    | undefined;
  if (hubStatus === "CLOSED") return "CLOSED";
  return e.ownerProvinceCode === store.code && hubStatus === "ACTIVE" ? "ACTIVE" : "MIGRATED_OUT";
}

const STATUS_NAME = {
  [CertificateStatus.NORMAL]: "NORMAL",
  [CertificateStatus.SUSPENDED]: "SUSPENDED",
  [CertificateStatus.REVOKED]: "REVOKED",
} as Record<number, "NORMAL" | "SUSPENDED" | "REVOKED">;

/** The local status name of the hub's certificate status (an unknown value counts as revoked). */
function statusOf(e: SnapshotEntry): "NORMAL" | "SUSPENDED" | "REVOKED" {
  return STATUS_NAME[e.certificateStatus] ?? "REVOKED";
}

/**
 * One reconciliation pass (I6): merge-joins the hub's snapshot of this province (streamed at
 * one consistent read) with the local certificates, both in certificate-number order, and
 * repairs every divergence: missing rows are added, rows the hub does not know are removed,
 * status and owner are corrected; records whose contents differ (identity, doses) are
 * repaired (see ContentsCheck). A row whose local hub version is newer than the snapshot's
 * (a directive applied after the snapshot was read) is left alone. Memory stays bounded by the
 * page size, whatever the province's size.
 */
export async function reconcile(
  store: ProvinceStore,
  snapshot: Client<typeof SnapshotService>,
  certificates: Client<typeof CertificateService>,
  opts: ReconcileOptions,
  log: Logger,
  metrics: ProvinceMetrics,
): Promise<ReconcileReport> {
  const started = Date.now();
  const report: ReconcileReport = {
    watermark: 0n,
    compared: 0,
    missing: 0,
    extra: 0,
    status: 0,
    owner: 0,
    contents: 0,
    sequence: 0,
    newerLocally: 0,
    seconds: 0,
  };
  const local = new Cursor(localPages(store, opts.chunk, opts.recordIds));
  // Aborted when the pass ends: a pass that fails cancels the hub's stream (an unread stream
  // would hold the hub's snapshot transaction open, and with it the xmin horizon).
  const stream = new AbortController();
  const remote = new Cursor(
    remotePages(
      snapshot,
      opts.chunk,
      opts.recordIds,
      (w) => {
        report.watermark = w;
      },
      stream.signal,
    ),
  );
  const repairs = new Repairs(store, opts.repairBatch ?? 500);
  const contents = new ContentsCheck(store, snapshot, log);
  const sequences = new SequenceCheck(store, log);
  try {
    await merge({
      local,
      remote,
      repairs,
      checks: [contents, sequences],
      store,
      certificates,
      opts,
      report,
      log,
    });
    await repairs.flush();
    // After the certificate repairs: a record they added now has a row to complete.
    report.contents = await contents.finish();
    // Last: a record's next directive may apply only once its copy is the hub's.
    report.sequence = await sequences.finish();
  } finally {
    stream.abort();
    await local.close();
    await remote.close();
  }
  report.seconds = (Date.now() - started) / 1000;
  for (const kind of ["missing", "extra", "status", "owner", "contents", "sequence"] as const) {
    if (report[kind] > 0) metrics.repairs.inc({ kind }, report[kind]);
  }
  metrics.reconciliations.inc();
  log.info({ ...report, watermark: Number(report.watermark) }, "reconciliation pass done");
  return report;
}

/** The merge of both sides in certificate-number order, row by row, repairing as it goes. */
interface MergeParts {
  local: Cursor<Local>;
  remote: Cursor<SnapshotEntry>;
  repairs: Repairs;
  /** What else looks at each of the hub's rows (contents, sequences). */
  checks: { offer(e: SnapshotEntry): Promise<void> }[];
  store: ProvinceStore;
  certificates: Client<typeof CertificateService>;
  opts: ReconcileOptions;
  report: ReconcileReport;
  log: Logger;
}

async function merge({
  local,
  remote,
  repairs,
  checks,
  store,
  certificates,
  opts,
  report,
  log,
}: MergeParts): Promise<void> {
  await local.load();
  await remote.load();
  // Both sides are ordered byte-wise (COLLATE "C" in SQL), as these comparisons are.
  for (;;) {
    const l = local.row;
    const r = remote.row;
    if (l === undefined && r === undefined) break;
    report.compared += 1;
    if (l !== undefined && (r === undefined || l.certificate_number < r.certificateNumber)) {
      await repairExtra(store, certificates, l, opts, report, log);
      if (local.advance()) await local.load();
    } else if (r !== undefined && (l === undefined || l.certificate_number > r.certificateNumber)) {
      await repairMissing(repairs, r, report, log);
      for (const c of checks) await c.offer(r);
      if (remote.advance()) await remote.load();
    } else if (l !== undefined && r !== undefined) {
      if (l.status !== statusOf(r) || l.owner_province !== r.ownerProvinceCode)
        await repairDiffering(repairs, l, r, report, log);
      for (const c of checks) await c.offer(r);
      const localDone = local.advance();
      const remoteDone = remote.advance();
      if (localDone) await local.load();
      if (remoteDone) await remote.load();
    }
  }
}

async function repairMissing(
  repairs: Repairs,
  e: SnapshotEntry,
  report: ReconcileReport,
  log: Logger,
) {
  const status = statusOf(e);
  await repairs.missing({
    number: e.certificateNumber,
    recordId: e.recordId,
    status,
    recordStatus: localRecordStatus(repairs.store, e),
    owner: e.ownerProvinceCode,
    version: Number(e.version),
  });
  report.missing += 1;
  log.warn(
    { certificate: e.certificateNumber, status },
    "reconciliation: added a certificate the province lacked",
  );
}

async function repairExtra(
  store: ProvinceStore,
  certificates: Client<typeof CertificateService>,
  row: Local,
  opts: ReconcileOptions,
  report: ReconcileReport,
  log: Logger,
) {
  // The snapshot may predate this row (an activation applied after it was read): ask the hub.
  if (Date.now() - row.changed_ms < opts.extraGraceMs) {
    report.newerLocally += 1;
    return;
  }
  try {
    await certificates.getCertificateStatus({ certificateNumber: row.certificate_number });
    report.newerLocally += 1;
    return;
  } catch (err) {
    if (!(err instanceof ConnectError && err.code === Code.NotFound)) throw err;
  }
  await store.sql.begin(async (tx) => {
    store.cache.willChange(row.certificate_number);
    await tx`DELETE FROM certificates WHERE certificate_number = ${row.certificate_number}`;
    await tx`INSERT INTO certificate_history (certificate_number, status, cause)
      VALUES (${row.certificate_number}, 'REVOKED', 'reconciliation: unknown to the hub, removed')`;
    await tx`SELECT pg_notify(${store.changes}, ${row.certificate_number})`;
  });
  report.extra += 1;
  log.warn(
    { certificate: row.certificate_number },
    "reconciliation: removed a certificate the hub does not know",
  );
}

/** A row both sides hold whose status or owner differs (the merge checked that). */
async function repairDiffering(
  repairs: Repairs,
  row: Local,
  e: SnapshotEntry,
  report: ReconcileReport,
  log: Logger,
) {
  const status = statusOf(e);
  const statusDiffers = row.status !== status;
  const ownerDiffers = row.owner_province !== e.ownerProvinceCode;
  if (row.hub_version > Number(e.version)) {
    report.newerLocally += 1;
    return;
  }
  await repairs.differing({
    number: row.certificate_number,
    recordId: row.record_id,
    status,
    recordStatus: localRecordStatus(repairs.store, e),
    owner: e.ownerProvinceCode,
    version: Number(e.version),
    history: statusDiffers,
  });
  if (statusDiffers) report.status += 1;
  if (ownerDiffers) report.owner += 1;
  log.warn(
    {
      certificate: row.certificate_number,
      from: { status: row.status, owner: row.owner_province },
      to: { status, owner: e.ownerProvinceCode },
    },
    "reconciliation: corrected a certificate",
  );
}

/** A certificate as the hub's snapshot has it, to be written locally. */
interface Repair {
  number: string;
  recordId: string;
  status: string;
  recordStatus: string;
  owner: string;
  version: number;
}

/**
 * The missing and differing rows of a pass, written in batches: one transaction of two
 * statements per batch instead of one transaction per row (a province that lost 1% of a
 * million certificates made 10,000 commits). A row the province changed after the snapshot was
 * read — inserted or given a newer hub version by a directive meanwhile — is left alone. Each
 * written certificate gets its history row, and every number of the batch a notification (the
 * cache was told it would change), as a directive's would.
 */
class Repairs {
  private added: Repair[] = [];
  private corrected: (Repair & { history: boolean })[] = [];

  constructor(
    readonly store: ProvinceStore,
    private readonly batch: number,
  ) {}

  async missing(r: Repair): Promise<void> {
    this.added.push(r);
    await this.flushIfFull();
  }

  async differing(r: Repair & { history: boolean }): Promise<void> {
    this.corrected.push(r);
    await this.flushIfFull();
  }

  private async flushIfFull(): Promise<void> {
    if (this.added.length + this.corrected.length >= this.batch) await this.flush();
  }

  async flush(): Promise<void> {
    const added = this.added;
    const corrected = this.corrected;
    this.added = [];
    this.corrected = [];
    if (added.length + corrected.length === 0) return;
    const store = this.store;
    for (const r of added) store.cache.willChange(r.number);
    for (const r of corrected) store.cache.willChange(r.number);
    // 1 where a history row is due (postgres.js would send a boolean array as one boolean).
    const history = corrected.map((r) => (r.history ? 1 : 0));
    const col = <K extends keyof Repair>(rows: Repair[], k: K) => rows.map((r) => r[k]);
    // Two pipelined statements; the records a missing certificate needs come first.
    await store.sql.begin((tx) => [
      tx`INSERT INTO records (record_id, status, hub_version)
        SELECT DISTINCT ON (id) id, status, version
        FROM unnest(${col(added, "recordId")}::text[], ${col(added, "recordStatus")}::text[],
          ${col(added, "version")}::bigint[]) AS u(id, status, version)
        ON CONFLICT (record_id) DO NOTHING`,
      tx`
        WITH a AS (
          SELECT * FROM unnest(${col(added, "number")}::text[], ${col(added, "recordId")}::text[],
            ${col(added, "status")}::text[], ${col(added, "owner")}::text[],
            ${col(added, "version")}::bigint[]) AS a(number, record_id, status, owner, version)
        ), c AS (
          SELECT * FROM unnest(${col(corrected, "number")}::text[], ${col(corrected, "recordId")}::text[],
            ${col(corrected, "status")}::text[], ${col(corrected, "recordStatus")}::text[],
            ${col(corrected, "owner")}::text[], ${col(corrected, "version")}::bigint[],
            ${history}::int[])
            AS c(number, record_id, status, record_status, owner, version, history)
        ), inserted AS (
          INSERT INTO certificates (certificate_number, record_id, status, owner_province, issued_at, status_changed_at, hub_version)
          SELECT number, record_id, status, owner, now(), now(), version FROM a
          ON CONFLICT (certificate_number) DO NOTHING
          RETURNING certificate_number, status
        ), updated AS (
          UPDATE certificates t SET status = c.status, owner_province = c.owner,
            hub_version = c.version, status_changed_at = now()
          FROM c WHERE t.certificate_number = c.number AND t.hub_version <= c.version
          RETURNING t.certificate_number
        ), records_updated AS (
          UPDATE records r SET status = c.record_status
          FROM c JOIN updated u ON u.certificate_number = c.number WHERE r.record_id = c.record_id
        ), history AS (
          INSERT INTO certificate_history (certificate_number, status, cause)
          SELECT certificate_number, status, 'reconciliation: missing' FROM inserted
          UNION ALL
          SELECT c.number, c.status, 'reconciliation: status differed'
          FROM c JOIN updated u ON u.certificate_number = c.number WHERE c.history = 1
        )
        SELECT pg_notify(${store.changes}, number) FROM (
          SELECT number FROM a UNION ALL SELECT number FROM c) n`,
    ]);
  }
}
