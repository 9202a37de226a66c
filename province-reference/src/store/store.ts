import { randomBytes } from "node:crypto";
import { create, fromBinary, fromJson, type JsonValue, toBinary, toJson } from "@bufbuild/protobuf";
import { type Identity, IdentitySchema } from "@evc-interop/gen/evc/common/v1/identity_pb";
import {
  type Dose,
  DoseSchema,
  RecordContentsSchema,
  RecordStatus,
} from "@evc-interop/gen/evc/common/v1/record_pb";
import {
  type Directive,
  type Receipt,
  ReceiptSchema,
} from "@evc-interop/gen/evc/directive/v1/directive_pb";
import { GroupCommit } from "@evc-interop/runtime";
import type { Sql, TransactionSql } from "postgres";
import { decide, type LocalState } from "../domain/decide.js";
import { CertificateCache } from "./cache.js";
import { readStates } from "./read-state.js";
import {
  type CertificateChange,
  type CertificateRow,
  type DoseRow,
  doseRow,
  type NewCertificate,
  type RecordRow,
} from "./rows.js";
import { type Applied, writeEffects } from "./write-effects.js";

/**
 * A province's own store: records, doses, certificates with status history, the inbox that
 * makes directive execution exactly-once in effect (I4), and the receipts waiting to be sent.
 */
/** Result of applying one directive. */
export type ApplyResult =
  | { kind: "applied"; receipt: Receipt; duplicate: boolean }
  /** A predecessor of this directive (same record) has not been applied yet: try later. */
  | { kind: "wait"; lastSequence: number };

function recordContents(rec: RecordRow, doses: Dose[]) {
  return create(RecordContentsSchema, {
    recordId: rec.record_id,
    identity: rec.identity ? fromJson(IdentitySchema, rec.identity) : undefined,
    doses,
  });
}

/** A directive waiting for its transaction. */
interface ApplyJob {
  d: Directive;
  /** The hub proved the gap before it closed (see decide). */
  gapProven: boolean;
  resolve: (r: ApplyResult) => void;
  reject: (err: unknown) => void;
}

export class ProvinceStore {
  private readonly commit: GroupCommit<ApplyJob>;
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
  ) {
    const alone = (job: ApplyJob) =>
      this.sql
        .begin((tx) => this.applyAll(tx, [job]))
        .then((r) => r[0] as ApplyResult)
        .then(job.resolve, job.reject);
    this.commit = new GroupCommit<ApplyJob>({
      maxBatch,
      // One directive per record in a transaction: the record lock is per session, so two of
      // one record in the same transaction would not be ordered by it.
      keys: (job) => [job.d.recordId],
      // Records locked in one order by every transaction (several processes may consume for
      // one province): they wait for each other instead of deadlocking.
      compare: (a, b) => (a.d.recordId < b.d.recordId ? -1 : a.d.recordId > b.d.recordId ? 1 : 0),
      runBatch: async (jobs) => {
        const results = await this.sql.begin((tx) => this.applyAll(tx, jobs));
        jobs.forEach((job, i) => {
          job.resolve(results[i] as ApplyResult);
        });
      },
      runAlone: alone,
    });
  }

  identityJson(identity: Identity): JsonValue {
    return toJson(IdentitySchema, identity);
  }

  newCertificateNumber(): string {
    return `${this.code}-${randomBytes(6).toString("hex").toUpperCase()}`;
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
   * `gapProven`: the hub holds a receipt for (or gave up on) every directive of the record to
   * this province between the province's last sequence and this one — apply it over the gap.
   */
  apply(d: Directive, gapProven = false): Promise<ApplyResult> {
    return new Promise((resolve, reject) => this.commit.submit({ d, gapProven, resolve, reject }));
  }

  /**
   * Applies directives of distinct records in one transaction: reads what they need under
   * their records' locks (read-state.ts), decides each in memory (domain/decide.ts), then writes
   * every effect with each directive's inbox row, one statement per table (write-effects.ts).
   */
  private async applyAll(
    tx: TransactionSql,
    jobs: readonly Pick<ApplyJob, "d" | "gapProven">[],
  ): Promise<ApplyResult[]> {
    const ds = jobs.map((j) => j.d);
    const states = await readStates(tx, this.code, ds);
    const ctx = { now: new Date(), newCertificateNumber: () => this.newCertificateNumber() };
    const applied: Applied[] = [];
    const results = ds.map((d, i): ApplyResult => {
      const decision = decide(d, states[i] as LocalState, ctx, jobs[i]?.gapProven);
      if (decision.kind === "duplicate")
        return { kind: "applied", receipt: decision.receipt, duplicate: true };
      if (decision.kind === "wait") return decision;
      applied.push({ directive: d, receipt: decision.receipt, effects: decision.effects });
      return { kind: "applied", receipt: decision.receipt, duplicate: false };
    });
    await writeEffects(tx, this, applied);
    return results;
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

  /**
   * A receipt the hub refused as invalid: kept in poison (with why) and marked submitted, in
   * one transaction, so that it no longer holds back the province's other receipts.
   */
  async deadLetterReceipt(receipt: Receipt, reason: string): Promise<void> {
    await this.sql.begin(async (tx) => {
      await tx`INSERT INTO poison (directive_id, reason, payload)
        VALUES (${receipt.directiveId}, ${reason}, ${toBinary(ReceiptSchema, receipt)})`;
      await tx`UPDATE inbox SET submitted_at = now() WHERE directive_id = ${receipt.directiveId}`;
    });
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

  /** The person's ACTIVE record here, with its contents (the history a clinic reads). */
  async activeRecordByIdentity(identity: Identity) {
    const [rec] = await this.sql<RecordRow[]>`
      SELECT * FROM records WHERE id_type = ${String(identity.idType)}
        AND id_number = ${identity.idNumber} AND status = 'ACTIVE' LIMIT 1`;
    return rec ? this.contents(this.sql, rec) : undefined;
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
