import { randomUUID } from "node:crypto";
import type { PendingQuery, Row, Sql, TransactionSql } from "postgres";
import { directiveMessage, encodeDirective } from "../domain/codec.js";
import { type Command, decide } from "../domain/decide.js";
import { Refusal } from "../domain/errors.js";
import { directivesOf, evolve } from "../domain/person.js";
import type { DecideContext, HubEvent, PersonState } from "../domain/types.js";
import { initialState } from "../domain/types.js";
import { projectionQueries, projectionRows } from "./projection.js";

/** Idempotency of a request: the same (province, key) must carry the same request hash. */
export interface Idempotency {
  province: string;
  key: string;
  requestHash: string;
}

export interface ExecuteOptions<R> {
  idempotency?: Idempotency;
  encode?: (r: R) => Uint8Array;
  decode?: (b: Uint8Array) => R;
  /** Runs first in the transaction; a returned value short-circuits the command. */
  before?: (tx: TransactionSql) => Promise<R | undefined>;
  /** Runs last in the transaction, after events, projections and outbox were written. */
  after?: (tx: TransactionSql, state: PersonState, events: HubEvent[]) => Promise<void>;
}

export interface ExecuteResult<R> {
  state: PersonState;
  events: HubEvent[];
  response: R;
  /** True when the response was replayed from an earlier request with the same key. */
  replayed: boolean;
}

export interface HubStoreOptions {
  /** Clock and id source (tests inject fixed ones). */
  clock?: () => Date;
  newId?: () => string;
  deadlines: DecideContext["deadlines"];
  /** Notification channel that wakes the relay. */
  notifyChannel: string;
}

interface PgError {
  code?: string;
  constraint_name?: string;
}

function pgError(err: unknown): PgError {
  return typeof err === "object" && err !== null ? (err as PgError) : {};
}

const MAX_CONFLICT_RETRIES = 12;

/**
 * The hub's PostgreSQL store: executes a command against a person's stream in one transaction
 * (load state, decide, append events with the expected version, update the snapshot
 * projection, write the outbox), retrying on concurrent appends to the same stream.
 */
export class HubStore {
  readonly clock: () => Date;
  readonly newId: () => string;

  constructor(
    readonly sql: Sql,
    private readonly opts: HubStoreOptions,
  ) {
    this.clock = opts.clock ?? (() => new Date());
    this.newId = opts.newId ?? randomUUID;
  }

  /** Reads a person's state (strongly consistent: the primary's committed state). */
  async load(personKey: string, tx: Sql | TransactionSql = this.sql): Promise<PersonState> {
    const rows = await tx<{ state: PersonState }[]>`
      SELECT state FROM persons WHERE person_key = ${personKey}`;
    return rows[0]?.state ?? initialState();
  }

