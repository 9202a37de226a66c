import type { Sql } from "postgres";

/** Work still in flight somewhere, by where it waits; empty when the system is quiet. */
export async function inFlight(hub: Sql, provinces: Map<string, Sql>): Promise<string[]> {
  const out: string[] = [];
  const [h] = await hub<{ directives: number; migrations: number }[]>`
    SELECT
      (SELECT count(*)::int FROM directives WHERE state IN ('PENDING', 'DELIVERED')) AS directives,
      (SELECT count(*)::int FROM migrations
       WHERE state IN ('REQUESTED', 'SOURCE_SUSPENDED', 'COMPENSATING')) AS migrations`;
  if (h?.directives) out.push(`hub: ${h.directives} directive(s) unanswered`);
  if (h?.migrations) out.push(`hub: ${h.migrations} migration(s) open`);
  for (const [code, sql] of provinces) {
    const [p] = await sql<{ intents: number; receipts: number }[]>`
      SELECT
        (SELECT count(*)::int FROM hub_intents WHERE state = 'PENDING') AS intents,
        (SELECT count(*)::int FROM inbox WHERE submitted_at IS NULL) AS receipts`;
    if (p?.intents) out.push(`${code}: ${p.intents} hub intent(s) pending`);
    if (p?.receipts) out.push(`${code}: ${p.receipts} receipt(s) not sent`);
  }
  return out;
}

/** Waits until nothing is in flight, or the time is up; returns what is still in flight. */
export async function quiesce(
  hub: Sql,
  provinces: Map<string, Sql>,
  timeoutMs: number,
): Promise<string[]> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const pending = await inFlight(hub, provinces).catch((err: unknown) => [
      `not readable: ${String(err)}`,
    ]);
    if (pending.length === 0 || Date.now() > end) return pending;
    await new Promise((r) => setTimeout(r, 200));
  }
}
