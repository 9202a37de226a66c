import { randomUUID } from "node:crypto";
import { GroupCommit } from "@evc-interop/runtime";
import type { PendingQuery, Row, Sql, TransactionSql } from "postgres";
import { directiveMessage, encodeDirective } from "../domain/codec.js";
import { type Command, decide } from "../domain/decide.js";
import { Refusal } from "../domain/errors.js";
import { directivesOf, evolve } from "../domain/person.js";
import type { DecideContext, HubEvent, PersonState } from "../domain/types.js";
import { initialState, SAGA_STEP_ACTIONS } from "../domain/types.js";
import { carriesIdentity, dataKeys, sealIdentities } from "./identity-seal.js";
import { type ProjectionRows, projectionQueries, projectionRows } from "./projection.js";
import {
  fence,
  lockDispositions,
  type Mark,
  markReceipts,
  type ReceiptToMark,
  type ReceiptVerdict,
} from "./receipt-marks.js";
import { type Columns, unnestRows } from "./unnest.js";

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
  /**
   * Group commit: commands arriving while a transaction is in flight are executed together in
   * the next one, up to this many (1 turns it off: one transaction per command). Default 64.
   */
  maxBatch?: number;
}

interface PgError {
  code?: string;
  constraint_name?: string;
}

function pgError(err: unknown): PgError {
  return typeof err === "object" && err !== null ? (err as PgError) : {};
}

const MAX_CONFLICT_RETRIES = 12;

const EVENT_COLUMNS: Columns = {
  event_id: "uuid",
  stream_id: "text",
  stream_version: "bigint",
  type: "text",
  data: "jsonb",
  recorded_at: "timestamptz",
};
const DIRECTIVE_COLUMNS: Columns = {
  directive_id: "uuid",
  province: "text",
  person_key: "text",
  record_id: "text",
  record_sequence: "bigint",
  migration_id: "uuid",
  action: "text",
  attempt: "int",
  payload: "bytea",
  created_at: "timestamptz",
  next_publish_at: "timestamptz",
};
const IDEMPOTENCY_COLUMNS: Columns = {
  province: "text",
  idempotency_key: "text",
  request_hash: "text",
  response: "bytea",
};

/** A command (or a receipt to record, or both) waiting for its transaction. */
interface Job {
  personKey: string;
  /** Absent for a receipt no saga waits on: it is recorded, and no person changes. */
  cmd?: Command;
  respond: (state: PersonState, events: HubEvent[]) => unknown;
  options: ExecuteOptions<unknown>;
  /** A receipt recorded in the command's transaction (fenced first: see receipt-marks.ts). */
  receipt?: ReceiptToMark;
  resolve: (r: ExecuteResult<unknown>) => void;
  reject: (err: unknown) => void;
}

/** What one job of a batch came to: a result, or a refusal of its command alone. */
type Outcome = { ok: true; result: ExecuteResult<unknown> } | { ok: false; error: unknown };

/** A job's events and what they change, ready to be written. */
interface Planned {
  job: Job;
  before: PersonState;
  events: HubEvent[];
  rows: {
    event_id: string;
    stream_id: string;
    stream_version: number;
    type: string;
    data: unknown;
    recorded_at: Date;
  }[];
}

/**
 * The hub's PostgreSQL store: executes a command against a person's stream in one transaction
 * (load state, decide, append events with the expected version, update the snapshot
 * projection, write the outbox), retrying on concurrent appends to the same stream.
 *
 * Commands are group-committed: those that arrive while a transaction is in flight go together
 * into the next transaction, each person at most once per transaction, with multi-row
 * statements. A command refused by the rules fails alone; if the batch as a whole cannot
 * commit (a concurrent append by another replica, a constraint), every command in it is
 * executed again on its own, so batching never changes what a caller sees.
 */
export class HubStore {
  readonly clock: () => Date;
  readonly newId: () => string;
  private readonly maxBatch: number;
  private readonly commit: GroupCommit<Job>;

