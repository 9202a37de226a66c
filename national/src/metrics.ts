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
  readonly compensations = new Counter({
    name: "evc_hub_migration_deadlines_total",
    help: "Migration step deadlines acted on (compensation started or done)",
    registers: [this.registry],
  });

  constructor(sql: Sql) {
    new Gauge({
      name: "evc_hub_open_migrations",
      help: "Migrations holding a person's lock",
      registers: [this.registry],
      async collect() {
        const [r] = await sql<{ n: number }[]>`
          SELECT count(*)::int AS n FROM migrations
          WHERE state IN ('REQUESTED', 'SOURCE_SUSPENDED', 'COMPENSATING', 'NEEDS_OPERATOR')`;
        this.set(r?.n ?? 0);
      },
    });
    new Gauge({
      name: "evc_hub_directives_rejected",
      help: "Directives no saga waits on (dose appends, restores) that their province REJECTED: nothing applied there, a dose may be missing at its owner",
      registers: [this.registry],
      async collect() {
        const [r] = await sql<{ n: number }[]>`
          SELECT count(*)::int AS n FROM directives WHERE state = 'REJECTED'`;
        this.set(r?.n ?? 0);
      },
    });
    new Gauge({
      name: "evc_hub_migrations_needing_operator",
      help: "Migrations the hub gave up compensating (NEEDS_OPERATOR): each holds a person's lock",
      registers: [this.registry],
      async collect() {
        const [r] = await sql<{ n: number }[]>`
          SELECT count(*)::int AS n FROM migrations WHERE state = 'NEEDS_OPERATOR'`;
        this.set(r?.n ?? 0);
      },
    });
    new Gauge({
      name: "evc_hub_outbox_backlog",
      help: "Directives written but not yet published",
      registers: [this.registry],
      async collect() {
        const [r] = await sql<
          { n: number }[]
        >`SELECT count(*)::int AS n FROM directives WHERE state = 'PENDING'`;
        this.set(r?.n ?? 0);
      },
    });
    new Gauge({
      name: "evc_hub_directives_awaiting_receipt",
      help: "Directives published and not yet answered",
      registers: [this.registry],
      async collect() {
        const [r] = await sql<
          { n: number }[]
        >`SELECT count(*)::int AS n FROM directives WHERE state = 'DELIVERED'`;
        this.set(r?.n ?? 0);
      },
    });
    new Gauge({
      name: "evc_hub_oldest_unanswered_directive_seconds",
      help: "Age of the oldest directive without receipt",
      registers: [this.registry],
      async collect() {
        const [r] = await sql<{ age: number | null }[]>`
          SELECT extract(epoch FROM now() - min(created_at))::float8 AS age
          FROM directives WHERE state IN ('PENDING', 'DELIVERED')`;
        this.set(r?.age ?? 0);
      },
    });
    new Gauge({
      name: "evc_hub_dead_lettered_directives",
      help: "Directives in state FAILED (dead-lettered), awaiting an operator",
      registers: [this.registry],
      async collect() {
        const [r] = await sql<
          { n: number }[]
        >`SELECT count(*)::int AS n FROM directives WHERE state = 'FAILED'`;
        this.set(r?.n ?? 0);
      },
    });
  }
}
