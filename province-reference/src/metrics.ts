import { Counter, Histogram, Registry } from "prom-client";

/** A province's Prometheus metrics (one registry per province, several may share a process). */
export class ProvinceMetrics {
  readonly registry = new Registry();
  readonly applied: Counter<"action" | "outcome">;
  readonly duplicates: Counter;
  readonly poison: Counter;
  readonly receiptsDeadLettered: Counter;
  readonly parked: Counter;
  readonly gapsClosed: Counter;
  readonly forged: Counter;
  readonly lag: Histogram;
  readonly repairs: Counter<"kind">;
  readonly reconciliations: Counter;

  constructor(province: string) {
    this.registry.setDefaultLabels({ province });
    const registers = [this.registry];
    this.applied = new Counter({
      name: "evc_province_directives_applied_total",
      help: "Directives applied, by action and receipt outcome",
      labelNames: ["action", "outcome"] as const,
      registers,
    });
    this.duplicates = new Counter({
      name: "evc_province_directives_duplicate_total",
      help: "Deliveries of a directive already applied (answered with the stored receipt)",
      registers,
    });
    this.poison = new Counter({
      name: "evc_province_directives_poison_total",
      help: "Messages dead-lettered as poison (undecodable, another province's, malformed, a sequence gap never filled); alert on any increase",
      registers,
    });
    this.receiptsDeadLettered = new Counter({
      name: "evc_province_receipts_dead_lettered_total",
      help: "Receipts the hub refused as invalid, set aside (table poison) so the others still go; the directive waits at the hub for an operator: alert on any",
      registers,
    });
    this.forged = new Counter({
      name: "evc_province_directives_forged_total",
      help: "Bus messages refused because the hub's signature did not verify (dead-lettered); alert on any",
      registers,
    });
    this.parked = new Counter({
      name: "evc_province_directives_parked_total",
      help: "Directives parked until an earlier directive of their record was applied",
      registers,
    });
    this.gapsClosed = new Counter({
      name: "evc_province_gaps_closed_by_hub_total",
      help: "Parked directives applied over a gap the hub proved closed (the hub holds a receipt for every directive before it: lost with a restored backup)",
      registers,
    });
    this.lag = new Histogram({
      name: "evc_province_directive_lag_seconds",
      help: "Time from the hub issuing a directive to this province applying it",
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 300],
      registers,
    });
    this.repairs = new Counter({
      name: "evc_province_reconciliation_repairs_total",
      help: "Rows repaired by reconciliation, by kind of divergence",
      labelNames: ["kind"] as const,
      registers,
    });
    this.reconciliations = new Counter({
      name: "evc_province_reconciliations_total",
      help: "Reconciliation passes completed",
      registers,
    });
  }
}
