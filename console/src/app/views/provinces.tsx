import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { age } from "../format.js";
import { provinceHealth } from "../metrics.js";
import { usePoll } from "../use-poll.js";

/** Per-province health, from the hub's own /metrics (what the alert rules watch). */
export function Provinces() {
  const polled = usePoll(
    async () => {
      const res = await fetch("/metrics");
      if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
      return provinceHealth(await res.text());
    },
    5000,
    "metrics",
  );
  const rows = polled.data ?? [];
  return (
    <section>
      {polled.error && <p class="error">{polled.error}</p>}
      <table>
        <thead>
          <tr>
            <th>Province</th>
            <th>Open migrations (as target)</th>
            <th>Needing operator</th>
            <th>Outbox backlog</th>
            <th>Awaiting receipt</th>
            <th>Not taken from the bus</th>
            <th>Oldest unanswered</th>
            <th>Dead letters</th>
            <th>Rejections</th>
            <th>Mean receipt latency</th>
            <th>Last reconciliation</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr
              data-province={r.province}
              class={r.needingOperator + r.deadLettered + r.rejected > 0 ? "unhealthy" : ""}
            >
              <td>{r.province}</td>
              <td>{r.openMigrations}</td>
              <td>{r.needingOperator}</td>
              <td>{r.backlog}</td>
              <td>{r.awaitingReceipt}</td>
              <td>{r.consumerPending}</td>
              <td>{r.oldestUnansweredS > 0 ? `${Math.round(r.oldestUnansweredS)} s` : "-"}</td>
              <td>{r.deadLettered}</td>
              <td>{r.rejected}</td>
              <td>
                {r.receiptLatencyS === undefined
                  ? "-"
                  : `${(r.receiptLatencyS * 1000).toFixed(0)} ms (${r.receipts})`}
              </td>
              <td>
                {r.lastReconciliation > 0
                  ? `${age(timestampFromMs(r.lastReconciliation * 1000))} ago`
                  : "never"}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {polled.data?.length === 0 && <p class="empty">No province has talked to this hub yet.</p>}
    </section>
  );
}
