import { invalid } from "./errors.js";

/** A position in a listing ordered by (time, uuid): what a page token carries. */
export interface PagePosition {
  at: Date;
  id: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** The years PostgreSQL's timestamptz and JavaScript's Date share without surprises. */
const EARLIEST = Date.UTC(1, 0, 1);
const LATEST = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

export function encodePageToken(p: PagePosition): string {
  return Buffer.from(`${p.at.toISOString()}|${p.id}`).toString("base64url");
}

/** The position a page token names; anything this server did not issue is InvalidArgument. */
export function decodePageToken(token: string): PagePosition {
  const [at, id, ...rest] = Buffer.from(token, "base64url").toString().split("|");
  const when = new Date(at ?? "");
  const t = when.getTime();
  if (rest.length > 0 || !id || !UUID.test(id) || Number.isNaN(t) || t < EARLIEST || t > LATEST) {
    throw invalid("page_token", "is not a token this server issued");
  }
  return { at: when, id };
}
