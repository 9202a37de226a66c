/** Per-province health as the hub's /metrics tells it (the same figures the alerts use). */
export interface ProvinceHealth {
  province: string;
  openMigrations: number;
  needingOperator: number;
  backlog: number;
  awaitingReceipt: number;
  oldestUnansweredS: number;
  deadLettered: number;
  rejected: number;
  /** Directives on the bus the province has not taken yet (its consumer's lag). */
  consumerPending: number;
  /** When the province last read its whole snapshot (reconciliation), Unix seconds; 0: never. */
  lastReconciliation: number;
  /** Mean receipt latency over the hub's life, seconds (undefined: no receipt yet). */
  receiptLatencyS: number | undefined;
  receipts: number;
}

const SERIES: Record<string, keyof ProvinceHealth> = {
  evc_hub_open_migrations: "openMigrations",
  evc_hub_migrations_needing_operator: "needingOperator",
  evc_hub_outbox_backlog: "backlog",
  evc_hub_directives_awaiting_receipt: "awaitingReceipt",
  evc_hub_oldest_unanswered_directive_seconds: "oldestUnansweredS",
  evc_hub_dead_lettered_directives: "deadLettered",
  evc_hub_directives_rejected: "rejected",
  evc_hub_consumer_pending: "consumerPending",
  evc_hub_last_reconciliation_timestamp_seconds: "lastReconciliation",
};

const LINE = /^([a-z_]+)\{(?:[^}]*,)?province="(\d{6})"(?:,[^}]*)?\} ([0-9.eE+-]+|NaN)$/;

/** Reads the Prometheus text exposition; one row per province that has any series. */
export function provinceHealth(text: string): ProvinceHealth[] {
  const rows = new Map<string, ProvinceHealth>();
  const latency = new Map<string, { sum: number; count: number }>();
  const row = (province: string) => {
    let r = rows.get(province);
    if (!r) {
      r = {
        province,
        openMigrations: 0,
        needingOperator: 0,
        backlog: 0,
        awaitingReceipt: 0,
        oldestUnansweredS: 0,
        deadLettered: 0,
        rejected: 0,
        consumerPending: 0,
        lastReconciliation: 0,
        receiptLatencyS: undefined,
        receipts: 0,
      };
      rows.set(province, r);
    }
    return r;
  };
  for (const line of text.split("\n")) {
    const m = LINE.exec(line);
    if (!m) continue;
    const [, name = "", province = "", raw = ""] = m;
    const value = Number(raw);
    const key = SERIES[name];
    if (key && key !== "province" && key !== "receiptLatencyS") {
      row(province)[key] = value;
    } else if (name === "evc_hub_receipt_latency_seconds_sum") {
      latency.set(province, { sum: value, count: latency.get(province)?.count ?? 0 });
    } else if (name === "evc_hub_receipt_latency_seconds_count") {
      latency.set(province, { sum: latency.get(province)?.sum ?? 0, count: value });
    }
  }
  for (const [province, l] of latency) {
    const r = row(province);
    r.receipts = l.count;
    r.receiptLatencyS = l.count > 0 ? l.sum / l.count : undefined;
  }
  return [...rows.values()].sort((a, b) => a.province.localeCompare(b.province));
}
