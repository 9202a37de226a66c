import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { createValidator } from "@bufbuild/protovalidate";
import { type Directive, DirectiveSchema } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import {
  type BusLayout,
  type DirectiveVerifier,
  isApiError,
  provinceConsumer,
  provisionProvinceConsumer,
  SIGNATURE_HEADER,
} from "@evc-interop/runtime";
import {
  type ConsumerMessages,
  JetStreamApiCodes,
  type JsMsg,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { notAddressedHere } from "./domain/decide.js";
import { gapProvenClosed, type HubGaps, inRecordOrder } from "./lost-predecessors.js";
import type { ProvinceMetrics } from "./metrics.js";
import { ParkedStore } from "./store/parked.js";
import type { ApplyResult, ProvinceStore } from "./store/store.js";

export interface AgentOptions {
  layout: BusLayout;
  /** Directives processed at once (different records run in parallel; one record in order). */
  concurrency: number;
  /** Create the durable consumer if the hub has not provisioned it (needs the permission). */
  provisionConsumer: boolean;
  /** A directive parked for an earlier one of its record this long becomes poison. */
  gapHoldMs: number;
  /** A record whose directive is still parked after this long is resynced (see resync). */
  gapResyncMs: number;
  /**
   * Brings the records that are provably behind the hub (its answered directive sequence above
   * theirs) up to its snapshot — certificates, contents, sequence — so a gap left by a restored
   * backup is closed (#28). Returns the directives of those records the hub holds no receipt
   * for (it waits for them, or gave up on them) and the province has not applied: they are
   * applied first, in order; and the sequences without a receipt per record: a parked
   * directive whose gap holds none of them is applied over it (the province lost what the hub
   * holds receipts for — a record the hub has no certificate of here, which reconciliation
   * cannot bring back). A gap the hub cannot prove is left to fill. Absent: a gap waits for its
   * directives or the gap hold.
   */
  resync?: (recordIds: string[]) => Promise<HubGaps>;
  /** The hub's directive keys: a message whose signature does not verify is never applied. */
  verifier: DirectiveVerifier;
  /** Testing only: simulate a crash after the local commit and before the ack. */
  crashAfterCommit?: (d: Directive) => boolean;
}

const validator = createValidator();

/** How often the agent checks that its consumer still exists. */
const CONSUMER_PROBE_MS = 2000;

function backoffMs(redeliveries: number): number {
  return Math.min(100 * 2 ** redeliveries, 10_000);
}

/**
 * The directive agent: a durable JetStream consumer on this province's subject only, applying
 * each directive in one local transaction with its inbox row, acking only after the commit,
 * then handing the receipt to the submitter. Duplicates return the stored receipt; transient
 * failures are nak'd with backoff; poison is recorded, then acknowledged; a directive whose
 * predecessor is missing is parked in the store (and acknowledged), applied after it, and
 * dead-lettered as poison if the gap is not filled within gapHoldMs.
 */
export class DirectiveAgent {
  private messages: ConsumerMessages | undefined;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly parked: ParkedStore;
  /**
   * Records with directives parked (by this process, or found at start): the ones whose
   * drain is worth a query. One parked by another process of the same province is applied
   * when the hub republishes it, or dead-lettered after the gap hold.
   */
  private readonly parkedRecords = new Set<string>();
  private sweeper: NodeJS.Timeout | undefined;
  /** Records parked since the last resync, and the timer that resyncs them. */
  private readonly toResync = new Set<string>();
  private resyncTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly store: ProvinceStore,
    private readonly submitter: { wake(): void },
    private readonly opts: AgentOptions,
    private readonly log: Logger,
    private readonly metrics: ProvinceMetrics,
  ) {
    this.parked = new ParkedStore(store.sql);
  }

  async start(): Promise<void> {
    for (const id of await this.parked.records()) {
      this.parkedRecords.add(id);
      this.scheduleResync(id);
    }
    this.sweeper = setInterval(
      () =>
        void this.expireParked().catch((err: unknown) =>
          this.log.warn({ err: String(err) }, "expiring parked directives failed"),
        ),
      Math.min(Math.max(this.opts.gapHoldMs / 4, 100), 5000),
    );
    const name = provinceConsumer(this.store.code);
    if (this.opts.provisionConsumer) {
      await provisionProvinceConsumer(
        await jetstreamManager(this.nc),
        this.opts.layout,
        this.store.code,
      );
    }
    // The first look-up fails loudly (a consumer never provisioned is a configuration error);
    // later losses (the bus lost its store and the hub provisions it again) are waited out.
    this.messages = await this.consume(name);
    this.loop = this.run(name, this.messages);
  }

  private async consume(name: string): Promise<ConsumerMessages> {
    const consumer = await jetstream(this.nc).consumers.get(this.opts.layout.stream, name);
    const messages = await consumer.consume({
      max_messages: Math.max(this.opts.concurrency * 2, 16),
    });
    // A deleted consumer (the bus lost its store) leaves the iteration waiting for ever: end it,
    // so that run() looks the consumer up again once the hub has provisioned it.
    const gone = (why: string) => {
      this.log.warn({ why }, "directive consumer gone; taking it up again");
      messages.stop();
    };
    void (async () => {
      for await (const s of await messages.status()) {
        if (
          s.type === "consumer_deleted" ||
          s.type === "consumer_not_found" ||
          s.type === "stream_not_found"
        ) {
          gone(s.type);
          return;
        }
      }
    })().catch(() => undefined);
    // A deletion notice can be missed (no pull outstanding at that moment, or the hub made the
    // consumer again at once): look the consumer up now and then too — gone, or created anew
    // (another creation time) since this consumption began. Its INFO is among the few things a
    // province's user may ask.
    const created = (await consumer.info(true)).created;
    const probe = setInterval(() => {
      consumer.info().then(
        (info) => {
          if (info.created !== created) gone("consumer created anew");
        },
        (err: unknown) => {
          if (
            isApiError(err, JetStreamApiCodes.ConsumerNotFound) ||
            isApiError(err, JetStreamApiCodes.StreamNotFound)
          )
            gone(String(err));
        },
      );
    }, CONSUMER_PROBE_MS);
    probe.unref();
    void messages.closed().finally(() => clearInterval(probe));
    return messages;
  }

  /** Handles messages; if the consumption ends without stop(), takes the consumer up again. */
  private async run(name: string, first: ConsumerMessages): Promise<void> {
    let messages: ConsumerMessages | undefined = first;
    let failures = 0;
    while (!this.stopping) {
      try {
        messages ??= await this.consume(name);
        this.messages = messages;
        if (this.stopping) {
          messages.stop();
          break;
        }
        failures = 0;
        for await (const m of messages) {
          const task = this.handle(m).catch((err: unknown) => {
            // A simulated crash neither acks nor naks: JetStream redelivers after ack_wait.
            if (err instanceof CrashAfterCommit) return;
            this.log.error({ err, seq: m.seq }, "directive handling failed; will be redelivered");
            m.nak(backoffMs(m.info.deliveryCount));
          });
          this.inFlight.add(task);
          void task.finally(() => this.inFlight.delete(task));
          if (this.inFlight.size >= this.opts.concurrency) await Promise.race(this.inFlight);
        }
      } catch (err) {
        failures += 1;
        this.log.warn(
          { err: String(err), failures },
          "directive consumer lost; taking it up again",
        );
      }
      messages = undefined;
      if (!this.stopping)
        await new Promise((r) => setTimeout(r, Math.min(250 * 2 ** failures, 5000)));
    }
  }

  private async handle(m: JsMsg): Promise<void> {
    // Anyone who can publish on the bus could forge a directive: only the hub's signature counts.
    const verdict = this.opts.verifier.verify(m.data, m.headers?.get(SIGNATURE_HEADER));
    if (!verdict.ok) {
      this.metrics.forged.inc();
      this.log.error({ seq: m.seq, why: verdict.why }, "directive refused: not signed by the hub");
      await this.poison(m, `not signed by the hub: ${verdict.why}`);
      return;
    }
    let d: Directive;
    try {
      d = fromBinary(DirectiveSchema, m.data);
    } catch (err) {
      await this.poison(m, `undecodable: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    const elsewhere = notAddressedHere(d, this.store.code);
    if (elsewhere) {
      // I7: never act on another province's directive, whatever the bus delivered.
      await this.poison(m, elsewhere, d.directiveId);
      return;
    }
    const unknownAction = d.action.case === undefined && (d.$unknown?.length ?? 0) > 0;
    if (!unknownAction) {
      const v = validator.validate(DirectiveSchema, d);
      if (v.kind !== "valid") {
        const why =
          v.kind === "invalid" ? v.violations.map((x) => x.toString()).join("; ") : v.error.message;
        await this.poison(m, `malformed: ${why}`, d.directiveId);
        return;
      }
    }
    const outcome = await this.applyOrPark(d, m.data);
    if (outcome === "applied" && this.opts.crashAfterCommit?.(d)) {
      throw new CrashAfterCommit(d.directiveId);
    }
    m.ack();
    // Applied: its successors may be parked. Parked: its predecessor may have committed while
    // this one was being parked, and that one's drain not seen it; either way, drain now.
    await this.drainParked(d.recordId);
  }

  /**
   * Applies a directive, or parks it (durably, so the bus message can be acknowledged) while
   * an earlier directive of its record has not been applied.
   */
  private async applyOrPark(d: Directive, payload: Uint8Array): Promise<"applied" | "parked"> {
    const result = await this.store.apply(d);
    if (result.kind === "wait") {
      this.log.debug(
        {
          directiveId: d.directiveId,
          recordId: d.recordId,
          seq: Number(d.recordSequence),
          last: result.lastSequence,
        },
        "parked until an earlier directive of this record is applied",
      );
      await this.parked.park(d, payload);
      this.parkedRecords.add(d.recordId);
      this.scheduleResync(d.recordId);
      this.metrics.parked.inc();
      return "parked";
    }
    this.applied(d, result);
    return "applied";
  }

  /**
   * Applies directives read from the hub's outbox (see forgottenDirectives), in sequence order
   * per record, like deliveries: one beyond a gap is parked (and resynced); returns how many
   * were applied at once.
   */
  async takeFromHub(ds: readonly Directive[]): Promise<number> {
    const ordered = [...ds].sort(inRecordOrder);
    let applied = 0;
    for (const d of ordered) {
      if (this.stopping) break;
      if (notAddressedHere(d, this.store.code)) continue;
      if ((await this.applyOrPark(d, toBinary(DirectiveSchema, d))) === "applied") {
        applied += 1;
        await this.drainParked(d.recordId);
      }
    }
    return applied;
  }

  /**
   * Applies the record's parked directives whose turn has come, in sequence order; with the
   * sequences the hub waits for (a resync), also those whose gap the hub proves closed.
   */
  private async drainParked(recordId: string, unanswered?: readonly number[]): Promise<void> {
    // Parking is rare: only records known to have parked directives cost a look-up.
    if (!this.parkedRecords.has(recordId)) return;
    const rows = await this.parked.of(recordId);
    let left = rows.length;
    for (const row of rows) {
      const d = fromBinary(DirectiveSchema, row.payload);
      let result = await this.store.apply(d);
      const seq = Number(d.recordSequence);
      if (result.kind === "wait" && gapProvenClosed(unanswered, result.lastSequence, seq)) {
        this.log.warn(
          { directiveId: d.directiveId, recordId, seq, last: result.lastSequence },
          "sequence gap proven closed by the hub (a receipt for every directive before it; lost here: restored from a backup?): applied over it",
        );
        this.metrics.gapsClosed.inc();
        result = await this.store.apply(d, true);
      }
      if (result.kind === "wait") return;
      await this.parked.remove(row.directive_id);
      left -= 1;
      this.applied(d, result);
    }
    if (left === 0) this.parkedRecords.delete(recordId);
  }

  /**
   * A gap is usually a predecessor still on its way (a redelivery overtaken): it fills within
   * moments. One still open after gapResyncMs may be a gap nothing will fill — the province
   * applied those directives and lost them (restored from an older backup) — so the record is
   * resynced from the hub, and its parked directives applied if their turn has come.
   */
  private scheduleResync(recordId: string): void {
    if (!this.opts.resync || this.stopping) return;
    this.toResync.add(recordId);
    this.resyncTimer ??= setTimeout(() => void this.resyncGaps(), this.opts.gapResyncMs);
  }

  private async resyncGaps(): Promise<void> {
    const resync = this.opts.resync;
    const ids = [...this.toResync].filter((id) => this.parkedRecords.has(id));
    this.toResync.clear();
    try {
      // At most 1000 records per resync (the hub's limit); a restore leaves gaps on many.
      for (let i = 0; resync && i < ids.length && !this.stopping; i += 1000) {
        const batch = ids.slice(i, i + 1000);
        const gaps = await resync(batch);
        for (const d of gaps.lost) {
          if (this.stopping) break;
          await this.applyOrPark(d, toBinary(DirectiveSchema, d));
        }
        for (const id of batch)
          if (!this.stopping) await this.drainParked(id, gaps.unanswered.get(id));
      }
    } catch (err) {
      this.log.warn({ err: String(err), records: ids.length }, "resyncing records failed");
      for (const id of ids) this.toResync.add(id);
    } finally {
      this.resyncTimer = undefined;
      if (this.toResync.size > 0 && !this.stopping)
        this.resyncTimer = setTimeout(() => void this.resyncGaps(), this.opts.gapResyncMs);
    }
  }

  private applied(d: Directive, result: Extract<ApplyResult, { kind: "applied" }>): void {
    if (result.duplicate) {
      this.metrics.duplicates.inc();
      // The hub may not have our receipt: send it again.
      void this.store.resubmit(d.directiveId).then(
        () => this.submitter.wake(),
        (err: unknown) => this.log.warn({ err: String(err) }, "resubmitting a receipt failed"),
      );
      return;
    }
    this.metrics.applied.inc({
      action: d.action.case ?? "unknown",
      outcome: String(result.receipt.outcome),
    });
    if (d.issuedAt)
      this.metrics.lag.observe((Date.now() - timestampDate(d.issuedAt).getTime()) / 1000);
    this.submitter.wake();
  }

  /** Directives parked longer than the gap hold become poison: recorded and alarmed. */
  async expireParked(): Promise<number> {
    const expired = await this.parked.expire(this.opts.gapHoldMs);
    if (expired.length === 0) return 0;
    this.metrics.poison.inc(expired.length);
    this.log.error(
      {
        count: expired.length,
        first: expired
          .slice(0, 5)
          .map((r) => ({ directiveId: r.directive_id, seq: r.record_sequence })),
      },
      "sequence gap never filled: parked directives dead-lettered",
    );
    for (const row of expired) {
      await this.store.poison(
        row.payload,
        `sequence gap: waited ${this.opts.gapHoldMs} ms for the directives before sequence ${row.record_sequence}`,
        undefined,
        row.directive_id,
      );
    }
    return expired.length;
  }

  private async poison(m: JsMsg, reason: string, directiveId?: string): Promise<void> {
    this.metrics.poison.inc();
    this.log.warn({ seq: m.seq, directiveId, reason }, "poison directive dead-lettered");
    await this.store.poison(m.data, reason, m.seq, directiveId);
    // Acknowledged once recorded: nats-server before 2.10 ignores term() and would redeliver
    // the message every ack_wait, storing it again each time.
    m.ack();
  }

  /** Stops taking messages and waits for those in flight. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.sweeper) clearInterval(this.sweeper);
    if (this.resyncTimer) clearTimeout(this.resyncTimer);
    this.messages?.stop();
    await this.loop?.catch(() => undefined);
    // A resync in progress is not waited for: its writes are transactions that closing the
    // pool ends, and one waiting on a lock (a stalled database) would hold the stop for ever.
    await Promise.allSettled([...this.inFlight]);
  }
}

/** Thrown by the crash drill after the commit, before the ack. */
export class CrashAfterCommit extends Error {
  constructor(directiveId: string) {
    super(`simulated crash after committing ${directiveId}`);
  }
}
