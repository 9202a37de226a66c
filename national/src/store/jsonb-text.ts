/**
 * The text PostgreSQL prints for a `jsonb` value (`value::jsonb::text`), computed in JavaScript:
 * object keys ordered shortest first, then byte-wise; `": "` and `", "` separators; strings
 * escaped as JSON.stringify does (the same escapes PostgreSQL's jsonb output uses). Properties
 * whose value is undefined are left out, as JSON.stringify does.
 *
 * The rebuild compares replayed person states with the stored ones by this text, so it can
 * skip parsing a million states into jsonb just to compare them.
 */
export function jsonbText(value: unknown): string {
  switch (typeof value) {
    case "string":
      return quote(value);
    case "number":
      return numberText(value);
    case "boolean":
      return value ? "true" : "false";
    case "object":
      if (value === null) return "null";
      if (Array.isArray(value)) return arrayText(value);
      return objectText(value as Record<string, unknown>);
    default:
      throw new TypeError(`jsonbText: ${typeof value} is not JSON`);
  }
}

/** A JSON string; most need no escape, and a scan is cheaper than JSON.stringify. */
function quote(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) {
      return JSON.stringify(s);
    }
  }
  return `"${s}"`;
}

function numberText(n: number): string {
  if (!Number.isFinite(n)) return "null"; // as JSON.stringify
  // jsonb keeps numbers as numeric, printed without exponent; integers and short decimals
  // print the same as JavaScript's shortest form.
  if (Number.isSafeInteger(n) || (Math.abs(n) >= 1e-6 && Math.abs(n) < 1e21)) {
    return Object.is(n, -0) ? "0" : String(n);
  }
  throw new RangeError(`jsonbText: ${n} has no exact jsonb text here`);
}

function arrayText(a: readonly unknown[]): string {
  if (a.length === 0) return "[]";
  let out = "[";
  for (let i = 0; i < a.length; i++) {
    const v = a[i];
    out +=
      (i === 0 ? "" : ", ") + (v === undefined || typeof v === "function" ? "null" : jsonbText(v));
  }
  return `${out}]`;
}

/** jsonb's key order: shorter (in UTF-8 bytes) first, then byte-wise. */
function compareKeys(a: string, b: string): number {
  const la = Buffer.byteLength(a);
  const lb = Buffer.byteLength(b);
  if (la !== lb) return la - lb;
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Compares ASCII keys without encoding them (the usual case). */
function compareAsciiKeys(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** True when every character is ASCII (so UTF-16 order is byte order). */
function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** Sorts keys into jsonb's order. */
function sortKeys(keys: string[]): string[] {
  let ascii = true;
  let sorted = true;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as string;
    if (ascii && !isAscii(k)) ascii = false;
    if (sorted && i > 0 && compareAsciiKeys(keys[i - 1] as string, k) > 0) sorted = false;
  }
  if (ascii && sorted) return keys;
  return keys.sort(ascii ? compareAsciiKeys : compareKeys);
}

/**
 * An object's key list, as Object.keys gives it, with its keys in jsonb order and the text
 * that goes before each key's value (`"key": `, and `, "key": ` after the first).
 */
interface Shape {
  keys: readonly string[];
  order: readonly string[];
  first: readonly string[];
  next: readonly string[];
}

/**
 * Shapes seen, by first key. A state is made of a few kinds of objects, each with the same
 * keys every time (records, certificates, doses…), so their order is worked out once. Objects
 * keyed by id (a person's records by record id) rarely repeat; the cache is emptied when full.
 */
const shapes = new Map<string, Shape[]>();
let shapeCount = 0;
const MAX_SHAPES = 1024;

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function shapeOf(keys: string[]): Shape {
  const head = keys[0] as string;
  const known = shapes.get(head);
  if (known) for (const s of known) if (sameKeys(s.keys, keys)) return s;
  const order = sortKeys(keys.slice());
  const first = order.map((k) => `${quote(k)}: `);
  const shape: Shape = { keys, order, first, next: first.map((t) => `, ${t}`) };
  if (shapeCount >= MAX_SHAPES) {
    shapes.clear();
    shapeCount = 0;
  }
  const list = shapes.get(head);
  if (list) list.push(shape);
  else shapes.set(head, [shape]);
  shapeCount += 1;
  return shape;
}

function objectText(o: Record<string, unknown>): string {
  const json = (o as { toJSON?: () => unknown }).toJSON;
  if (typeof json === "function") return jsonbText(json.call(o));
  const keys = Object.keys(o);
  if (keys.length === 0) return "{}";
  if (keys.length === 1) {
    // One key (an id-keyed map of one entry): nothing to order, nothing worth caching.
    const k = keys[0] as string;
    const v = o[k];
    return v === undefined || typeof v === "function" ? "{}" : `{${quote(k)}: ${jsonbText(v)}}`;
  }
  const shape = shapeOf(keys);
  let out = "{";
  let first = true;
  for (let i = 0; i < shape.order.length; i++) {
    const v = o[shape.order[i] as string];
    if (v === undefined || typeof v === "function") continue;
    out += (first ? shape.first[i] : shape.next[i]) + jsonbText(v);
    first = false;
  }
  return `${out}}`;
}
