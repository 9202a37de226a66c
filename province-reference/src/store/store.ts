import { randomBytes } from "node:crypto";
import { create, fromBinary, fromJson, type JsonValue, toBinary, toJson } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Identity, IdentitySchema } from "@evc-interop/gen/evc/common/v1/identity_pb";
import {
  type Certificate,
  CertificateSchema,
  CertificateStatus,
  CloseReason,
  type Dose,
  DoseSchema,
  RecordContentsSchema,
  RecordStatus,
} from "@evc-interop/gen/evc/common/v1/record_pb";
import {
  type Directive,
  type Receipt,
  ReceiptOutcome,
  ReceiptRejection,
  ReceiptSchema,
} from "@evc-interop/gen/evc/directive/v1/directive_pb";
import type { Sql, TransactionSql } from "postgres";
import { CertificateCache } from "./cache.js";

type CertStatus = "NORMAL" | "SUSPENDED" | "REVOKED";
type RecStatus = "ACTIVE" | "MIGRATED_OUT" | "CLOSED";

interface RecordRow {
  record_id: string;
  identity: JsonValue | null;
  status: RecStatus;
  hub_version: number;
  last_sequence: number;
}

export interface CertificateRow {
  certificate_number: string;
  record_id: string;
  status: CertStatus;
  revocation_reason: string | null;
  owner_province: string;
  issued_at: Date;
  status_changed_at: Date;
  hub_version: number;
}

/** Result of applying one directive. */
export type ApplyResult =
  | { kind: "applied"; receipt: Receipt; duplicate: boolean }
  /** A predecessor of this directive (same record) has not been applied yet: try later. */
  | { kind: "wait"; lastSequence: number };

export function certificateMessage(row: CertificateRow): Certificate {
  return create(CertificateSchema, {
    certificateNumber: row.certificate_number,
    recordId: row.record_id,
    provinceCode: row.certificate_number.slice(0, 6),
    status: CertificateStatus[row.status],
    revocationReason: row.revocation_reason
      ? CloseReason[row.revocation_reason as keyof typeof CloseReason]
      : 0,
    issuedAt: timestampFromDate(row.issued_at),
    statusChangedAt: timestampFromDate(row.status_changed_at),
  });
}

/** A dose as written: its JSON as text, its time as ISO text (both cast by the statement). */
interface DoseRow {
  dose_id: string;
  record_id: string;
  dose: string;
  administered_at: string;
}

function doseRow(recordId: string, d: Dose): DoseRow {
  return {
    dose_id: d.doseId,
    record_id: recordId,
    dose: JSON.stringify(toJson(DoseSchema, d)),
    administered_at: (d.administeredAt
      ? timestampDate(d.administeredAt)
      : new Date(0)
    ).toISOString(),
  };
}

/** A status change of a certificate (owner null keeps the current owner). */
export interface CertificateChange {
  number: string;
  status: CertStatus;
  cause: string;
  version: number;
  reason: string | null;
  owner: string | null;
}

export interface NewCertificate {
  number: string;
  recordId: string;
  status: CertStatus;
  owner: string;
  hubVersion: number;
  cause: string;
}

/** A record's contents as an activation writes them (identity as JSON text). */
interface ActivatedRecord {
  record_id: string;
  id_type: string;
  id_number: string;
  identity: string;
  hub_version: number;
}

/** What a batch of directives changes, gathered by `plan` and written by `write`. */
class Changes {
  /** Activations of records this province does not hold yet. */
  readonly created: ActivatedRecord[] = [];
  /** Activations of records it holds (migrated out earlier, now back). */
  readonly activated: ActivatedRecord[] = [];
  readonly statuses = new Map<string, RecStatus>();
  readonly doses: DoseRow[] = [];
  readonly certificates: CertificateChange[] = [];
  readonly issued: NewCertificate[] = [];
  readonly inbox: {
    directive_id: string;
    record_id: string;
    action: string;
    receipt: string;
    sequence: number;
    version: number;
  }[] = [];

  status(recordId: string, status: RecStatus): void {
    this.statuses.set(recordId, status);
  }

