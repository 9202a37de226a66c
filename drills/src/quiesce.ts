import type { Sql } from "postgres";

/**
 * Work still in flight somewhere, by where it waits; empty when the system is quiet. Besides
 * what the hub waits for: directives the hub gave up on (SUPERSEDED, no receipt) that a
 * province has not applied yet — a killed province's unacknowledged copy comes again after
 * ack_wait, and the oracle must not look before (drill seed 60058) — unless it was on the bus
 * before the province's store was set back (`setBack`: applied and lost, maybe); and
 * directives parked at a province, waiting for an earlier one.
 */
export async function inFlight(
  hub: Sql,
  provinces: Map<string, Sql>,
  setBack: ReadonlyMap<string, Date> = new Map(),
): Promise<string[]> {
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
    const given = await hub<{ id: string }[]>`
      SELECT directive_id::text AS id FROM directives
      WHERE province = ${code} AND state = 'SUPERSEDED' AND receipt IS NULL
        AND last_published_at > ${setBack.get(code) ?? new Date(0)}`;
    const [q] = await sql<{ parked: number; unapplied: number }[]>`
      SELECT (SELECT count(*)::int FROM parked) AS parked,
        (SELECT count(*)::int FROM unnest(${given.map((g) => g.id)}::uuid[]) AS g(id)
         WHERE NOT EXISTS (SELECT 1 FROM inbox i WHERE i.directive_id = g.id)) AS unapplied`;
    if (q?.parked) out.push(`${code}: ${q.parked} directive(s) parked`);
    if (q?.unapplied) out.push(`${code}: ${q.unapplied} superseded directive(s) not applied yet`);
  }
  return out;
}

/** Waits until nothing is in flight, or the time is up; returns what is still in flight. */
export async function quiesce(
  hub: Sql,
  provinces: Map<string, Sql>,
  timeoutMs: number,
  setBack: ReadonlyMap<string, Date> = new Map(),
): Promise<string[]> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const pending = await inFlight(hub, provinces, setBack).catch((err: unknown) => [
      `not readable: ${String(err)}`,
    ]);
    if (pending.length === 0 || Date.now() > end) return pending;
    await new Promise((r) => setTimeout(r, 200));
  }
}
