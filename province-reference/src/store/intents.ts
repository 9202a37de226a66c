import { randomUUID } from "node:crypto";
import { type Identity, IdType } from "@evc-interop/gen/evc/common/v1/identity_pb";
import type { Dose } from "@evc-interop/gen/evc/common/v1/record_pb";
import type { Sql, TransactionSql } from "postgres";
import type { CertificateRow, NewCertificate } from "./rows.js";
import type { ProvinceStore } from "./store.js";

/** The most doses a record may hold (evc.common.v1.RecordContents.doses). */
export const MAX_DOSES_PER_RECORD = 1000;

/** What a province has promised the hub: see the hub_intents table. */
export type IntentKind = "register" | "migrate" | "close" | "report-dose" | "reissue";

/** A call to the hub written down before (or with) the local change it belongs to. */
export interface Intent {
  id: string;
  kind: IntentKind;
  record_id: string | null;
  /** The hub request, protobuf binary. */
  request: Uint8Array;
  attempts: number;
}

/** Why a local write was not made; the caller turns it into an RPC error. */
export class LocalRefusal extends Error {
  constructor(
    readonly code: "not_found" | "already_exists" | "failed_precondition" | "resource_exhausted",
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

interface LockedRecord {
  record_id: string;
  status: string;
}

/** Serializes every local write of one record with the directive agent (same lock, same order). */
async function lockRecord(tx: TransactionSql, recordId: string): Promise<LockedRecord | undefined> {
  await tx`SELECT pg_advisory_xact_lock(hashtext('record:' || ${recordId}))`;
  const [rec] = await tx<LockedRecord[]>`
    SELECT record_id, status FROM records WHERE record_id = ${recordId} FOR UPDATE`;
  return rec;
}

/** Serializes registrations of one person at this province. */
async function lockPerson(tx: TransactionSql, identity: Identity): Promise<void> {
  await tx`SELECT pg_advisory_xact_lock(hashtext(${`person:${identity.idType}:${identity.idNumber}`}))`;
}

/**
 * The durable intents of province-initiated hub calls, and the local writes that go with them.
 * Every write to a record takes the record's lock and re-checks its status in the same
 * transaction, so a directive (suspend, revoke) and a local write never interleave.
 */
export class IntentStore {
  constructor(private readonly store: ProvinceStore) {}

  private get sql(): Sql {
    return this.store.sql;
  }

  /**
   * Starts (or resumes) registering a person here: refused if this province already holds an
   * active record for them; a registration of the same person still pending is resumed with its
   * own idempotency key and certificate number, never doubled.
   */
  beginRegistration(
    identity: Identity,
    request: (intentId: string) => Uint8Array,
  ): Promise<Intent> {
    return this.sql.begin(async (tx) => {
      await lockPerson(tx, identity);
      const [active] = await tx<{ record_id: string }[]>`
        SELECT record_id FROM records
        WHERE id_type = ${String(identity.idType)} AND id_number = ${identity.idNumber}
          AND status = 'ACTIVE' LIMIT 1`;
      if (active) {
        throw new LocalRefusal(
          "already_exists",
          `person already has record ${active.record_id} owned by province ${this.store.code}`,
          "identity",
        );
      }
      const [pending] = await tx<Intent[]>`
        SELECT id, kind, record_id, request, attempts FROM hub_intents
        WHERE kind = 'register' AND state = 'PENDING'
          AND id_type = ${String(identity.idType)} AND id_number = ${identity.idNumber}`;
      if (pending) return pending;
      const id = randomUUID();
      const [created] = await tx<Intent[]>`
        INSERT INTO hub_intents (id, kind, id_type, id_number, request)
        VALUES (${id}, 'register', ${String(identity.idType)}, ${identity.idNumber}, ${request(id)})
        RETURNING id, kind, record_id, request, attempts`;
      if (!created) throw new Error("registration intent was not written");
      return created;
    });
  }

  /**
   * Starts (or resumes) asking the hub to migrate a person here; a request for the same person
   * still pending is resumed with its own idempotency key, never doubled.
   */
  beginMigration(identity: Identity, request: (intentId: string) => Uint8Array): Promise<Intent> {
    return this.sql.begin(async (tx) => {
      await lockPerson(tx, identity);
      const [pending] = await tx<Intent[]>`
        SELECT id, kind, record_id, request, attempts FROM hub_intents
        WHERE kind = 'migrate' AND state = 'PENDING'
          AND id_type = ${String(identity.idType)} AND id_number = ${identity.idNumber}`;
      if (pending) return pending;
      const id = randomUUID();
      const [created] = await tx<Intent[]>`
        INSERT INTO hub_intents (id, kind, id_type, id_number, request)
        VALUES (${id}, 'migrate', ${String(identity.idType)}, ${identity.idNumber}, ${request(id)})
        RETURNING id, kind, record_id, request, attempts`;
      if (!created) throw new Error("migration intent was not written");
      return created;
    });
  }

  /** Writes a registered record here (idempotent) and ends its intent. */
  completeRegistration(
    intentId: string,
    recordId: string,
    identity: Identity,
    doses: Dose[],
    certificate: NewCertificate,
  ): Promise<void> {
    return this.sql.begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(hashtext('record:' || ${recordId}))`;
      // A row reconciliation created before this (no identity yet) gets the identity now.
      await tx`
        INSERT INTO records (record_id, id_type, id_number, identity, status, hub_version, last_sequence)
        VALUES (${recordId}, ${String(identity.idType)}, ${identity.idNumber},
                ${this.store.identityJson(identity) as never}, 'ACTIVE', 1, 0)
        ON CONFLICT (record_id) DO UPDATE SET
          id_type = COALESCE(records.id_type, EXCLUDED.id_type),
          id_number = COALESCE(records.id_number, EXCLUDED.id_number),
          identity = COALESCE(records.identity, EXCLUDED.identity)`;
      await this.store.addDoses(tx, recordId, doses);
      const [held] = await tx`
        SELECT 1 FROM certificates WHERE certificate_number = ${certificate.number}`;
      if (!held) await this.store.insertCertificate(tx, certificate);
      await this.end(tx, intentId, "DONE", null);
    });
  }

  /**
   * The hub linked a registration's document to a record held here (the resident ID of a child
   * registered under the birth certificate): the record takes the document as its identity, as
   * the hub's person did (a resident ID is not replaced by a lesser document), and the doses
   * given at that visit.
   */
  completeLink(
    intentId: string,
    recordId: string,
    identity: Identity,
    doses: Dose[],
  ): Promise<void> {
    return this.sql.begin(async (tx) => {
      await lockRecord(tx, recordId);
      await tx`
        UPDATE records SET id_type = ${String(identity.idType)}, id_number = ${identity.idNumber},
          identity = ${this.store.identityJson(identity) as never}, updated_at = now()
        WHERE record_id = ${recordId}
          AND NOT (COALESCE(id_type, '') = ${String(IdType.RESIDENT_ID)} AND ${String(identity.idType)} <> id_type)`;
      await this.store.addDoses(tx, recordId, doses);
      await this.end(tx, intentId, "DONE", null);
    });
  }

  /**
   * Stores a dose on the person's record if this province owns it (ACTIVE here, checked under
   * the record's lock), with the intent to tell the hub. Returns the record id, or undefined if
   * the record is not held here (the caller reports the dose to the hub for routing).
   */
  storeOwnDose(identity: Identity, dose: Dose, request: Uint8Array): Promise<string | undefined> {
    return this.sql.begin(async (tx) => {
      const [candidate] = await tx<{ record_id: string }[]>`
        SELECT record_id FROM records
        WHERE id_type = ${String(identity.idType)} AND id_number = ${identity.idNumber}
          AND status = 'ACTIVE' LIMIT 1`;
      if (!candidate) return undefined;
      const rec = await lockRecord(tx, candidate.record_id);
      // A suspend or a revoke committed between the look-up and the lock: not ours any more.
      if (rec?.status !== "ACTIVE") return undefined;
      const [closing] = await tx`
        SELECT 1 FROM hub_intents
        WHERE record_id = ${rec.record_id} AND kind = 'close' AND state = 'PENDING'`;
      if (closing) {
        throw new LocalRefusal(
          "failed_precondition",
          `record ${rec.record_id} is being closed; no dose can be added`,
          "identity",
        );
      }
      const [held] = await tx<{ n: number }[]>`
        SELECT count(*)::int AS n FROM doses WHERE record_id = ${rec.record_id}`;
      if ((held?.n ?? 0) >= MAX_DOSES_PER_RECORD) {
        throw new LocalRefusal(
          "resource_exhausted",
          `record ${rec.record_id} already holds ${held?.n} doses, the most a record may hold (${MAX_DOSES_PER_RECORD})`,
          "dose",
        );
      }
      const added = await this.store.addDoses(tx, rec.record_id, [dose]);
      if (added > 0) {
        await tx`INSERT INTO hub_intents (id, kind, record_id, request)
          VALUES (${randomUUID()}, 'report-dose', ${rec.record_id}, ${request})`;
      }
      return rec.record_id;
    });
  }

  /** Starts (or resumes) closing a record held here and not CLOSED; the hub decides the rest. */
  beginClose(recordId: string, request: Uint8Array): Promise<Intent> {
    return this.sql.begin(async (tx) => {
      const rec = await lockRecord(tx, recordId);
      if (!rec) {
        throw new LocalRefusal("not_found", `no record ${recordId} here`, "record_id");
      }
      const [pending] = await tx<Intent[]>`
        SELECT id, kind, record_id, request, attempts FROM hub_intents
        WHERE record_id = ${recordId} AND kind = 'close' AND state = 'PENDING'`;
      if (pending) return pending;
      // A record migrated out may still be closed here while its migration is open (a death
      // ends it); the hub decides, and refuses once another province owns the record.
      if (rec.status === "CLOSED") {
        throw new LocalRefusal(
          "failed_precondition",
          `record ${recordId} is CLOSED here`,
          "record_id",
        );
      }
      const [created] = await tx<Intent[]>`
        INSERT INTO hub_intents (id, kind, record_id, request)
        VALUES (${randomUUID()}, 'close', ${recordId}, ${request})
        RETURNING id, kind, record_id, request, attempts`;
      if (!created) throw new Error("close intent was not written");
      return created;
    });
  }

  /** Closes a record the hub closed: CLOSED, its live certificates REVOKED; ends the intent. */
  completeClose(intentId: string, recordId: string, reason: string): Promise<void> {
    return this.sql.begin(async (tx) => {
      await lockRecord(tx, recordId);
      await tx`UPDATE records SET status = 'CLOSED', updated_at = now() WHERE record_id = ${recordId}`;
      const live = await tx<Pick<CertificateRow, "certificate_number">[]>`
        SELECT certificate_number FROM certificates
        WHERE record_id = ${recordId} AND status <> 'REVOKED'`;
      if (live.length > 0) {
        await this.store.changeCertificates(
          tx,
          live.map((c) => ({
            number: c.certificate_number,
            status: "REVOKED" as const,
            cause: `closed: ${reason}`,
            version: 0,
            reason,
            owner: null,
          })),
        );
      }
      await this.end(tx, intentId, "DONE", null);
    });
  }

  /** Starts (or resumes) replacing the certificate of a record this province holds ACTIVE. */
  beginReissue(recordId: string, request: (intentId: string) => Uint8Array): Promise<Intent> {
    return this.sql.begin(async (tx) => {
      const rec = await lockRecord(tx, recordId);
      if (!rec) throw new LocalRefusal("not_found", `no record ${recordId} here`, "record_id");
      const [pending] = await tx<Intent[]>`
        SELECT id, kind, record_id, request, attempts FROM hub_intents
        WHERE record_id = ${recordId} AND kind = 'reissue' AND state = 'PENDING'`;
      if (pending) return pending;
      if (rec.status !== "ACTIVE") {
        throw new LocalRefusal(
          "failed_precondition",
          `record ${recordId} is ${rec.status} here, not ACTIVE: only a valid certificate is reissued`,
          "record_id",
        );
      }
      const id = randomUUID();
      const [created] = await tx<Intent[]>`
        INSERT INTO hub_intents (id, kind, record_id, request)
        VALUES (${id}, 'reissue', ${recordId}, ${request(id)})
        RETURNING id, kind, record_id, request, attempts`;
      if (!created) throw new Error("reissue intent was not written");
      return created;
    });
  }

  /**
   * The hub reissued: the old certificate REVOKED naming its replacement (phones watching it
   * are told), the new one NORMAL; ends the intent.
   */
  completeReissue(intentId: string, replaced: string, certificate: NewCertificate): Promise<void> {
    return this.sql.begin(async (tx) => {
      await lockRecord(tx, certificate.recordId);
      const [held] = await tx`
        SELECT 1 FROM certificates WHERE certificate_number = ${certificate.number}`;
      if (!held) {
        await tx`UPDATE certificates SET replaced_by = ${certificate.number}
          WHERE certificate_number = ${replaced}`;
        await this.store.changeCertificates(tx, [
          {
            number: replaced,
            status: "REVOKED",
            cause: `reissued as ${certificate.number}`,
            version: 0,
            reason: "REISSUED",
            owner: null,
          },
        ]);
        await this.store.insertCertificate(tx, certificate);
      }
      await this.end(tx, intentId, "DONE", null);
    });
  }

  /** Ends an intent whose only local part was written with it (a dose report). */
  async done(intentId: string): Promise<void> {
    await this.end(this.sql, intentId, "DONE", null);
  }

  /** The hub said no: the intent ends, with why. */
  async refused(intentId: string, why: string): Promise<void> {
    await this.end(this.sql, intentId, "REFUSED", why);
  }

  /** The hub did not answer: the intent stays pending, with what was seen. */
  async failed(intentId: string, why: string): Promise<void> {
    await this.sql`UPDATE hub_intents SET attempts = attempts + 1, last_error = ${why}
      WHERE id = ${intentId}`;
  }

  /** Pending intents, oldest first; of one record only, if given. */
  pending(limit: number, recordId?: string): Promise<Intent[]> {
    return recordId === undefined
      ? this.sql<Intent[]>`
          SELECT id, kind, record_id, request, attempts FROM hub_intents
          WHERE state = 'PENDING' ORDER BY created_at, id LIMIT ${limit}`
      : this.sql<Intent[]>`
          SELECT id, kind, record_id, request, attempts FROM hub_intents
          WHERE state = 'PENDING' AND record_id = ${recordId} ORDER BY created_at, id LIMIT ${limit}`;
  }

  /** The record's dose-report intents in any state, newest first. */
  doseReports(
    recordId: string,
  ): Promise<(Intent & { state: string; last_error: string | null })[]> {
    return this.sql<(Intent & { state: string; last_error: string | null })[]>`
      SELECT id, kind, record_id, request, attempts, state, last_error FROM hub_intents
      WHERE kind = 'report-dose' AND record_id = ${recordId} ORDER BY created_at DESC, id`;
  }

  private async end(
    sql: Sql | TransactionSql,
    intentId: string,
    state: "DONE" | "REFUSED",
    why: string | null,
  ): Promise<void> {
    await sql`UPDATE hub_intents SET state = ${state}, last_error = ${why}, ended_at = now()
      WHERE id = ${intentId} AND state = 'PENDING'`;
  }
}