  applied(d: Directive, receipt: Receipt): void {
    this.inbox.push({
      directive_id: d.directiveId,
      record_id: d.recordId,
      action: d.action.case ?? "unknown",
      receipt: Buffer.from(toBinary(ReceiptSchema, receipt)).toString("base64"),
      sequence: Number(d.recordSequence),
      version: Number(d.streamVersion),
    });
  }
}

/** A dose's identity in this store: its id within its record. */
function doseKey(recordId: string, doseId: string): string {
  return `${recordId}|${doseId}`;
}

function recordContents(rec: RecordRow, doses: Dose[]) {
  return create(RecordContentsSchema, {
    recordId: rec.record_id,
    identity: rec.identity ? fromJson(IdentitySchema, rec.identity) : undefined,
    doses,
  });
}

function groupBy<T>(rows: readonly T[], key: (row: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const row of rows) {
    const k = key(row);
    const list = out.get(k);
    if (list) list.push(row);
    else out.set(k, [row]);
  }
  return out;
}

/**
 * A province's own store: records, doses, certificates with status history, the inbox that
 * makes directive execution exactly-once in effect (I4), and the receipts waiting to be sent.
 */
export class ProvinceStore {
  private queue: {
    d: Directive;
    resolve: (r: ApplyResult) => void;
    reject: (err: unknown) => void;
  }[] = [];
  private draining = false;
  /** Certificate rows for the phone read path (see CertificateCache). */
  readonly cache = new CertificateCache();

  constructor(
    readonly sql: Sql,
    readonly code: string,
    /** NOTIFY channel on which certificate numbers are published when their status changes. */
    readonly changes: string,
    /**
     * Group commit: directives that arrive while a transaction is in flight are applied
     * together in the next one (one record at most once per transaction), up to this many.
     * 1 applies each directive in its own transaction.
     */
    readonly maxBatch = 64,
  ) {}

  identityJson(identity: Identity): JsonValue {
    return toJson(IdentitySchema, identity);
  }

  newCertificateNumber(): string {
    return `${this.code}-${randomBytes(6).toString("hex").toUpperCase()}`;
  }

  /** Changes one certificate's status (see changeCertificates). */
  async setCertificate(
    tx: TransactionSql,
    number: string,
    status: CertStatus,
    cause: string,
    hubVersion: number,
    reason: string | null = null,
    owner: string | null = null,
  ): Promise<void> {
    await this.changeCertificates(tx, [
      { number, status, cause, version: hubVersion, reason, owner },
    ]);
  }

  /** Issues one certificate (see issueCertificates). */
  async insertCertificate(tx: TransactionSql, c: NewCertificate): Promise<void> {
    await this.issueCertificates(tx, [c]);
  }

  /** Adds doses to a record; returns how many it did not hold yet. */
  async addDoses(tx: TransactionSql, recordId: string, doses: Dose[]): Promise<number> {
    if (doses.length === 0) return 0;
    const rows = await this.insertDoses(
      tx,
      doses.map((d) => doseRow(recordId, d)),
    );
    return rows.length;
  }

  /** Changes certificates' status, with their history rows and a notification per number. */
  changeCertificates(tx: TransactionSql, changes: CertificateChange[]): Promise<unknown> {
    for (const c of changes) this.cache.willChange(c.number);
    // One statement: the changes, their history rows and the notifications to watching phones.
    return tx`
      WITH u AS (
        SELECT * FROM unnest(${changes.map((c) => c.number)}::text[], ${changes.map((c) => c.status)}::text[],
          ${changes.map((c) => c.reason)}::text[], ${changes.map((c) => c.owner)}::text[],
          ${changes.map((c) => c.version)}::bigint[], ${changes.map((c) => c.cause)}::text[])
          AS u(number, status, reason, owner, version, cause)
      ), changed AS (
        UPDATE certificates c SET status = u.status, revocation_reason = u.reason,
          owner_province = COALESCE(u.owner, c.owner_province),
          status_changed_at = now(), hub_version = GREATEST(c.hub_version, u.version)
        FROM u WHERE c.certificate_number = u.number
        RETURNING c.certificate_number, u.status, u.cause
      ), history AS (
        INSERT INTO certificate_history (certificate_number, status, cause)
        SELECT certificate_number, status, cause FROM changed
      )
      SELECT pg_notify(${this.changes}, number) FROM u`.execute();
  }

