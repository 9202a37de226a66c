import { decodeJwt, type JWTPayload } from "jose";

/**
 * The operator's bearer token, kept in this tab only (session storage: closing the tab signs
 * out). The page reads the token's claims to say who is signed in and until when; the hub, not
 * the page, decides what the token may do.
 */
const KEY = "evc-console-token";

export interface Session {
  token: string;
  /** operator:<name> or viewer:<name>. */
  subject: string;
  /** When the token expires (the hub refuses it after). */
  expiresAt: Date;
}

/** The claims of a JWT, unverified (the hub verifies); undefined if it is not one. */
function claims(token: string): JWTPayload | undefined {
  try {
    return decodeJwt(token);
  } catch {
    return undefined;
  }
}

/** A session from a pasted token, or why the token cannot be one. */
export function sessionOf(token: string): Session | string {
  const t = token.trim().replace(/^Bearer\s+/i, "");
  const c = claims(t);
  if (!c) return "this is not a token: paste the output of `evc-operator token`";
  if (typeof c.sub !== "string" || !/^(operator|viewer):/.test(c.sub))
    return `the token is ${String(c.sub)}'s: the console is for operators and viewers`;
  if (typeof c.exp !== "number") return "the token has no expiry";
  const expiresAt = new Date(c.exp * 1000);
  if (expiresAt.getTime() <= Date.now()) return "the token has expired: make a new one";
  return { token: t, subject: c.sub, expiresAt };
}

export function loadSession(): Session | undefined {
  const t = sessionStorage.getItem(KEY);
  if (!t) return undefined;
  const s = sessionOf(t);
  return typeof s === "string" ? undefined : s;
}

export function saveSession(s: Session | undefined): void {
  if (s) sessionStorage.setItem(KEY, s.token);
  else sessionStorage.removeItem(KEY);
}
