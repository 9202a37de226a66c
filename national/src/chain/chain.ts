import { createHash } from "node:crypto";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { canClone, connectionOf, workerScript } from "@evc-interop/runtime/db";
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
 * One link of the chain as verification reads it: whether its stored hash equals the hash of
 * its event linked to its stored predecessor's hash, worked out by PostgreSQL (see fetchPage).
 */
export interface Link {
  seq: number;
  /** Position the link seals. */
  event_position: number | null;
  /** Position of that event; null when the event is gone. */
  position: number | null;
  /** Null for a page's first link when it only provides the predecessor. */
  intact: boolean | null;
}

/**
 * Links with seq in (from, to], preceded by the link `from` itself when from > 0: its stored
 * hash is the predecessor of the page's first link. Each link's hash is recomputed where the
 * rows are: `sha256(predecessor's hash || UTF-8 of the canonical JSON)` exactly as linkHash
 * does (PostgreSQL's to_json escapes a string as JSON.stringify does; the chain tests seal
 * with linkHash and verify this way, names with quotes, backslashes, control characters and
 * Chinese included), so a page travels as a few numbers per link instead of every event. The
 * data's jsonb text has no raw control character (jsonb prints them escaped), so quoting it
 * only needs its backslashes and quotes escaped: cheaper than to_json.
 */
export function fetchPage(sql: Sql, from: number, to: number): Promise<Link[]> {
  return sql<Link[]>`
    SELECT seq, event_position, position,
      hash = sha256(
        CASE WHEN seq = 1 THEN ${GENESIS}::bytea ELSE prev END
        || convert_to('[' || position || ',' || to_json(event_id::text) || ',' || to_json(stream_id)
          || ',' || stream_version || ',' || to_json(type)
          || ',"' || replace(replace(data::text, '\\', '\\\\'), '"', '\\"')
          || '",' || to_json(recorded_us) || ']', 'UTF8')) AS intact
    FROM (
      SELECT c.seq, c.hash, lag(c.hash) OVER (ORDER BY c.seq) AS prev, c.position AS event_position,
        e.position, e.event_id, e.stream_id, e.stream_version, e.type, e.data,
        (extract(epoch FROM e.recorded_at) * 1000000)::bigint::text AS recorded_us
      FROM event_chain c LEFT JOIN events e ON e.position = c.position
      WHERE c.seq >= ${Math.max(from, 1)} AND c.seq <= ${to}
    ) l
    ORDER BY seq`.execute();
}

/** What one page of the chain came to. */
export interface PageCheck {
  /** Intact links whose event lies in [fromPosition, toPosition] (0 = unbounded). */
  verified: number;
  lastPosition: number;
  /** The page's first broken link, if any. */
  broken?: { position: number; detail: string };
}

/**
 * Checks the links of one page (as fetchPage returns them) against their stored predecessor.
 * Each link's hash must equal the hash of its event linked to the previous link's stored hash:
 * if every link passes, the whole chain recomputes from the genesis; the first that fails is
 * the first broken link, as a walk from the start would find.
 */
export function checkPage(
  rows: Link[],
  from: number,
  to: number,
  fromPosition = 0,
  toPosition = 0,
): PageCheck {
  const out: PageCheck = { verified: 0, lastPosition: 0 };
  let i = 0;
  if (from > 0) {
    // The link before the page: its stored hash was the predecessor of the next one's.
    const head = rows[0];
    if (head?.seq !== from) {
      out.broken = {
        position: head?.event_position ?? 0,
        detail: `chain link ${from} is missing`,
      };
      return out;
    }
    i = 1;
  }
  let expectedSeq = from + 1;
  for (; i < rows.length; i++) {
    const r = rows[i] as Link;
    const pos = r.event_position ?? 0;
    if (r.seq !== expectedSeq) {
      out.broken = { position: pos, detail: `chain link ${expectedSeq} is missing` };
      return out;
    }
    if (r.position === null) {
      out.broken = { position: pos, detail: `event at position ${pos} was deleted` };
      return out;
    }
    if (r.intact !== true) {
      out.broken = {
        position: pos,
        detail: `event at position ${pos} does not match its sealed hash`,
      };
      return out;
    }
    expectedSeq += 1;
    if (pos >= fromPosition && (toPosition === 0 || pos <= toPosition)) {
      out.verified += 1;
      out.lastPosition = Math.max(out.lastPosition, pos);
    }
  }
  if (expectedSeq <= to) {
    // The page ends before its range does: links at its end are missing.
    out.broken = {
      position: rows.at(-1)?.event_position ?? 0,
      detail: `chain link ${expectedSeq} is missing`,
    };
  }
  return out;
}

export interface VerifyOptions {
  /** Links per page (default 20,000). */
  pageSize?: number;
  /**
   * Worker threads hashing pages in parallel, each with its own connection (default: up to two
   * when the chain has at least four pages; 0 hashes in this thread).
   */
  workers?: number;
}

