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
import type { BrokenVariant } from "../broken.js";
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

function doseRow(recordId: string, d: Dose) {
  return {
    dose_id: d.doseId,
    record_id: recordId,
    dose: toJson(DoseSchema, d) as never,
    administered_at: d.administeredAt ? timestampDate(d.administeredAt) : new Date(0),
  };
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
    /** Conformance self-test only. */
    readonly broken?: BrokenVariant,
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

  async setCertificate(
    tx: TransactionSql,
    number: string,
    status: CertStatus,
    cause: string,
    hubVersion: number,
    reason: string | null = null,
    owner: string | null = null,
  ): Promise<void> {
    this.cache.willChange(number);
    // One statement: the change, its history row and the notification to watching phones.
    await tx`
      WITH changed AS (
        UPDATE certificates SET status = ${status}, revocation_reason = ${reason},
          owner_province = COALESCE(${owner}::text, owner_province),
          status_changed_at = now(), hub_version = GREATEST(hub_version, ${hubVersion})
        WHERE certificate_number = ${number}
        RETURNING certificate_number
      ), history AS (
        INSERT INTO certificate_history (certificate_number, status, cause)
        SELECT certificate_number, ${status}, ${cause} FROM changed
      )
      SELECT pg_notify(${this.changes}, ${number})`;
  }

  async insertCertificate(
    tx: TransactionSql,
    c: {
      number: string;
      recordId: string;
      status: CertStatus;
      owner: string;
      hubVersion: number;
      cause: string;
    },
  ): Promise<void> {
    this.cache.willChange(c.number);
    await tx`
      WITH issued AS (
        INSERT INTO certificates (certificate_number, record_id, status, owner_province, issued_at, status_changed_at, hub_version)
        VALUES (${c.number}, ${c.recordId}, ${c.status}, ${c.owner}, now(), now(), ${c.hubVersion})
        RETURNING certificate_number
      ), history AS (
        INSERT INTO certificate_history (certificate_number, status, cause)
        SELECT certificate_number, ${c.status}, ${c.cause} FROM issued
      )
      SELECT pg_notify(${this.changes}, ${c.number})`;
  }

  async addDoses(tx: TransactionSql, recordId: string, doses: Dose[]): Promise<number> {
    if (doses.length === 0) return 0;
    const rows = await tx`INSERT INTO doses ${tx(doses.map((d) => doseRow(recordId, d)))}
      ON CONFLICT (dose_id) DO NOTHING RETURNING dose_id`;
    return rows.length;
  }

  async contents(tx: TransactionSql | Sql, rec: RecordRow) {
    const doses = await tx<{ dose: JsonValue }[]>`
      SELECT dose FROM doses WHERE record_id = ${rec.record_id} ORDER BY administered_at, dose_id`;
    return create(RecordContentsSchema, {
      recordId: rec.record_id,
      identity: rec.identity ? fromJson(IdentitySchema, rec.identity) : undefined,
      doses: doses.map((d) => fromJson(DoseSchema, d.dose)),
    });
  }

  /** The certificates of a record that are not revoked, newest first. */
  private liveCertificates(tx: TransactionSql, recordId: string) {
    return tx<CertificateRow[]>`
      SELECT * FROM certificates WHERE record_id = ${recordId} AND status <> 'REVOKED'
      ORDER BY issued_at DESC`;
  }

  /**
   * Applies a directive addressed to this province in one local transaction, together with its
   * inbox row. A directive id seen before returns the stored receipt and changes nothing.
   * Concurrent calls share transactions (see maxBatch); if a shared transaction fails, each of
   * its directives is applied again on its own, so a caller sees what it would have alone.
   */
  apply(d: Directive): Promise<ApplyResult> {
    if (this.maxBatch <= 1) return this.sql.begin((tx) => this.applyIn(tx, d));
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
      // The directives run concurrently on the transaction's connection: their statements
      // go out pipelined, a few round trips for the whole batch.
      results = await this.sql.begin((tx) =>
        Promise.all(batch.map((job) => this.applyIn(tx, job.d))),
      );
    } catch {
      await Promise.all(
        batch.map((job) =>
          this.sql.begin((tx) => this.applyIn(tx, job.d)).then(job.resolve, job.reject),
        ),
      );
      return;
    }
    batch.forEach((job, i) => {
      job.resolve(results[i] as ApplyResult);
    });
  }

  private async applyIn(tx: TransactionSql, d: Directive): Promise<ApplyResult> {
    // Serialize directives of one record, then look the directive up: a copy delivered
    // concurrently waits for the lock and then finds the first copy's inbox row (I4). The three
    // statements go out pipelined; the server still runs them in this order.
    const [, seenRows, recRows, live] = await Promise.all([
      tx`SELECT pg_advisory_xact_lock(hashtext(${`record:${d.recordId}`}))`,
      tx<
        { receipt: Uint8Array }[]
      >`SELECT receipt FROM inbox WHERE directive_id = ${d.directiveId}`,
      tx<RecordRow[]>`SELECT * FROM records WHERE record_id = ${d.recordId} FOR UPDATE`,
      this.liveCertificates(tx, d.recordId),
    ]);
    const seen = seenRows[0];
    if (seen && this.broken !== "no-dedupe") {
      return {
        kind: "applied",
        receipt: fromBinary(ReceiptSchema, seen.receipt),
        duplicate: true,
      };
    }
    const rec = recRows[0];
    const last = rec?.last_sequence ?? 0;
    const seq = Number(d.recordSequence);
    if (seq > last + 1 && !(rec === undefined && d.action.case === "activateMigratedRecord")) {
      return { kind: "wait", lastSequence: last };
    }
    const receipt = await this.execute(tx, d, rec, live);
    const version = Number(d.streamVersion);
    // One statement: the record's sequence moves on and the inbox keeps the receipt.
    await tx`
      WITH sequenced AS (
        UPDATE records SET last_sequence = GREATEST(last_sequence, ${seq}),
          hub_version = GREATEST(hub_version, ${version}), updated_at = now()
        WHERE record_id = ${d.recordId}
      )
      INSERT INTO inbox (directive_id, record_id, action, receipt)
      VALUES (${d.directiveId}, ${d.recordId}, ${d.action.case ?? "unknown"}, ${toBinary(ReceiptSchema, receipt)})
      ${this.broken === "no-dedupe" ? tx`ON CONFLICT (directive_id) DO UPDATE SET receipt = EXCLUDED.receipt, submitted_at = NULL` : tx``}`;
    return { kind: "applied", receipt, duplicate: false };
  }

  private async execute(
    tx: TransactionSql,
    d: Directive,
    rec: RecordRow | undefined,
    /** The record's certificates that are not revoked, newest first, read under the lock. */
    live: CertificateRow[],
  ): Promise<Receipt> {
    const version = Number(d.streamVersion);
    const base = {
      directiveId: d.directiveId,
      attempt: d.attempt,
      appliedAt: timestampFromDate(new Date()),
    };
    const reject = (rejection: ReceiptRejection, detail: string) =>
      this.broken === "wrong-receipt-outcome"
        ? create(ReceiptSchema, { ...base, outcome: ReceiptOutcome.APPLIED })
        : create(ReceiptSchema, { ...base, outcome: ReceiptOutcome.REJECTED, rejection, detail });
    const ok = (already: boolean, result?: Receipt["result"]) =>
      create(ReceiptSchema, {
        ...base,
        outcome: already ? ReceiptOutcome.ALREADY_APPLIED : ReceiptOutcome.APPLIED,
        ...(result ? { result } : {}),
      });
    const a = d.action;
    switch (a.case) {
      case "suspendForMigration": {
        if (!rec) return reject(ReceiptRejection.RECORD_NOT_FOUND, `no record ${d.recordId}`);
        if (rec.status === "CLOSED")
          return reject(ReceiptRejection.INVALID_STATE, "record is closed");
        const cert = live[0];
        const already = rec.status === "MIGRATED_OUT";
        const writes: Promise<unknown>[] = [];
        if (!already && this.broken !== "suspend-ignored") {
          // execute(): send now, so it goes out before the statements pushed after it.
          writes.push(
            tx`UPDATE records SET status = 'MIGRATED_OUT' WHERE record_id = ${rec.record_id}`.execute(),
          );
          if (cert?.status === "NORMAL") {
            writes.push(
              this.setCertificate(
                tx,
                cert.certificate_number,
                "SUSPENDED",
                `migration ${a.value.migrationId}`,
                version,
                null,
                // The record moves to the target: phones asking here are told where it went.
                a.value.targetProvinceCode,
              ),
            );
          }
        }
        const [record] = await Promise.all([this.contents(tx, rec), ...writes]);
        return ok(already, {
          case: "suspended",
          value: {
            $typeName: "evc.directive.v1.SuspendResult",
            record,
            suspendedCertificateNumber: cert?.certificate_number ?? "",
          },
        });
      }
      case "activateMigratedRecord": {
        const contents = a.value.record;
        const identity = contents?.identity;
        if (!contents || !identity)
          return reject(ReceiptRejection.MALFORMED, "activate carries no record contents");
        // Record, doses and certificate go out pipelined, in this order (postgres.js sends a
        // query when it is awaited or executed; the helpers below send theirs when called).
        const writes: Promise<unknown>[] = [
          (rec
            ? tx`UPDATE records SET status = 'ACTIVE', identity = ${toJson(IdentitySchema, identity) as never},
                id_type = ${String(identity.idType)}, id_number = ${identity.idNumber}
              WHERE record_id = ${d.recordId}`
            : tx`INSERT INTO records (record_id, id_type, id_number, identity, status, hub_version)
              VALUES (${d.recordId}, ${String(identity.idType)}, ${identity.idNumber},
                      ${toJson(IdentitySchema, identity) as never}, 'ACTIVE', ${version})`
          ).execute(),
          this.addDoses(tx, d.recordId, contents.doses),
        ];
        const cert = live[0];
        const already = cert?.status === "NORMAL" && cert.certificate_number.startsWith(this.code);
        const number = already ? cert.certificate_number : this.newCertificateNumber();
        if (!already) {
          writes.push(
            this.insertCertificate(tx, {
              number,
              recordId: d.recordId,
              status: "NORMAL",
              owner: this.code,
              hubVersion: version,
              cause: `migration ${a.value.migrationId} from ${a.value.sourceProvinceCode}`,
            }),
          );
        }
        await Promise.all(writes);
        return ok(already, {
          case: "activated",
          value: {
            $typeName: "evc.directive.v1.ActivateResult",
            certificateNumber: number,
          },
        });
      }
      case "appendDose": {
        if (!rec) return reject(ReceiptRejection.RECORD_NOT_FOUND, `no record ${d.recordId}`);
        if (!a.value.dose) return reject(ReceiptRejection.MALFORMED, "append_dose carries no dose");
        const added = await this.addDoses(tx, rec.record_id, [a.value.dose]);
        return ok(added === 0);
      }
      case "restoreRecord": {
        if (!rec) return reject(ReceiptRejection.RECORD_NOT_FOUND, `no record ${d.recordId}`);
        const added = await this.addDoses(tx, rec.record_id, a.value.doses);
        const suspended = rec.status === "MIGRATED_OUT";
        if (suspended) {
          await tx`UPDATE records SET status = 'ACTIVE' WHERE record_id = ${rec.record_id}`;
          const [cert] = await tx<CertificateRow[]>`
            SELECT * FROM certificates WHERE record_id = ${rec.record_id} AND status = 'SUSPENDED'
            ORDER BY issued_at DESC LIMIT 1`;
          if (cert) {
            await this.setCertificate(
              tx,
              cert.certificate_number,
              "NORMAL",
              `compensation of ${a.value.migrationId}`,
              version,
              null,
              this.code,
            );
          }
        }
        return ok(!suspended && added === 0);
      }
      case "revokeCertificate": {
        if (!rec) return reject(ReceiptRejection.RECORD_NOT_FOUND, `no record ${d.recordId}`);
        const reason = CloseReason[a.value.reason] ?? "UNSPECIFIED";
        await Promise.all([
          ...live.map((c) =>
            this.setCertificate(
              tx,
              c.certificate_number,
              "REVOKED",
              `revoked: ${reason}`,
              version,
              reason,
            ),
          ),
          tx`UPDATE records SET status = 'CLOSED' WHERE record_id = ${rec.record_id}`,
        ]);
        return ok(rec.status === "CLOSED" && live.length === 0);
      }
      default:
        return reject(
          ReceiptRejection.UNKNOWN_ACTION,
          "this province does not know the directive's action",
        );
    }
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