  constructor(
    readonly sql: Sql,
    private readonly opts: HubStoreOptions,
  ) {
    this.clock = opts.clock ?? (() => new Date());
    this.newId = opts.newId ?? randomUUID;
    this.maxBatch = Math.max(1, opts.maxBatch ?? 64);
    this.commit = new GroupCommit<Job>({
      maxBatch: this.maxBatch,
      keys: jobKeys,
      // Persons in one order in every transaction, so two transactions appending for the same
      // persons wait for each other instead of deadlocking.
      compare: (a, b) => (a.personKey < b.personKey ? -1 : a.personKey > b.personKey ? 1 : 0),
      runBatch: async (jobs) => {
        const outcomes = await this.sql.begin((tx) => this.executeRound(tx, jobs));
        outcomes.forEach((o, i) => {
          const job = jobs[i] as Job;
          if (o.ok) job.resolve(o.result);
          else job.reject(o.error);
        });
      },
      runAlone: (job) => this.executeAlone(job).then(job.resolve, job.reject),
    });
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
  execute<R>(
    personKey: string,
    cmd: Command,
    respond: (state: PersonState, events: HubEvent[]) => R,
    options: ExecuteOptions<R> = {},
  ): Promise<ExecuteResult<R>> {
    return new Promise<ExecuteResult<R>>((resolve, reject) => {
      this.commit.submit(toJob(personKey, cmd, respond, options, resolve, reject));
    });
  }

  /**
   * Runs commands of distinct persons now (not through the group-commit queue), in as few
   * transactions as their persons allow, with multi-row statements (onboarding's batches). A
   * command refused by the rules fails alone; each settles on its own, in the order given.
   */
  executeMany<R>(
    items: readonly {
      personKey: string;
      cmd: Command;
      respond: (state: PersonState, events: HubEvent[]) => R;
    }[],
  ): Promise<PromiseSettledResult<ExecuteResult<R>>[]> {
    const jobs: Job[] = [];
    const settled = items.map(
      (item) =>
        new Promise<ExecuteResult<R>>((resolve, reject) => {
          jobs.push(toJob(item.personKey, item.cmd, item.respond, {}, resolve, reject));
        }),
    );
    const all = Promise.allSettled(settled);
    return this.commit.runNow(jobs).then(() => all);
  }

  /**
   * Records receipts now (not through the group-commit queue), each in the transaction of the
   * saga command it moves on, if any; as few transactions as their persons and directives
   * allow. Fenced first, under the directive's row lock: a directive already answered makes the
   * receipt DUPLICATE; another attempt than the directive's makes it REFUSED; a command refused
   * as STALE_ATTEMPT (the saga moved past it) records it REFUSED. Any other refusal of a
   * command fails that receipt alone. Each settles on its own, in the order given.
   */
  recordReceipts(
    items: readonly { personKey: string; receipt: ReceiptToMark; cmd?: Command }[],
  ): Promise<PromiseSettledResult<ReceiptVerdict>[]> {
    const jobs: Job[] = [];
    const recorded: ReceiptVerdict = { disposition: "RECORDED", detail: "" };
    const settled = items.map(
      (item) =>
        new Promise<ReceiptVerdict>((resolve, reject) => {
          const job = toJob(
            item.personKey,
            item.cmd,
            () => recorded,
            {},
            (r) => resolve(r.response),
            reject,
          );
          job.receipt = item.receipt;
          jobs.push(job);
        }),
    );
    const all = Promise.allSettled(settled);
    return this.commit.runNow(jobs).then(() => all);
  }

  /**
   * One transaction for commands of distinct persons (and receipts of distinct directives).
   * Throws if it cannot commit as a whole.
   */
  private async executeRound(tx: TransactionSql, jobs: Job[]): Promise<Outcome[]> {
    const outcomes: (Outcome | undefined)[] = new Array(jobs.length);
    const idemJobs = jobs.filter((j) => j.options.idempotency);
    const persons = jobs.filter((j) => j.cmd).map((j) => j.personKey);
    // Every read in one pipelined round: persons with their data keys (sealing an identity
    // then costs no round trip), earlier answers to idempotency keys, and the dispositions of
    // the directives receipts answer, whose rows stay locked to the end of the transaction.
    const [personRows, idemRows, dispositions] = await Promise.all([
      persons.length === 0
        ? Promise.resolve([])
        : tx<{ person_key: string; state: PersonState; dek: Buffer | null }[]>`
            SELECT p.person_key, p.state, k.dek
            FROM persons p LEFT JOIN person_keys k ON k.person_key = p.person_key
            WHERE p.person_key = ANY(${persons}::text[])`,
      idemJobs.length === 0
        ? Promise.resolve([])
        : tx<
            {
              province: string;
              idempotency_key: string;
              request_hash: string;
              response: Uint8Array;
            }[]
          >`
            SELECT province, idempotency_key, request_hash, response FROM idempotency
            WHERE (province, idempotency_key) IN (
              SELECT * FROM unnest(${idemJobs.map((j) => j.options.idempotency?.province ?? "")}::text[],
                                   ${idemJobs.map((j) => j.options.idempotency?.key ?? "")}::text[]))`,
      lockDispositions(
        tx,
        jobs.flatMap((j) => (j.receipt ? [j.receipt.directiveId] : [])),
      ),
    ]);
    const stateOf = new Map(personRows.map((r) => [r.person_key, r.state]));
    const prior = new Map(idemRows.map((r) => [`${r.province}\u0000${r.idempotency_key}`, r]));
    const marks: Mark[] = [];

    // Replays of earlier requests and fenced receipts end here; the rest are decided.
    const pending: number[] = [];
    jobs.forEach((job, i) => {
      const state = stateOf.get(job.personKey) ?? initialState();
      const replay = (response: unknown): Outcome => ({
        ok: true,
        result: { state, events: [], response, replayed: true },
      });
      if (job.receipt) {
        const fenced = fence(job.receipt, dispositions.get(job.receipt.directiveId) ?? null);
        if (fenced) {
          outcomes[i] = replay(fenced);
          return;
        }
      }
      const idem = job.options.idempotency;
      const row = idem ? prior.get(`${idem.province}\u0000${idem.key}`) : undefined;
      if (!idem || !row) {
        pending.push(i);
        return;
      }
      if (row.request_hash !== idem.requestHash) {
        outcomes[i] = { ok: false, error: keyReused(idem.key) };
        return;
      }
      if (!job.options.decode) throw new Error("idempotent execute needs decode");
      outcomes[i] = replay(job.options.decode(row.response));
    });
    const now = this.clock();
    const planned: Planned[] = [];
    for (const i of pending) {
      const job = jobs[i] as Job;
      const before = stateOf.get(job.personKey) ?? initialState();
      if (!job.cmd) {
        // A receipt no saga waits on: recorded, nothing else changes.
        if (job.receipt) marks.push({ receipt: job.receipt, disposition: "RECORDED" });
        outcomes[i] = {
          ok: true,
          result: { state: before, events: [], response: job.respond(before, []), replayed: false },
        };
        continue;
      }
      let events: HubEvent[];
      try {
        events = decide(before, job.cmd, {
          now,
          newId: this.newId,
          deadlines: this.opts.deadlines,
        });
      } catch (err) {
        if (!(err instanceof Refusal)) throw err;
        if (job.receipt && err.reason === "STALE_ATTEMPT") {
          // The saga moved past this attempt: the receipt is kept as the directive's delivery
          // record, and changes nothing else.
          marks.push({ receipt: job.receipt, disposition: "REFUSED" });
          const verdict: ReceiptVerdict = { disposition: "REFUSED", detail: err.message };
          outcomes[i] = {
            ok: true,
            result: { state: before, events: [], response: verdict, replayed: false },
          };
        } else outcomes[i] = { ok: false, error: err };
        continue;
      }
      planned.push({
        job,
        before,
        events,
        rows: eventRows(this.newId, job.personKey, before, events, now),
      });
    }

    // Append every planned event in one statement; the UNIQUE (stream_id, stream_version)
    // constraint is the expected-version check of each.
    const known = new Map<string, Buffer>();
    for (const r of personRows) if (r.dek) known.set(r.person_key, r.dek);
    const allRows = await sealRows(
      tx,
      planned.flatMap((p) => p.rows),
      known,
    );
    const positions = new Map<string, number>();
    if (allRows.length > 0) {
      const inserted = await tx<{ position: string; event_id: string }[]>`
        INSERT INTO events ${unnestRows(tx, EVENT_COLUMNS, allRows)} RETURNING position, event_id`;
      for (const r of inserted) positions.set(r.event_id, Number(r.position));
    }
    const changes = planned.map((p) => this.fold(p, positions, now));
    const responses = changes.map((c) => c.plan.job.respond(c.state, c.plan.events));

    const writes: PendingQuery<Row[]>[] = [];
    const projections = mergeProjections(
      changes.map((c) =>
        projectionRows(c.plan.job.personKey, c.state, (v) => v > c.plan.before.version),
      ),
    );
    writes.push(...projectionQueries(tx, projections));
    const created = changes.filter((c) => c.plan.events.length > 0 && c.plan.before.version === 0);
    const updated = changes.filter((c) => c.plan.events.length > 0 && c.plan.before.version > 0);
    if (created.length > 0) writes.push(personsInsert(tx, created));
    const links = documentLinks(created, changes);
    if (links.length > 0) writes.push(linksInsert(tx, links));
    if (updated.length > 0) writes.push(personsUpdate(tx, updated));
    // Settled by an operator, or steps of a migration that ended: no longer republished nor
    // alarmed. Only what was published (a province orders by sequence: one never published
    // would hold up its successors; the relay supersedes those as it publishes them).
    const superseded = changes.flatMap((c) => c.superseded);
    if (superseded.length > 0)
      writes.push(tx`UPDATE directives SET state = 'SUPERSEDED'
        WHERE directive_id = ANY(${superseded}::uuid[]) AND publish_count > 0
          AND state IN ('PENDING', 'DELIVERED', 'FAILED', 'REJECTED')`);
    const ended = changes.flatMap((c) => c.ended);
    if (ended.length > 0)
      writes.push(tx`UPDATE directives SET state = 'SUPERSEDED'
        WHERE migration_id = ANY(${ended}::uuid[]) AND action = ANY(${SAGA_STEP_ACTIONS}::text[])
          AND receipt IS NULL AND publish_count > 0 AND state IN ('PENDING', 'DELIVERED', 'FAILED')`);
    const rearm = changes.flatMap((c) => c.rearm);
    if (rearm.length > 0)
      writes.push(tx`UPDATE directives SET state = 'PENDING', publish_count = 0, next_publish_at = ${now}
        WHERE directive_id = ANY(${rearm}::uuid[]) AND receipt IS NULL`);
    const outbox = changes.flatMap((c) => c.outbox);
    if (outbox.length > 0)
      writes.push(tx`INSERT INTO directives ${unnestRows(tx, DIRECTIVE_COLUMNS, outbox)}`);
    if (outbox.length > 0 || rearm.length > 0)
      writes.push(tx`SELECT pg_notify(${this.opts.notifyChannel}, '')`);
    const idemWrites = changes.flatMap((c, n) => {
      const idem = c.plan.job.options.idempotency;
      if (!idem) return [];
      const encode = c.plan.job.options.encode;
      if (!encode) throw new Error("idempotent execute needs encode");
      return [
        {
          province: idem.province,
          idempotency_key: idem.key,
          request_hash: idem.requestHash,
          response: encode(responses[n]),
        },
      ];
    });
    if (idemWrites.length > 0) {
      writes.push(tx`INSERT INTO idempotency ${unnestRows(tx, IDEMPOTENCY_COLUMNS, idemWrites)}`);
    }
    for (const c of changes) {
      const r = c.plan.job.receipt;
      if (r) marks.push({ receipt: r, disposition: "RECORDED" });
    }
    if (marks.length > 0) writes.push(markReceipts(tx, marks, now));
    await Promise.all(writes);
    changes.forEach((c, n) => {
      const i = jobs.indexOf(c.plan.job);
      outcomes[i] = {
        ok: true,
        result: { state: c.state, events: c.plan.events, response: responses[n], replayed: false },
      };
    });
    return outcomes.map((o) => o ?? { ok: false, error: new Error("command was not executed") });
  }

  /** One command in its own transaction, retried on concurrent appends to the same stream. */
  private async executeAlone(job: Job): Promise<ExecuteResult<unknown>> {
    for (let attempt = 1; ; attempt++) {
      let outcome: Outcome | undefined;
      try {
        [outcome] = await this.sql.begin((tx) => this.executeRound(tx, [job]));
      } catch (err) {
        const e = pgError(err);
        if (e.code !== "23505") throw err;
        if (e.constraint_name === "document_links_pkey") {
          // A new person under a document another transaction linked to someone at the same
          // moment, or a document linked twice at once: the caller's next call finds the link.
          throw new Refusal(
            "aborted",
            "VERSION_CONFLICT",
            "the identity document was linked to a person by another request at the same moment; call again",
            { field: "identity" },
          );
        }
        if (e.constraint_name === "certificates_pkey") {
          throw new Refusal(
            "already_exists",
            "INVALID_FIELD",
            "certificate number is already in use",
            { field: "certificate_number" },
          );
        }
        // Another transaction appended to the same stream (or took the same per-person lock,
        // or the same idempotency key) first: re-read and decide again.
        if (attempt < MAX_CONFLICT_RETRIES) {
          await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
          continue;
        }
        const current = await this.load(job.personKey);
        throw new Refusal(
          "aborted",
          "VERSION_CONFLICT",
          "too many concurrent changes to this person; retry",
          { currentVersion: current.version },
        );
      }
      if (!outcome?.ok) throw outcome?.error ?? new Error("command was not executed");
      return outcome.result;
    }
  }

  /** Folds a job's appended events into its new state and the directives they imply. */
  private fold(plan: Planned, positions: Map<string, number>, now: Date): Folded {
    let state = plan.before;
    const outbox: Record<string, unknown>[] = [];
    const rearm: string[] = [];
    const superseded: string[] = [];
    const ended: string[] = [];
    plan.events.forEach((event, i) => {
      const row = plan.rows[i];
      const meta = {
        version: plan.before.version + i + 1,
        position: positions.get(row?.event_id ?? "") ?? 0,
      };
      state = evolve(state, event, meta);
      // A re-driven compensation: the unanswered revoke goes out again, its publishes reset.
      if (event.type === "CompensationRetried") {
        const awaited = state.migrations[event.data.migrationId]?.awaitingDirectiveId;
        if (awaited) rearm.push(awaited);
      }
      // An operator's re-drive of a dead-lettered directive: the same.
      if (event.type === "DirectiveRedriven") rearm.push(event.data.directiveId);
      if (event.type === "DirectiveSuperseded") superseded.push(event.data.directiveId);
      if (ENDED_BY.has(event.type) && "migrationId" in event.data)
        ended.push(event.data.migrationId);
      if (event.type === "RecordClosed" && event.data.endedMigrationId)
        ended.push(event.data.endedMigrationId);
      for (const intent of directivesOf(event)) {
        const message = directiveMessage(intent, {
          eventId: row?.event_id ?? "",
          streamVersion: meta.version,
          at: now,
        });
        outbox.push({
          directive_id: intent.directiveId,
          province: intent.province,
          person_key: plan.job.personKey,
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
    return { plan, state, outbox, rearm, superseded, ended };
  }
}

/** A job's appended events folded: its new state and what they do to the outbox. */
interface Folded {
  plan: Planned;
  state: PersonState;
  outbox: Record<string, unknown>[];
  /** Directives sent again (their publishes reset). */
  rearm: string[];
  /** Directives an operator settled. */
  superseded: string[];
  /** Migrations that ended: their unanswered steps are superseded. */
  ended: string[];
}

/** The events that end a migration. */
const ENDED_BY = new Set<HubEvent["type"]>([
  "MigrationCompleted",
  "MigrationRejected",
  "MigrationCancelled",
  "MigrationCompensated",
]);

function toJob<R>(
  personKey: string,
  cmd: Command | undefined,
  respond: (state: PersonState, events: HubEvent[]) => R,
  options: ExecuteOptions<R>,
  resolve: (r: ExecuteResult<R>) => void,
  reject: (err: unknown) => void,
): Job {
  return {
    personKey,
    ...(cmd ? { cmd } : {}),
    respond,
    options: options as ExecuteOptions<unknown>,
    resolve: resolve as (r: ExecuteResult<unknown>) => void,
    reject,
  };
}

/**
 * What a job occupies in a transaction: its person (if it has a command), its idempotency key,
 * the directive its receipt answers.
 */
function jobKeys(job: Job): string[] {
  const idem = job.options.idempotency;
  return [
    ...(job.cmd ? [`p:${job.personKey}`] : []),
    ...(idem ? [`i:${idem.province}\u0000${idem.key}`] : []),
    ...(job.receipt ? [`d:${job.receipt.directiveId}`] : []),
  ];
}

function keyReused(key: string): Refusal {
  return new Refusal(
    "already_exists",
    "IDEMPOTENCY_KEY_REUSED",
    `idempotency key ${key} was already used with a different request`,
    { field: "idempotency_key" },
  );
}

/** The rows with every identity sealed under its person's data key (crypto-shredding). */
async function sealRows(
  tx: TransactionSql,
  rows: Planned["rows"],
  known: ReadonlyMap<string, Buffer>,
): Promise<Planned["rows"]> {
  const needing = new Set(rows.filter((r) => carriesIdentity(r.type, r.data)));
  if (needing.size === 0) return rows;
  // Keys read with the persons' states; made (or read) only for persons without one yet.
  const missing = [...needing].map((r) => r.stream_id).filter((k) => !known.has(k));
  const keys = new Map([...known, ...(await dataKeys(tx, missing))]);
  return rows.map((r) => {
    const key = keys.get(r.stream_id);
    return key && needing.has(r) ? { ...r, data: sealIdentities(r.data, key, r.stream_id) } : r;
  });
}

function eventRows(
  newId: () => string,
  personKey: string,
  before: PersonState,
  events: HubEvent[],
  now: Date,
): Planned["rows"] {
  return events.map((e, i) => ({
    event_id: newId(),
    stream_id: personKey,
    stream_version: before.version + i + 1,
    type: e.type,
    data: e.data,
    recorded_at: now,
  }));
}

function mergeProjections(parts: ProjectionRows[]): ProjectionRows {
  return {
    records: parts.flatMap((p) => p.records),
    // NORMAL last across the batch too (the one-NORMAL index is per person).
    certificates: parts
      .flatMap((p) => p.certificates)
      .sort((a, b) => Number(a.status === "NORMAL") - Number(b.status === "NORMAL")),
    migrations: parts.flatMap((p) => p.migrations),
  };
}

interface Change {
  plan: Planned;
  state: PersonState;
}

/**
 * The documents a round makes known (table document_links): a new person's own document (its
 * stream key) and every document linked to a person. A document already known refuses the
 * round (its primary key): one document, one person.
 */
function documentLinks(created: Change[], changes: Change[]): [string, string][] {
  const links: [string, string][] = created.map((c) => [
    c.plan.job.personKey,
    c.plan.job.personKey,
  ]);
  for (const c of changes)
    for (const e of c.plan.events)
      if (e.type === "DocumentLinked") links.push([e.data.documentKey, c.plan.job.personKey]);
  return links;
}

function linksInsert(tx: TransactionSql, links: [string, string][]): PendingQuery<Row[]> {
  return tx`INSERT INTO document_links (document_key, person_key)
    SELECT * FROM unnest(${links.map((l) => l[0])}::text[], ${links.map((l) => l[1])}::text[])`;
}

/** The persons' new states as one JSON array (see unnestRows: no per-element escaping). */
function personRows(changes: Change[]): string {
  return JSON.stringify(
    changes.map((c) => ({ k: c.plan.job.personKey, v: c.state.version, s: c.state })),
  );
}

function personsInsert(tx: TransactionSql, changes: Change[]): PendingQuery<Row[]> {
  return tx`INSERT INTO persons (person_key, version, state)
    SELECT k, v, s FROM jsonb_to_recordset((${personRows(changes)}::text)::jsonb)
      AS u(k text, v int, s jsonb)`;
}

function personsUpdate(tx: TransactionSql, changes: Change[]): PendingQuery<Row[]> {
  return tx`UPDATE persons p SET version = u.v, state = u.s
    FROM jsonb_to_recordset((${personRows(changes)}::text)::jsonb) AS u(k text, v int, s jsonb)
    WHERE p.person_key = u.k`;
}