/**
 * Recomputes the chain and reports the first broken link. fromPosition/toPosition (0 =
 * unbounded) limit which events are counted as verified; a broken link anywhere is reported.
 * Pages are independent (each link is checked against its stored predecessor), so they are
 * read ahead and, for long chains, hashed in worker threads.
 */
export async function verifyChain(
  sql: Sql,
  fromPosition = 0,
  toPosition = 0,
  opts: VerifyOptions = {},
): Promise<VerifyResult> {
  const pageSize = opts.pageSize ?? 20_000;
  const [head] = await sql<{ top: number }[]>`
    SELECT coalesce(max(seq), 0)::int8 AS top FROM event_chain`;
  const top = Number(head?.top ?? 0);
  const pages = Math.ceil(top / pageSize);
  const range = (page: number) => ({
    from: page * pageSize,
    to: Math.min(top, (page + 1) * pageSize),
  });
  // Workers open their own connections from this pool's options; a password given as a
  // function or TLS options given as an object cannot be handed to them, so such a pool
  // verifies in this thread, whatever was asked for.
  const workers = canClone(sql)
    ? (opts.workers ?? (pages >= 4 ? Math.min(2, Math.max(1, availableParallelism())) : 0))
    : 0;
  const checks =
    workers > 0
      ? await checkInWorkers(sql, pages, range, workers, fromPosition, toPosition)
      : await checkHere(sql, pages, range, fromPosition, toPosition);
  let verified = 0;
  let lastPosition = 0;
  for (const c of checks) {
    verified += c.verified;
    lastPosition = Math.max(lastPosition, c.lastPosition);
    if (c.broken) {
      return {
        ok: false,
        eventsVerified: verified,
        firstBrokenPosition: c.broken.position,
        lastPosition,
        detail: c.broken.detail,
      };
    }
  }
  return { ok: true, eventsVerified: verified, firstBrokenPosition: 0, lastPosition, detail: "" };
}

type Range = (page: number) => { from: number; to: number };

/** Pages in order up to the first broken one, three read ahead on the pool. */
async function checkHere(
  sql: Sql,
  pages: number,
  range: Range,
  fromPosition: number,
  toPosition: number,
): Promise<PageCheck[]> {
  const ahead: Promise<Link[]>[] = [];
  let next = 0;
  const readAhead = () => {
    if (next >= pages) return;
    const { from, to } = range(next);
    const p = fetchPage(sql, from, to);
    // A broken link ends the walk: pages read ahead are then dropped.
    p.catch(() => undefined);
    ahead.push(p);
    next += 1;
  };
  for (let i = 0; i < 3; i++) readAhead();
  const out: PageCheck[] = [];
  for (let page = 0; page < pages; page++) {
    const rows = await (ahead.shift() as Promise<Link[]>);
    readAhead();
    const { from, to } = range(page);
    const c = checkPage(rows, from, to, fromPosition, toPosition);
    out.push(c);
    if (c.broken) break;
  }
  return out;
}

/** Pages handed out to worker threads one at a time; results in page order. */
async function checkInWorkers(
  sql: Sql,
  pages: number,
  range: Range,
  count: number,
  fromPosition: number,
  toPosition: number,
): Promise<PageCheck[]> {
  const connection = connectionOf(sql);
  const results: PageCheck[] = new Array(pages);
  let next = 0;
  let firstBroken = pages;
  const run = (worker: Worker) =>
    new Promise<void>((resolve, reject) => {
      const give = () => {
        if (next >= pages || next > firstBroken) {
          resolve();
          return;
        }
        const page = next++;
        worker.postMessage({ page, ...range(page) });
      };
      worker.on("message", (m: { page: number; check?: PageCheck; error?: string }) => {
        if (m.error !== undefined || !m.check) {
          reject(new Error(`chain verification worker: ${m.error ?? "no result"}`));
          return;
        }
        results[m.page] = m.check;
        if (m.check.broken) firstBroken = Math.min(firstBroken, m.page);
        give();
      });
      worker.once("error", reject);
      worker.once("online", give);
    });
  const workers = Array.from(
    { length: count },
    () =>
      new Worker(workerScript(import.meta.url, "./verify-worker.js"), {
        workerData: { connection, fromPosition, toPosition },
      }),
  );
  const exits = workers.map((w) => new Promise<void>((r) => w.once("exit", () => r())));
  try {
    await Promise.all(workers.map(run));
  } finally {
    // Each worker closes its connection and exits; one that does not is stopped.
    await Promise.all(
      workers.map(async (w, i) => {
        w.postMessage({ close: true });
        const timer = setTimeout(() => void w.terminate(), 6000);
        await exits[i];
        clearTimeout(timer);
      }),
    );
  }
  const out: PageCheck[] = [];
  for (let page = 0; page < pages; page++) {
    const c = results[page];
    if (!c) throw new Error(`chain verification: page ${page} was not checked`);
    out.push(c);
    if (c.broken) break;
  }
  return out;
}
