import { createHash } from "node:crypto";
import type { Sql } from "postgres";

/**
 * Tamper evidence for the event log (I5). The sealer links committed events into a SHA-256
 * chain in (transaction id, position) order, reading only below the oldest open transaction so
 * no in-flight event is ever skipped, and without serializing appends: writers never touch
 * the chain. One sealer runs at a time per schema (advisory lock), whichever hub replica holds it.
 */

interface EventRow {
  position: number;
  event_id: string;
  stream_id: string;
  stream_version: number;
  type: string;
  data: string;
  recorded_us: string;
}

const GENESIS = Buffer.alloc(32);

/** Hash of one event linked to its predecessor's hash. */
export function linkHash(prev: Uint8Array, e: EventRow): Buffer {
  const canonical = JSON.stringify([
    e.position,
    e.event_id,
    e.stream_id,
    e.stream_version,
    e.type,
    e.data,
    e.recorded_us,
  ]);
  return createHash("sha256").update(prev).update(canonical).digest();
}

/** Seals up to `limit` events; returns how many. Safe to call from several replicas at once. */
export async function sealOnce(sql: Sql, limit = 5000): Promise<number> {
  return sql.begin(async (tx) => {
    const [lock] = await tx<{ ok: boolean }[]>`
      SELECT pg_try_advisory_xact_lock(hashtext('evc-sealer:' || current_schema())) AS ok`;
    if (!lock?.ok) return 0;
    const [head] = await tx<{ seq: number; txid: string; position: number; hash: Buffer }[]>`
      SELECT seq, txid::text AS txid, position, hash FROM event_chain ORDER BY seq DESC LIMIT 1`;
    const rows = await tx<(EventRow & { txid_text: string })[]>`
      SELECT position, event_id, stream_id, stream_version, type, data::text AS data,
             (extract(epoch FROM recorded_at) * 1000000)::bigint::text AS recorded_us, txid::text AS txid_text
      FROM events
      WHERE txid < pg_snapshot_xmin(pg_current_snapshot())
        AND (txid, position) > (${head?.txid ?? "0"}::xid8, ${head?.position ?? 0})
      ORDER BY txid, position -- the xid8 column and its index, not the text alias
      LIMIT ${limit}`;
    if (rows.length === 0) return 0;
    let prev: Uint8Array = head?.hash ?? GENESIS;
    let seq = head?.seq ?? 0;
    const links = rows.map((e) => {
      const hash = linkHash(prev, e);
      prev = hash;
      seq += 1;
      return { seq, position: e.position, txid: e.txid_text, hash };
    });
    for (let i = 0; i < links.length; i += 1000) {
      const part = links.slice(i, i + 1000);
      await tx`INSERT INTO event_chain (seq, position, txid, hash)
        SELECT s, p, t, decode(h, 'hex')
        FROM unnest(${part.map((l) => l.seq)}::bigint[], ${part.map((l) => l.position)}::bigint[],
                    ${part.map((l) => l.txid)}::text[]::xid8[], ${part.map((l) => l.hash.toString("hex"))}::text[])
          AS u(s, p, t, h)`;
    }
    return rows.length;
  });
}

/** Seals until nothing sealable is left. */
export async function sealAll(sql: Sql): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await sealOnce(sql);
    total += n;
    if (n === 0) return total;
  }
}

export interface VerifyResult {
  ok: boolean;
  eventsVerified: number;
  /** Event position of the first event whose hash does not match (0 when ok). */
  firstBrokenPosition: number;
  /** Event position of the last event verified. */
  lastPosition: number;
  detail: string;
}

/**
 * Recomputes the chain from the start (each hash depends on every predecessor) and reports
 * the first broken link. fromPosition/toPosition (0 = unbounded) limit which events are
 * counted as verified; a broken link anywhere is reported.
 */
export async function verifyChain(
  sql: Sql,
  fromPosition = 0,
  toPosition = 0,
): Promise<VerifyResult> {
  let prev: Uint8Array = GENESIS;
  let expectedSeq = 1;
  let verified = 0;
  let lastPosition = 0;
  const batch = 20_000;
  type Link = EventRow & { seq: number; hash: Buffer | null; event_position: number | null };
  // Links are numbered 1..top without gaps, so pages are ranges of seq and can be read in
  // parallel on several connections while earlier ones are hashed; a missing link shows as a
  // jump in seq.
  const [head] = await sql<{ top: number }[]>`
    SELECT coalesce(max(seq), 0)::int8 AS top FROM event_chain`;
  const top = Number(head?.top ?? 0);
  const page = (from: number, to: number) =>
    sql<Link[]>`
      SELECT c.seq, c.hash, c.position AS event_position, e.position, e.event_id, e.stream_id,
             e.stream_version, e.type, e.data::text AS data,
             (extract(epoch FROM e.recorded_at) * 1000000)::bigint::text AS recorded_us
      FROM event_chain c LEFT JOIN events e ON e.position = c.position
      WHERE c.seq > ${from} AND c.seq <= ${to}
      ORDER BY c.seq`.execute();
  const ahead: Promise<Link[]>[] = [];
  let nextFrom = 0;
  const readAhead = () => {
    if (nextFrom >= top) return;
    const p = page(nextFrom, nextFrom + batch);
    // A broken link returns early: pages read ahead are then dropped.
    p.catch(() => undefined);
    ahead.push(p);
    nextFrom += batch;
  };
  for (let i = 0; i < 3; i++) readAhead();
  for (let next = ahead.shift(); next; next = ahead.shift()) {
    const rows: Link[] = await next;
    readAhead();
    for (const r of rows) {
      const pos = r.event_position ?? 0;
      const broken = (detail: string): VerifyResult => ({
        ok: false,
        eventsVerified: verified,
        firstBrokenPosition: pos,
        lastPosition,
        detail,
      });
      if (r.seq !== expectedSeq) return broken(`chain link ${expectedSeq} is missing`);
      if (r.position === null) return broken(`event at position ${pos} was deleted`);
      const hash = linkHash(prev, r);
      if (!r.hash || !hash.equals(r.hash)) {
        return broken(`event at position ${pos} does not match its sealed hash`);
      }
      prev = hash;
      expectedSeq += 1;
      if (pos >= fromPosition && (toPosition === 0 || pos <= toPosition)) {
        verified += 1;
        lastPosition = Math.max(lastPosition, pos);
      }
    }
  }
  return { ok: true, eventsVerified: verified, firstBrokenPosition: 0, lastPosition, detail: "" };
}
