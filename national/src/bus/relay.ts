import {
  type BusLayout,
  type DirectiveSigner,
  provinceSubject,
  SIGNATURE_HEADER,
} from "@evc-interop/runtime";
import type { JetStreamClient } from "@nats-io/jetstream";
import { headers, InvalidArgumentError, RequestError } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { Sql } from "postgres";
import { ENDED_MIGRATION_STATES, SAGA_STEP_ACTIONS } from "../domain/types.js";
import type { HubMetrics } from "../metrics.js";

export interface RelayOptions {
  layout: BusLayout;
  /** First redelivery of a directive without receipt after this long; doubles each time. */
  redeliverAfterMs: number;
  /** Cap of the redelivery backoff. */
  redeliverMaxMs: number;
  /** After this many publishes without a receipt the directive is dead-lettered (FAILED). */
  maxPublishes: number;
  /** Rows claimed per round. */
  batchSize: number;
  clock: () => Date;
  /** Signs every directive published (provinces apply only what verifies). */
  signer: DirectiveSigner;
  /**
   * Creates the stream and the provinces' consumers again; called when a publish finds no
   * stream (the bus lost its store). Every unanswered directive is still in the outbox and is
   * republished once the stream is back.
   */
  reprovision: () => Promise<void>;
}

interface DueRow {
  directive_id: string;
  province: string;
  payload: Uint8Array;
  publish_count: number;
  state: string;
  created_at: Date;
}

/**
 * Publishes outbox rows to JetStream. Rows are claimed with FOR UPDATE SKIP LOCKED so several
 * hub replicas can relay together; a row is marked published only after JetStream acknowledged
 * it, so a crash between publish and mark republishes it (JetStream drops the copy by
 * Nats-Msg-Id inside its duplicate window; provinces dedupe by directive id after that).
 * Directives still without receipt are republished with backoff, then dead-lettered.
 */
export class Relay {
  constructor(
    private readonly sql: Sql,
    private readonly js: JetStreamClient,
    private readonly opts: RelayOptions,
    private readonly log: Logger,
    private readonly metrics: HubMetrics,
  ) {}

  /** Rows claimed per round at most. */
  get batchSize(): number {
    return this.opts.batchSize;
  }

  /** One round: returns the number of rows handled (published or dead-lettered). */
  async runOnce(): Promise<number> {
    const now = this.opts.clock();
    return this.sql.begin(async (tx) => {
      const rows = await tx<DueRow[]>`
        SELECT directive_id, province, payload, publish_count, state, created_at FROM directives
        WHERE state IN ('PENDING', 'DELIVERED') AND next_publish_at <= ${now}
        ORDER BY next_publish_at
        LIMIT ${this.opts.batchSize}
        FOR UPDATE SKIP LOCKED`;
      if (rows.length === 0) return 0;
      const dead = rows.filter((r) => r.publish_count >= this.opts.maxPublishes);
      const live = rows.filter((r) => r.publish_count < this.opts.maxPublishes);
      if (dead.length > 0) {
        await tx`UPDATE directives SET state = 'FAILED'
          WHERE directive_id = ANY(${dead.map((r) => r.directive_id)}::uuid[])`;
        for (const r of dead) {
          this.metrics.deadLettered.inc();
          this.log.warn(
            { directiveId: r.directive_id, province: r.province, publishes: r.publish_count },
            "directive dead-lettered: no receipt after the maximum number of publishes",
          );
        }
      }
      const results = await Promise.allSettled(
        live.map((r) => {
          const h = headers();
          h.set("Content-Type", "application/x-protobuf; proto=evc.directive.v1.Directive");
          h.set("Evc-Province", r.province);
          h.set(SIGNATURE_HEADER, this.opts.signer.sign(r.payload));
          return this.js.publish(provinceSubject(this.opts.layout, r.province), r.payload, {
            msgID: r.directive_id,
            headers: h,
          });
        }),
      );
      const published: DueRow[] = [];
      const tooLarge: DueRow[] = [];
      let noStream = false;
      results.forEach((res, i) => {
        const row = live[i];
        if (!row) return;
        if (res.status === "fulfilled") published.push(row);
        else if (isTooLarge(res.reason)) tooLarge.push(row);
        else {
          if (isNoStream(res.reason)) noStream = true;
          this.log.warn(
            { directiveId: row.directive_id, err: String(res.reason) },
            "publish failed; will retry",
          );
        }
      });
      if (tooLarge.length > 0) {
        // Never fits: retrying would be for ever. Dead-lettered at once; the saga's deadline
        // moves its migration on.
        await tx`UPDATE directives SET state = 'FAILED', disposition = 'TOO_LARGE'
          WHERE directive_id = ANY(${tooLarge.map((r) => r.directive_id)}::uuid[])`;
        for (const r of tooLarge) {
          this.metrics.deadLettered.inc();
          this.log.error(
            { directiveId: r.directive_id, province: r.province, bytes: r.payload.length },
            "directive dead-lettered: larger than the bus's max_payload",
          );
        }
      }
      if (noStream) {
        this.log.warn(
          { stream: this.opts.layout.stream },
          "no stream answered; provisioning it again",
        );
        await this.opts
          .reprovision()
          .catch((err: unknown) =>
            this.log.error({ err: String(err) }, "provisioning the stream failed; will retry"),
          );
      }
      if (published.length > 0) {
        const next = published.map(
          (r) =>
            new Date(
              now.getTime() +
                Math.min(
                  this.opts.redeliverAfterMs * 2 ** r.publish_count,
                  this.opts.redeliverMaxMs,
                ),
            ),
        );
        // A step of a migration that ended while it waited here is published once (the
        // province orders its record's directives by sequence), then superseded.
        await tx`UPDATE directives d SET
            state = CASE
              WHEN d.state <> 'PENDING' THEN d.state
              WHEN d.migration_id IS NOT NULL AND d.action = ANY(${SAGA_STEP_ACTIONS}::text[])
                AND EXISTS (SELECT 1 FROM migrations m WHERE m.migration_id = d.migration_id
                            AND m.state = ANY(${ENDED_MIGRATION_STATES}::text[]))
                THEN 'SUPERSEDED'
              ELSE 'DELIVERED' END,
            publish_count = d.publish_count + 1,
            last_published_at = ${now},
            next_publish_at = u.next
          FROM unnest(${published.map((r) => r.directive_id)}::uuid[],
                      ${next.map((d) => d.toISOString())}::text[]::timestamptz[]) AS u(id, next)
          WHERE d.directive_id = u.id`;
      }
      for (const r of published) {
        if (r.publish_count === 0) {
          this.metrics.directiveAge.observe((now.getTime() - r.created_at.getTime()) / 1000);
        } else {
          this.metrics.republished.inc();
        }
      }
      this.metrics.published.inc(published.length);
      return rows.length;
    });
  }
}

/** The bus refused the message as larger than its max_payload: it never will fit. */
function isTooLarge(err: unknown): boolean {
  return err instanceof InvalidArgumentError && /max_payload/.test(err.message);
}

/** Nothing answered the publish: no stream listens on the subject (the bus lost its store). */
function isNoStream(err: unknown): boolean {
  const cause = err instanceof Error ? err.cause : undefined;
  return (
    (err instanceof RequestError && err.isNoResponders()) ||
    (cause instanceof RequestError && cause.isNoResponders())
  );
}