  /** Issues certificates, with their history rows and a notification per number. */
  issueCertificates(tx: TransactionSql, issued: NewCertificate[]): Promise<unknown> {
    for (const c of issued) this.cache.willChange(c.number);
    return tx`
      WITH u AS (
        SELECT * FROM unnest(${issued.map((c) => c.number)}::text[], ${issued.map((c) => c.recordId)}::text[],
          ${issued.map((c) => c.status)}::text[], ${issued.map((c) => c.owner)}::text[],
          ${issued.map((c) => c.hubVersion)}::bigint[], ${issued.map((c) => c.cause)}::text[])
          AS u(number, record_id, status, owner, version, cause)
      ), inserted AS (
        INSERT INTO certificates (certificate_number, record_id, status, owner_province, issued_at, status_changed_at, hub_version)
        SELECT number, record_id, status, owner, now(), now(), version FROM u
        RETURNING certificate_number, status
      ), history AS (
        INSERT INTO certificate_history (certificate_number, status, cause)
        SELECT i.certificate_number, i.status, u.cause FROM inserted i JOIN u ON u.number = i.certificate_number
      )
      SELECT pg_notify(${this.changes}, number) FROM u`.execute();
  }

  /** Inserts doses; a dose id its record already holds is left as it is. */
  insertDoses(tx: TransactionSql, rows: DoseRow[]) {
    return tx`
      INSERT INTO doses (dose_id, record_id, dose, administered_at)
      SELECT id, r, d::jsonb, at FROM unnest(${rows.map((x) => x.dose_id)}::text[],
        ${rows.map((x) => x.record_id)}::text[], ${rows.map((x) => x.dose)}::text[],
        ${rows.map((x) => x.administered_at)}::timestamptz[]) AS u(id, r, d, at)
      ON CONFLICT (record_id, dose_id) DO NOTHING RETURNING dose_id`;
  }

  async contents(tx: TransactionSql | Sql, rec: RecordRow) {
    const doses = await tx<{ dose: JsonValue }[]>`
      SELECT dose FROM doses WHERE record_id = ${rec.record_id} ORDER BY administered_at, dose_id`;
    return recordContents(
      rec,
      doses.map((d) => fromJson(DoseSchema, d.dose)),
    );
  }

