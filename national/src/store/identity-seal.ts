import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import type { Sql, TransactionSql } from "postgres";

/**
 * Crypto-shredding of identity in the event log. Every identity an event carries is stored
 * sealed — AES-256-GCM under a data key of its own person (table `person_keys`) — so the
 * append-only, hash-chained log never holds a name or ID number in clear. Erasing a person
 * deletes their data key: every identity in their events becomes unreadable at once, while the
 * stored bytes, and so the hash chain, stay exactly as they were.
 */

/** How a sealed identity sits in an event's JSON, where the identity object was. */
export interface SealedIdentity {
  sealed: string;
}

const VERSION = "v1";

/**
 * Random bytes from a pooled draw of the system's CSPRNG: one draw per 4 KiB instead of one per
 * IV and data key (a call each cost about 6 µs, a tenth of sealing an identity). A pool is never
 * written again once handed out: a refill is a new buffer.
 */
let pool = Buffer.alloc(0);
let taken = 0;
function random(n: number): Buffer {
  if (taken + n > pool.length) {
    pool = randomBytes(4096);
    taken = 0;
  }
  taken += n;
  return pool.subarray(taken - n, taken);
}

export function newDataKey(): Buffer {
  return Buffer.from(random(32));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isSealed(v: unknown): v is SealedIdentity {
  return isObject(v) && typeof v.sealed === "string";
}

function seal(key: Buffer, identity: unknown, personKey: string): SealedIdentity {
  const iv = random(12);
  const c = createCipheriv("aes-256-gcm", key, iv);
  // The person key is authenticated data: a sealed identity moved to another stream fails.
  c.setAAD(Buffer.from(personKey));
  const ct = Buffer.concat([c.update(JSON.stringify(identity), "utf8"), c.final()]);
  return {
    sealed: `${VERSION}:${Buffer.concat([iv, ct, c.getAuthTag()]).toString("base64url")}`,
  };
}

function unseal(key: Buffer, s: SealedIdentity, personKey: string): unknown {
  const [version, body] = s.sealed.split(":", 2);
  if (version !== VERSION || !body) return undefined;
  const raw = Buffer.from(body, "base64url");
  if (raw.length < 28) return undefined;
  try {
    const d = createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12));
    d.setAAD(Buffer.from(personKey));
    d.setAuthTag(raw.subarray(raw.length - 16));
    const text = Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]);
    return JSON.parse(text.toString("utf8")) as unknown;
  } catch {
    return undefined; // another (erased and replaced) key: as unreadable as no key
  }
}

/** Applies `f` to every `identity` property of a JSON value, returning a new value. */
function mapIdentities(v: unknown, f: (identity: unknown) => unknown): unknown {
  if (Array.isArray(v)) return v.map((x) => mapIdentities(x, f));
  if (!isObject(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    const mapped = k === "identity" ? f(x) : mapIdentities(x, f);
    if (mapped !== undefined) out[k] = mapped;
  }
  return out;
}

/** Event types whose data may carry an identity; the others are never walked. */
export const IDENTITY_EVENT_TYPES: ReadonlySet<string> = new Set([
  "RecordRegistered",
  "MigrationRequested",
  "SourceSuspended",
  "DocumentLinked",
]);

/** True if an event's data carries an identity in clear (a walk that copies nothing). */
export function carriesIdentity(type: string, data: unknown): boolean {
  if (!IDENTITY_EVENT_TYPES.has(type)) return false;
  const walk = (v: unknown): boolean => {
    if (Array.isArray(v)) return v.some(walk);
    if (!isObject(v)) return false;
    for (const [k, x] of Object.entries(v))
      if (k === "identity" ? isObject(x) && !isSealed(x) : walk(x)) return true;
    return false;
  };
  return walk(data);
}

/** An event's data with every identity sealed under the person's data key. */
export function sealIdentities(data: unknown, key: Buffer, personKey: string): unknown {
  return mapIdentities(data, (x) => (isObject(x) && !isSealed(x) ? seal(key, x, personKey) : x));
}

/**
 * An event's data with every sealed identity opened; an identity whose key was erased is
 * dropped, or replaced by `erased` if given (what an auditor is shown).
 */
export function openIdentities(
  data: unknown,
  key: Buffer | null | undefined,
  personKey: string,
  erased?: unknown,
): unknown {
  return mapIdentities(data, (x) => {
    if (!isSealed(x)) return x;
    return (key ? unseal(key, x, personKey) : undefined) ?? erased;
  });
}

/**
 * The data keys of these persons, made for those who have none (or whose key was erased:
 * their new events are sealed under a new key; the old ones stay unreadable).
 */
export async function dataKeys(
  tx: TransactionSql | Sql,
  personKeys: readonly string[],
): Promise<Map<string, Buffer>> {
  const keys = [...new Set(personKeys)];
  if (keys.length === 0) return new Map();
  const fresh = keys.map(() => newDataKey().toString("hex"));
  const rows = await tx<{ person_key: string; dek: Buffer }[]>`
    WITH wanted AS (
      SELECT * FROM unnest(${keys}::text[], ${fresh}::text[]) AS w(person_key, dek_hex)
    ), made AS (
      INSERT INTO person_keys (person_key, dek)
      SELECT person_key, decode(dek_hex, 'hex') FROM wanted
      ON CONFLICT (person_key) DO UPDATE SET dek = EXCLUDED.dek, erased_at = NULL
        WHERE person_keys.dek IS NULL
      RETURNING person_key, dek
    )
    SELECT person_key, dek FROM made
    UNION ALL
    SELECT k.person_key, k.dek FROM person_keys k
    WHERE k.person_key = ANY(${keys}::text[]) AND k.dek IS NOT NULL
      AND k.person_key NOT IN (SELECT person_key FROM made)`;
  const found = new Map(rows.map((r) => [r.person_key, r.dek]));
  // A key another transaction made while this statement waited on it: its snapshot predates
  // that commit, a new statement's does not (READ COMMITTED).
  const missing = keys.filter((k) => !found.has(k));
  if (missing.length > 0) {
    const late = await tx<{ person_key: string; dek: Buffer }[]>`
      SELECT person_key, dek FROM person_keys
      WHERE person_key = ANY(${missing}::text[]) AND dek IS NOT NULL`;
    for (const r of late) found.set(r.person_key, r.dek);
  }
  for (const k of keys)
    if (!found.has(k)) throw new Error(`no data key could be made for person ${k.slice(0, 12)}…`);
  return found;
}

/** One person's data key, or null if there is none (never made, or erased). */
export async function dataKeyOf(
  sql: Sql | TransactionSql,
  personKey: string,
): Promise<Buffer | null> {
  const [row] = await sql<{ dek: Buffer | null }[]>`
    SELECT dek FROM person_keys WHERE person_key = ${personKey}`;
  return row?.dek ?? null;
}
