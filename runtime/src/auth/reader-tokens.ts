import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { exportJWK, generateKeyPair, importJWK, type JSONWebKeySet, type JWK, SignJWT } from "jose";

/**
 * Reader tokens of the phone tier (see evc.province.v1.ProvinceService's access model): JWTs a
 * token issuer the province trusts signs for a caller, audience `evc-province:<code>`.
 */

/** A clinic: any record of the province, by id or by identity. */
export const SCOPE_RECORDS = "records:read";
/** The holder's app acting for a guardian: only the record in the token's `evc_record` claim. */
export const SCOPE_HOLDER = "holder:read";
/** A clinic's system writing: ClinicService (registrations, doses, migrations, closures). */
export const SCOPE_WRITE = "records:write";
/** An auditor: the province's access log. */
export const SCOPE_ACCESS_LOG = "access-log:read";

export function readerAudience(provinceCode: string): string {
  return `evc-province:${provinceCode}`;
}

/**
 * A reader token issuer: what a clinic registry or a holder app's back end runs to let its
 * callers read at a province (the province trusts the issuer's public key, EVC_READER_KEYS).
 * Used by the kit, the tests and `evc-reader-token`.
 */
export interface ReaderIssuer {
  privateJwk: JWK;
  /** What the province trusts (write it to its EVC_READER_KEYS file). */
  publicKeys: JSONWebKeySet;
}

export async function generateReaderIssuer(kid: string): Promise<ReaderIssuer> {
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", {
    crv: "Ed25519",
    extractable: true,
  });
  const common = { kid, alg: "EdDSA", use: "sig" };
  return {
    privateJwk: { ...(await exportJWK(privateKey)), ...common },
    publicKeys: { keys: [{ ...(await exportJWK(publicKey)), ...common }] },
  };
}

export interface ReaderClaims {
  province: string;
  caller: string;
  /** Space-separated: records:read, holder:read, access-log:read. */
  scope: string;
  /** For holder:read, the one record the holder may read. */
  record?: string;
  lifetimeS?: number;
}

export async function issueReaderToken(privateJwk: JWK, c: ReaderClaims): Promise<string> {
  const iat = Math.floor(Date.now() / 1000);
  return new SignJWT({ scope: c.scope, ...(c.record ? { evc_record: c.record } : {}) })
    .setProtectedHeader({ alg: "EdDSA", kid: privateJwk.kid ?? "reader-issuer", typ: "JWT" })
    .setSubject(c.caller)
    .setAudience(readerAudience(c.province))
    .setIssuedAt(iat)
    .setExpirationTime(iat + (c.lifetimeS ?? 300))
    .sign(await importJWK(privateJwk, "EdDSA"));
}

export const READER_ISSUER_FILE = "reader-issuer.jwk";
export const READER_KEYS_FILE = "reader-keys.json";

/**
 * Writes a reader token issuer's private key and the key set provinces trust
 * (`reader-keys.json`, what EVC_READER_KEYS points at) into `dir`, unless one is there.
 */
export async function ensureReaderIssuer(dir: string, kid = "dev-reader-issuer"): Promise<void> {
  if (existsSync(join(dir, READER_ISSUER_FILE))) return;
  const issuer = await generateReaderIssuer(kid);
  await writeFile(
    join(dir, READER_ISSUER_FILE),
    `${JSON.stringify(issuer.privateJwk, null, 2)}\n`,
    {
      mode: 0o600,
    },
  );
  await writeFile(join(dir, READER_KEYS_FILE), `${JSON.stringify(issuer.publicKeys, null, 2)}\n`);
}

/** The private key of the reader token issuer in `dir`. */
export async function loadReaderIssuer(dir: string): Promise<JWK> {
  return JSON.parse(await readFile(join(dir, READER_ISSUER_FILE), "utf8")) as JWK;
}
