import type { JetStreamManager } from "@nats-io/jetstream";
import type { Sql } from "postgres";
import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** The hub's Prometheus metrics (one registry per hub instance, so tests can run several). */
export class HubMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: "evc_hub_requests_total",
    help: "RPCs handled, by method and Connect code",
    labelNames: ["method", "code"] as const,
    registers: [this.registry],
  });
  readonly published = new Counter({
    name: "evc_hub_directives_published_total",
    help: "Directive publishes acknowledged by JetStream (first publishes and republishes)",
    registers: [this.registry],
  });
  readonly republished = new Counter({
    name: "evc_hub_directives_republished_total",
    help: "Directives republished because no receipt came in time",
    registers: [this.registry],
  });
  readonly deadLettered = new Counter({
    name: "evc_hub_directives_dead_lettered_total",
    help: "Directives given up after the maximum number of publishes (state FAILED)",
    registers: [this.registry],
  });
  readonly directiveAge = new Histogram({
    name: "evc_hub_directive_publish_delay_seconds",
    help: "Time from a directive's commit to its first publish",
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [this.registry],
  });
  readonly onboarded = new Counter({
    name: "evc_hub_onboarded_records_total",
    help: "Existing records a province sent to be onboarded, by province and outcome (ONBOARDED, ALREADY_ONBOARDED, CONFLICT: for review)",
    labelNames: ["province", "outcome"] as const,
    registers: [this.registry],
  });
  readonly compensations = new Counter({
    name: "evc_hub_migration_deadlines_total",
    help: "Migration step deadlines acted on (compensation started or done)",
    registers: [this.registry],
  });

  readonly receiptLatency = new Histogram({
    name: "evc_hub_receipt_latency_seconds",
    help: "Time from a directive's commit to its first receipt recorded, by the province it was addressed to",
    labelNames: ["province"] as const,
    buckets: [0.05, 0.1, 0.5, 1, 5, 30, 120, 600, 3600],
    registers: [this.registry],
  });

  /**
   * Directives on the bus that a province's consumer has not had acknowledged yet (waiting to be
   * delivered, or delivered and not acked), read from JetStream at each scrape.
   */
  watchConsumers(jsm: JetStreamManager, stream: string): void {
    new Gauge({
      name: "evc_hub_consumer_pending",
      help: "Directives on the bus a province has not taken yet (its durable consumer's pending and unacknowledged messages)",
      labelNames: ["province"] as const,
      registers: [this.registry],
      async collect() {
        const read = async () => {
          const pending: { province: string; n: number }[] = [];
          for await (const ci of jsm.consumers.list(stream)) {
            const province = /^province-(\d{6})$/.exec(ci.name)?.[1];
            if (province) pending.push({ province, n: ci.num_pending + ci.num_ack_pending });
          }
          return pending;
        };
        // Without the bus (EvcOutboxNotPublishing's case) the scrape still answers, quickly,
        // with no series here rather than an error for every metric.
        let timer: NodeJS.Timeout | undefined;
        const pending = await Promise.race([
          read().catch(() => []),
          new Promise<[]>((resolve) => {
            timer = setTimeout(() => resolve([]), 1000);
          }),
        ]);
        clearTimeout(timer);
        this.reset();
        for (const p of pending) this.set({ province: p.province }, p.n);
      },
    });
  }

  /** 1 while the hub is fenced (its database behind the chain pin: see chain/pin.ts). */
  readonly fenced = new Gauge({
    name: "evc_hub_fenced",
    help: "1 while the hub refuses to act because its database is behind what it already sealed (restored from an older backup?); see docs/operations.md",
    registers: [this.registry],
  });

  /** The chain sequence last pinned in JetStream, as this replica last saw it (chain/pin.ts). */
  readonly chainPin = new Gauge({
    name: "evc_hub_chain_pin",
    help: "Sequence of the event chain's head pinned in JetStream (what a restored database must hold), as this replica last saw it",
    registers: [this.registry],
  });

  constructor(sql: Sql) {
    const registry = this.registry;
    /** A gauge with a series per province, read at each scrape (a province with none has none). */
    const perProvince = (
      name: string,
      help: string,
      query: () => Promise<{ province: string; n: number }[]>,
    ) =>
      new Gauge({
        name,
        help,
        labelNames: ["province"] as const,
        registers: [registry],
        async collect() {
          const rows = await query();
          this.reset();
          for (const r of rows) this.set({ province: r.province }, r.n);
        },
      });
    perProvince(
      "evc_hub_open_migrations",
      "Migrations holding a person's lock, by target province",
      () => sql`
        SELECT target_province AS province, count(*)::int AS n FROM migrations
        WHERE state IN ('REQUESTED', 'SOURCE_SUSPENDED', 'COMPENSATING', 'NEEDS_OPERATOR')
        GROUP BY 1`,
    );
    perProvince(
      "evc_hub_directives_rejected",
      "Directives no saga waits on (dose appends, restores) that their province REJECTED: nothing applied there, a dose may be missing at its owner",
      () => sql`
        SELECT province, count(*)::int AS n FROM directives WHERE state = 'REJECTED' GROUP BY 1`,
    );
    perProvince(
      "evc_hub_migrations_needing_operator",
      "Migrations the hub gave up compensating (NEEDS_OPERATOR), by the target that never answered: each holds a person's lock",
      () => sql`
        SELECT target_province AS province, count(*)::int AS n FROM migrations
        WHERE state = 'NEEDS_OPERATOR' GROUP BY 1`,
    );
    perProvince(
      "evc_hub_outbox_backlog",
      "Directives written but not yet published, by province",
      () => sql`
        SELECT province, count(*)::int AS n FROM directives WHERE state = 'PENDING' GROUP BY 1`,
    );
    perProvince(
      "evc_hub_directives_awaiting_receipt",
      "Directives published and not yet answered, by province",
      () => sql`
        SELECT province, count(*)::int AS n FROM directives WHERE state = 'DELIVERED' GROUP BY 1`,
    );
    perProvince(
      "evc_hub_oldest_unanswered_directive_seconds",
      "Age of the oldest directive without receipt, by province",
      () => sql`
        SELECT province, extract(epoch FROM now() - min(created_at))::float8 AS n
        FROM directives WHERE state IN ('PENDING', 'DELIVERED') GROUP BY 1`,
    );
    perProvince(
      "evc_hub_last_reconciliation_timestamp_seconds",
      "When the province last read its whole snapshot (its reconciliation pass), Unix time",
      () => sql`
        SELECT province, extract(epoch FROM last_read_at)::float8 AS n
        FROM province_snapshot_reads`,
    );
    perProvince(
      "evc_hub_dead_lettered_directives",
      "Directives in state FAILED (dead-lettered), awaiting an operator, by province",
      () => sql`
        SELECT province, count(*)::int AS n FROM directives WHERE state = 'FAILED' GROUP BY 1`,
    );
  }
}