  /**
   * Runs `cmd` for one person. `respond` builds the RPC response from the resulting state (it is
   * stored under the idempotency key, if any, in the same transaction).
   */
  async execute<R>(
    personKey: string,
    cmd: Command,
    respond: (state: PersonState, events: HubEvent[]) => R,
    options: ExecuteOptions<R> = {},
  ): Promise<ExecuteResult<R>> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.sql.begin((tx) => this.executeOnce(tx, personKey, cmd, respond, options));
      } catch (err) {
        const e = pgError(err);
        if (e.code === "23505") {
          if (e.constraint_name === "certificates_pkey") {
            throw new Refusal(
              "already_exists",
              "INVALID_FIELD",
              "certificate number is already in use",
              { field: "certificate_number" },
            );
          }
          // Another transaction appended to the same stream (or took the same per-person
          // lock) first: re-read and decide again.
          if (attempt < MAX_CONFLICT_RETRIES) {
            await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
            continue;
          }
          const current = await this.load(personKey);
          throw new Refusal(
            "aborted",
            "VERSION_CONFLICT",
            "too many concurrent changes to this person; retry",
            { currentVersion: current.version },
          );
        }
        throw err;
      }
    }
  }

  private async executeOnce<R>(
    tx: TransactionSql,
    personKey: string,
    cmd: Command,
    respond: (state: PersonState, events: HubEvent[]) => R,
    options: ExecuteOptions<R>,
  ): Promise<ExecuteResult<R>> {
    const idem = options.idempotency;
    if (idem) {
      const prior = await tx<{ request_hash: string; response: Uint8Array }[]>`
        SELECT request_hash, response FROM idempotency
        WHERE province = ${idem.province} AND idempotency_key = ${idem.key}`;
      const row = prior[0];
      if (row) {
        if (row.request_hash !== idem.requestHash) {
          throw new Refusal(
            "already_exists",
            "IDEMPOTENCY_KEY_REUSED",
            `idempotency key ${idem.key} was already used with a different request`,
            { field: "idempotency_key" },
          );
        }
        if (!options.decode) throw new Error("idempotent execute needs decode");
        const state = await this.load(personKey, tx);
        return { state, events: [], response: options.decode(row.response), replayed: true };
      }
    }

    if (options.before) {
      const early = await options.before(tx);
      if (early !== undefined) {
        return {
          state: await this.load(personKey, tx),
          events: [],
          response: early,
          replayed: true,
        };
      }
    }
    const before = await this.load(personKey, tx);
    const now = this.clock();
    const events = decide(before, cmd, { now, newId: this.newId, deadlines: this.opts.deadlines });
    let state = before;
    if (events.length > 0) {
      state = await this.append(tx, personKey, before, events, now);
    }
    if (options.after) await options.after(tx, state, events);
    const response = respond(state, events);
    if (idem) {
      if (!options.encode) throw new Error("idempotent execute needs encode");
      await tx`INSERT INTO idempotency (province, idempotency_key, request_hash, response)
        VALUES (${idem.province}, ${idem.key}, ${idem.requestHash}, ${options.encode(response)})`;
    }
    return { state, events, response, replayed: false };
  }

  /** Appends events at the expected version, then updates projections and the outbox. */
  private async append(
    tx: TransactionSql,
    personKey: string,
    before: PersonState,
    events: HubEvent[],
    now: Date,
  ): Promise<PersonState> {
    const rows = events.map((e, i) => ({
      event_id: this.newId(),
      stream_id: personKey,
      stream_version: before.version + i + 1,
      type: e.type,
      data: e.data,
      recorded_at: now,
    }));
    // The UNIQUE (stream_id, stream_version) constraint is the expected-version check.
    const inserted = await tx<{ position: string; event_id: string }[]>`
      INSERT INTO events ${tx(rows as never)}
      RETURNING position, event_id`;
    let state = before;
    const outbox: Record<string, unknown>[] = [];
    events.forEach((event, i) => {
      const meta = { version: before.version + i + 1, position: Number(inserted[i]?.position) };
      state = evolve(state, event, meta);
      for (const intent of directivesOf(event)) {
        const message = directiveMessage(intent, {
          eventId: inserted[i]?.event_id ?? "",
          streamVersion: meta.version,
          at: now,
        });
        outbox.push({
          directive_id: intent.directiveId,
          province: intent.province,
          person_key: personKey,
          record_id: intent.recordId,
          record_sequence: intent.recordSequence,
          migration_id: intent.migrationId ?? null,
          action: intent.action.kind,
          attempt: intent.attempt,
          payload: encodeDirective(message),
          created_at: now,
          next_publish_at: now,
        });
      }
    });
    // Everything below depends only on the new state: send it pipelined, in order.
    const writes: PendingQuery<Row[]>[] = projectionQueries(
      tx,
      projectionRows(personKey, state, (version) => version > before.version),
    );
    const newDoses = [...newDoseIds(before, state)];
    const dosesAt = writes.length;
    if (newDoses.length > 0) {
      writes.push(tx`INSERT INTO doses ${tx(newDoses.map((dose_id) => ({ dose_id, person_key: personKey })))}
        ON CONFLICT (dose_id) DO NOTHING RETURNING dose_id`);
    }
    writes.push(
      before.version === 0
        ? tx`INSERT INTO persons (person_key, version, state)
            VALUES (${personKey}, ${state.version}, ${tx.json(state as never)})`
        : tx`UPDATE persons SET version = ${state.version}, state = ${tx.json(state as never)}
            WHERE person_key = ${personKey}`,
    );
    if (outbox.length > 0) {
      writes.push(tx`INSERT INTO directives ${tx(outbox as never)}`);
      writes.push(tx`SELECT pg_notify(${this.opts.notifyChannel}, '')`);
    }
    const results = await Promise.all(writes);
    if (newDoses.length > 0 && results[dosesAt]?.length !== newDoses.length) {
      throw new Refusal(
        "already_exists",
        "INVALID_FIELD",
        "dose id is already in use for another person",
        {
          field: "dose.dose_id",
        },
      );
    }
    return state;
  }
}

/** Dose ids the hub learned with this change (on records or held by a migration). */
function newDoseIds(before: PersonState, after: PersonState): Set<string> {
  const known = new Set<string>();
  for (const r of Object.values(before.records)) for (const d of r.doses) known.add(d.doseId);
  for (const m of Object.values(before.migrations))
    for (const d of m.heldDoses) known.add(d.doseId);
  const fresh = new Set<string>();
  for (const r of Object.values(after.records))
    for (const d of r.doses) if (!known.has(d.doseId)) fresh.add(d.doseId);
  for (const m of Object.values(after.migrations))
    for (const d of m.heldDoses) if (!known.has(d.doseId)) fresh.add(d.doseId);
  return fresh;
}