  /**
   * Applies a directive addressed to this province in one local transaction, together with its
   * inbox row. A directive id seen before returns the stored receipt and changes nothing.
   * Concurrent calls share transactions (see maxBatch); if a shared transaction fails, each of
   * its directives is applied again on its own, so a caller sees what it would have alone.
   */
  apply(d: Directive): Promise<ApplyResult> {
    if (this.maxBatch <= 1) {
      return this.sql.begin((tx) => this.applyAll(tx, [d])).then((r) => r[0] as ApplyResult);
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ d, resolve, reject });
      if (!this.draining) {
        this.draining = true;
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        // One directive per record in a transaction: the record lock is per session, so two
        // of one record in the same transaction would not be ordered by it.
        const records = new Set<string>();
        const batch: typeof this.queue = [];
        const rest: typeof this.queue = [];
        for (const job of this.queue) {
          if (batch.length < this.maxBatch && !records.has(job.d.recordId)) {
            records.add(job.d.recordId);
            batch.push(job);
          } else rest.push(job);
        }
        this.queue = rest;
        // Records locked in one order by every transaction (several processes may consume
        // for one province): they wait for each other instead of deadlocking.
        batch.sort((a, b) =>
          a.d.recordId < b.d.recordId ? -1 : a.d.recordId > b.d.recordId ? 1 : 0,
        );
        await this.applyBatch(batch);
      }
    } finally {
      this.draining = false;
    }
  }

  private async applyBatch(batch: typeof this.queue): Promise<void> {
    let results: ApplyResult[];
    try {
      results = await this.sql.begin((tx) =>
        this.applyAll(
          tx,
          batch.map((job) => job.d),
        ),
      );
    } catch {
      // The batch could not commit as a whole: each directive again on its own, so a caller
      // sees what it would have seen without batching.
      await Promise.all(
        batch.map((job) =>
          this.sql
            .begin((tx) => this.applyAll(tx, [job.d]))
            .then((r) => r[0] as ApplyResult)
            .then(job.resolve, job.reject),
        ),
      );
      return;
    }
    batch.forEach((job, i) => {
      job.resolve(results[i] as ApplyResult);
    });
  }

  /**
   * Applies directives of distinct records in one transaction, set-based: one round of reads
   * for all of them (under their record locks), a decision per directive in memory (`plan`),
   * then one statement per table for everything they change, with each directive's inbox row.
   */
  private async applyAll(tx: TransactionSql, ds: Directive[]): Promise<ApplyResult[]> {
    const recordIds = ds.map((d) => d.recordId);
    const suspending = ds.filter((d) => d.action.case === "suspendForMigration");
    // Doses arriving for records this province holds, as (record, dose) pairs: a dose's
    // identity is scoped to its record.
    const arriving = ds.flatMap((d) =>
      (d.action.case === "appendDose" && d.action.value.dose
        ? [d.action.value.dose.doseId]
        : d.action.case === "restoreRecord"
          ? d.action.value.doses.map((x) => x.doseId)
          : []
      ).map((doseId) => ({ recordId: d.recordId, doseId })),
    );
    // Serialize directives of one record (locks taken in one order by every transaction),
    // then look the directives up: a copy delivered concurrently waits for the lock and then
    // finds the first copy's inbox row (I4). The statements go out pipelined; the server runs
    // them in this order.
    const [, seenRows, recRows, certRows, doseRows, knownDoses] = await Promise.all([
      tx`SELECT pg_advisory_xact_lock(hashtext('record:' || id))
        FROM (SELECT id FROM unnest(${recordIds}::text[]) AS id ORDER BY id OFFSET 0) AS ordered`,
      tx<{ directive_id: string; receipt: Uint8Array }[]>`
        SELECT directive_id, receipt FROM inbox
        WHERE directive_id = ANY(${ds.map((d) => d.directiveId)}::uuid[])`,
      tx<RecordRow[]>`SELECT * FROM records WHERE record_id = ANY(${recordIds}::text[]) FOR UPDATE`,
      tx<CertificateRow[]>`
        SELECT * FROM certificates WHERE record_id = ANY(${recordIds}::text[]) AND status <> 'REVOKED'
        ORDER BY issued_at DESC`,
      suspending.length === 0
        ? Promise.resolve([])
        : tx<{ record_id: string; dose: JsonValue }[]>`
            SELECT record_id, dose FROM doses
            WHERE record_id = ANY(${suspending.map((d) => d.recordId)}::text[])
            ORDER BY administered_at, dose_id`,
      arriving.length === 0
        ? Promise.resolve([])
        : tx<{ record_id: string; dose_id: string }[]>`
            SELECT d.record_id, d.dose_id FROM doses d
            JOIN unnest(${arriving.map((a) => a.recordId)}::text[], ${arriving.map((a) => a.doseId)}::text[])
              AS u(record_id, dose_id) ON d.record_id = u.record_id AND d.dose_id = u.dose_id`,
    ]);
    const seen = new Map(seenRows.map((r) => [r.directive_id, r.receipt]));
    const records = new Map(recRows.map((r) => [r.record_id, r]));
    const live = groupBy(certRows, (c) => c.record_id);
    const doses = groupBy(doseRows, (r) => r.record_id);
    const known = new Set(knownDoses.map((r) => doseKey(r.record_id, r.dose_id)));

    const changes = new Changes();
    const results = ds.map((d): ApplyResult => {
      const stored = seen.get(d.directiveId);
      if (stored) {
        return { kind: "applied", receipt: fromBinary(ReceiptSchema, stored), duplicate: true };
      }
      const rec = records.get(d.recordId);
      const last = rec?.last_sequence ?? 0;
      const seq = Number(d.recordSequence);
      if (seq > last + 1 && !(rec === undefined && d.action.case === "activateMigratedRecord")) {
        return { kind: "wait", lastSequence: last };
      }
      const receipt = this.plan(d, changes, {
        rec,
        live: live.get(d.recordId) ?? [],
        doses: (doses.get(d.recordId) ?? []).map((r) => fromJson(DoseSchema, r.dose)),
        known,
      });
      // The record's sequence moves on and the inbox keeps the receipt.
      changes.applied(d, receipt);
      return { kind: "applied", receipt, duplicate: false };
    });
    await this.write(tx, changes);
    return results;
  }

  /**
   * Decides what a directive does to its record, from what the batch read under the record's
   * lock: returns the receipt and adds the writes to `changes`.
   */
  private plan(
    d: Directive,
    changes: Changes,
    read: {
      rec: RecordRow | undefined;
      /** The record's certificates that are not revoked, newest first. */
      live: CertificateRow[];
      /** The record's doses (read for suspensions only). */
      doses: Dose[];
      /** Appended or restored doses their record already holds (see doseKey). */
      known: Set<string>;
    },
  ): Receipt {
    const { rec, live } = read;
    const version = Number(d.streamVersion);
    const base = {
      directiveId: d.directiveId,
      attempt: d.attempt,
      appliedAt: timestampFromDate(new Date()),
    };
    const reject = (rejection: ReceiptRejection, detail: string) =>
      create(ReceiptSchema, { ...base, outcome: ReceiptOutcome.REJECTED, rejection, detail });
    const ok = (already: boolean, result?: Receipt["result"]) =>
      create(ReceiptSchema, {
        ...base,
        outcome: already ? ReceiptOutcome.ALREADY_APPLIED : ReceiptOutcome.APPLIED,
        ...(result ? { result } : {}),
      });
    const addDoses = (recordId: string, doses: Dose[]): number => {
      const fresh = doses.filter((x) => !read.known.has(doseKey(recordId, x.doseId)));
      for (const x of fresh) read.known.add(doseKey(recordId, x.doseId));
      changes.doses.push(...fresh.map((x) => doseRow(recordId, x)));
      return fresh.length;
    };
    const a = d.action;
    switch (a.case) {
      case "suspendForMigration": {
        if (!rec) return reject(ReceiptRejection.RECORD_NOT_FOUND, `no record ${d.recordId}`);
        if (rec.status === "CLOSED")
          return reject(ReceiptRejection.INVALID_STATE, "record is closed");
        const cert = live[0];
        const already = rec.status === "MIGRATED_OUT";
        if (!already) {
          changes.status(rec.record_id, "MIGRATED_OUT");
          if (cert?.status === "NORMAL") {
            changes.certificates.push({
              number: cert.certificate_number,
              status: "SUSPENDED",
              cause: `migration ${a.value.migrationId}`,
              version,
              reason: null,
              // The record moves to the target: phones asking here are told where it went.
              owner: a.value.targetProvinceCode,
            });
          }
        }
        return ok(already, {
          case: "suspended",
          value: {
            $typeName: "evc.directive.v1.SuspendResult",
            record: recordContents(rec, read.doses),
            suspendedCertificateNumber: cert?.certificate_number ?? "",
          },
        });
      }
      case "activateMigratedRecord": {
        const contents = a.value.record;
        const identity = contents?.identity;
        if (!contents || !identity)
          return reject(ReceiptRejection.MALFORMED, "activate carries no record contents");
        (rec ? changes.activated : changes.created).push({
          record_id: d.recordId,
          id_type: String(identity.idType),
          id_number: identity.idNumber,
          identity: JSON.stringify(toJson(IdentitySchema, identity)),
          hub_version: version,
        });
        // Doses the record already holds here stay as they are (ON CONFLICT DO NOTHING); a
        // dose id another record holds is stored on this one all the same (scoped per record).
        changes.doses.push(...contents.doses.map((x) => doseRow(d.recordId, x)));
        const cert = live[0];
        const already = cert?.status === "NORMAL" && cert.certificate_number.startsWith(this.code);
        const number = already ? cert.certificate_number : this.newCertificateNumber();
        if (!already) {
          changes.issued.push({
            number,
            recordId: d.recordId,
            status: "NORMAL",
            owner: this.code,
            hubVersion: version,
            cause: `migration ${a.value.migrationId} from ${a.value.sourceProvinceCode}`,
          });
        }
        return ok(already, {
          case: "activated",
          value: { $typeName: "evc.directive.v1.ActivateResult", certificateNumber: number },
        });
      }
      case "appendDose": {
        if (!rec) return reject(ReceiptRejection.RECORD_NOT_FOUND, `no record ${d.recordId}`);
        if (!a.value.dose) return reject(ReceiptRejection.MALFORMED, "append_dose carries no dose");
        return ok(addDoses(rec.record_id, [a.value.dose]) === 0);
      }
      case "restoreRecord": {
        if (!rec) return reject(ReceiptRejection.RECORD_NOT_FOUND, `no record ${d.recordId}`);
        const added = addDoses(rec.record_id, a.value.doses);
        const suspended = rec.status === "MIGRATED_OUT";
        if (suspended) {
          changes.status(rec.record_id, "ACTIVE");
          const cert = live.find((c) => c.status === "SUSPENDED");
          if (cert) {
            changes.certificates.push({
              number: cert.certificate_number,
              status: "NORMAL",
              cause: `compensation of ${a.value.migrationId}`,
              version,
              reason: null,
              owner: this.code,
            });
          }
        }
        return ok(!suspended && added === 0);
      }
      case "revokeCertificate": {
        if (!rec) return reject(ReceiptRejection.RECORD_NOT_FOUND, `no record ${d.recordId}`);
        const reason = CloseReason[a.value.reason] ?? "UNSPECIFIED";
        for (const c of live) {
          changes.certificates.push({
            number: c.certificate_number,
            status: "REVOKED",
            cause: `revoked: ${reason}`,
            version,
            reason,
            owner: null,
          });
        }
        changes.status(rec.record_id, "CLOSED");
        return ok(rec.status === "CLOSED" && live.length === 0);
      }
      default:
        return reject(
          ReceiptRejection.UNKNOWN_ACTION,
          "this province does not know the directive's action",
        );
    }
  }

  /**
   * Writes a batch's changes, one statement per kind of change, pipelined in an order the
   * foreign keys accept (records before their doses and certificates).
   */
  private async write(tx: TransactionSql, c: Changes): Promise<void> {
    const writes: Promise<unknown>[] = [];
    if (c.created.length > 0) {
      writes.push(
        tx`INSERT INTO records (record_id, id_type, id_number, identity, status, hub_version)
          SELECT id, t, n, i::jsonb, 'ACTIVE', v FROM unnest(
            ${c.created.map((r) => r.record_id)}::text[], ${c.created.map((r) => r.id_type)}::text[],
            ${c.created.map((r) => r.id_number)}::text[], ${c.created.map((r) => r.identity)}::text[],
            ${c.created.map((r) => r.hub_version)}::bigint[]) AS u(id, t, n, i, v)`.execute(),
      );
    }
    if (c.activated.length > 0) {
      writes.push(
        tx`UPDATE records r SET status = 'ACTIVE', identity = u.i::jsonb, id_type = u.t, id_number = u.n
          FROM unnest(
            ${c.activated.map((r) => r.record_id)}::text[], ${c.activated.map((r) => r.id_type)}::text[],
            ${c.activated.map((r) => r.id_number)}::text[], ${c.activated.map((r) => r.identity)}::text[])
            AS u(id, t, n, i)
          WHERE r.record_id = u.id`.execute(),
      );
    }
    if (c.statuses.size > 0) {
      writes.push(
        tx`UPDATE records r SET status = u.s
          FROM unnest(${[...c.statuses.keys()]}::text[], ${[...c.statuses.values()]}::text[]) AS u(id, s)
          WHERE r.record_id = u.id`.execute(),
      );
    }
    if (c.doses.length > 0) writes.push(this.insertDoses(tx, c.doses).execute());
    if (c.certificates.length > 0) writes.push(this.changeCertificates(tx, c.certificates));
    if (c.issued.length > 0) writes.push(this.issueCertificates(tx, c.issued));
    if (c.inbox.length > 0) {
      const inbox = c.inbox;
      writes.push(
        tx`
          WITH u AS (
            SELECT * FROM unnest(${inbox.map((r) => r.directive_id)}::uuid[], ${inbox.map((r) => r.record_id)}::text[],
              ${inbox.map((r) => r.action)}::text[], ${inbox.map((r) => r.receipt)}::text[],
              ${inbox.map((r) => r.sequence)}::bigint[], ${inbox.map((r) => r.version)}::bigint[])
              AS u(directive_id, record_id, action, receipt, seq, version)
          ), sequenced AS (
            UPDATE records r SET last_sequence = GREATEST(r.last_sequence, u.seq),
              hub_version = GREATEST(r.hub_version, u.version), updated_at = now()
            FROM u WHERE r.record_id = u.record_id
          )
          INSERT INTO inbox (directive_id, record_id, action, receipt)
          SELECT directive_id, record_id, action, decode(receipt, 'base64') FROM u`.execute(),
      );
    }
    await Promise.all(writes);
  }

  /** Records a message that can never be applied. */
  async poison(
    payload: Uint8Array,
    reason: string,
    streamSequence?: number,
    directiveId?: string,
  ): Promise<void> {
    await this.sql`INSERT INTO poison (stream_sequence, directive_id, reason, payload)
      VALUES (${streamSequence ?? null}, ${directiveId ?? null}, ${reason}, ${payload})`;
  }

  /** Receipts applied but not yet accepted by the hub, oldest first. */
  async unsubmitted(limit: number): Promise<Receipt[]> {
    const rows = await this.sql<{ receipt: Uint8Array }[]>`
      SELECT receipt FROM inbox WHERE submitted_at IS NULL ORDER BY applied_at LIMIT ${limit}`;
    return rows.map((r) => fromBinary(ReceiptSchema, r.receipt));
  }

  /** A duplicate delivery means the hub may not have our receipt: send it again. */
  async resubmit(directiveId: string): Promise<void> {
    await this.sql`UPDATE inbox SET submitted_at = NULL WHERE directive_id = ${directiveId}`;
  }

  async markSubmitted(directiveIds: string[]): Promise<void> {
    if (directiveIds.length === 0) return;
    await this
      .sql`UPDATE inbox SET submitted_at = now() WHERE directive_id = ANY(${directiveIds}::uuid[])`;
  }

  /** The certificate for the phone read path: from the cache when it can be trusted. */
  cachedCertificate(number: string): Promise<CertificateRow | undefined> {
    return this.cache.get(number, () => this.certificate(number));
  }

  async certificate(number: string): Promise<CertificateRow | undefined> {
    const [c] = await this.sql<
      CertificateRow[]
    >`SELECT * FROM certificates WHERE certificate_number = ${number}`;
    return c;
  }

  /** The person's newest certificate here: NORMAL first, else the most recent. */
  async certificateByIdentity(identity: Identity): Promise<CertificateRow | undefined> {
    const [c] = await this.sql<CertificateRow[]>`
      SELECT c.* FROM certificates c JOIN records r ON r.record_id = c.record_id
      WHERE r.id_type = ${String(identity.idType)} AND r.id_number = ${identity.idNumber}
      ORDER BY (c.status = 'NORMAL') DESC, c.status_changed_at DESC LIMIT 1`;
    return c;
  }

  async record(recordId: string) {
    const [rec] = await this.sql<RecordRow[]>`SELECT * FROM records WHERE record_id = ${recordId}`;
    if (!rec) return undefined;
    const [cert] = await this.sql<CertificateRow[]>`
      SELECT * FROM certificates WHERE record_id = ${recordId}
      ORDER BY (status = 'NORMAL') DESC, issued_at DESC LIMIT 1`;
    return {
      contents: await this.contents(this.sql, rec),
      status: RecordStatus[rec.status],
      certificate: cert,
    };
  }

  /** Local record of a person, if this province holds one. */
  async recordByIdentity(identity: Identity): Promise<RecordRow | undefined> {
    const [rec] = await this.sql<RecordRow[]>`
      SELECT * FROM records WHERE id_type = ${String(identity.idType)} AND id_number = ${identity.idNumber}
      ORDER BY (status = 'ACTIVE') DESC, updated_at DESC LIMIT 1`;
    return rec;
  }
}
