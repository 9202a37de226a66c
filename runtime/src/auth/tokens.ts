import {
  createLocalJWKSet,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JSONWebKeySet,
  type JWK,
  jwtVerify,
  SignJWT,
} from "jose";
import type { Principal } from "./principal.js";

/**
 * Short-lived signed tokens (JWT, EdDSA/Ed25519). Each province holds its own private key and
 * signs its own tokens; the hub trusts a JWKS of the provinces' public keys, with the key id
 * naming the subject (`province:<code>` or `operator:<name>`, or `<subject>#<n>` for a key
 * rotated in beside the old one). The hub derives the caller from
 * the verified key id and subject only (I7).
 */

export const AUDIENCE = "evc-hub";
const TOKEN_LIFETIME_S = 300;

/** A credential: a private JWK whose kid is the subject. */
export interface Credential {
  subject: string;
  privateJwk: JWK;
}

export async function generateCredential(
  subject: string,
): Promise<{ credential: Credential; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair("EdDSA", {
    crv: "Ed25519",
    extractable: true,
  });
  const privateJwk = { ...(await exportJWK(privateKey)), kid: subject, alg: "EdDSA", use: "sig" };
  const publicJwk = { ...(await exportJWK(publicKey)), kid: subject, alg: "EdDSA", use: "sig" };
  return { credential: { subject, privateJwk }, publicJwk };
}

/** Signs tokens for one credential, reusing a token until a minute before it expires. */
export class TokenSigner {
  private cached: { token: string; refreshAt: number } | undefined;
  private key: ReturnType<typeof importJWK> | undefined;

  /**
   * @param lifetimeS how long each token lasts (default 5 minutes); the hub refuses a token
   * older than 15 minutes whatever its expiry, so more than 900 is refused here.
   */
  constructor(
    readonly credential: Credential,
    private readonly lifetimeS = TOKEN_LIFETIME_S,
  ) {
    if (!(lifetimeS > 60 && lifetimeS <= MAX_TOKEN_AGE_MS / 1000))
      throw new RangeError(`a token lasts 61 to ${MAX_TOKEN_AGE_MS / 1000} s, not ${lifetimeS}`);
  }

  async token(): Promise<string> {
    const now = Date.now();
    if (this.cached && now < this.cached.refreshAt) return this.cached.token;
    this.key ??= importJWK(this.credential.privateJwk, "EdDSA");
    const iat = Math.floor(now / 1000);
    const token = await new SignJWT({})
      .setProtectedHeader({
        alg: "EdDSA",
        kid: this.credential.privateJwk.kid ?? this.credential.subject,
        typ: "JWT",
      })
      .setSubject(this.credential.subject)
      .setIssuer(this.credential.subject)
      .setAudience(AUDIENCE)
      .setIssuedAt(iat)
      .setExpirationTime(iat + this.lifetimeS)
      .sign(await this.key);
    this.cached = { token, refreshAt: now + (this.lifetimeS - 60) * 1000 };
    return token;
  }
}

export function parseSubject(subject: string): Principal | undefined {
  const province = /^province:([1-8][0-9]0000)$/.exec(subject);
  if (province?.[1]) return { kind: "province", code: province[1], subject };
  const operator = /^operator:([a-z0-9][a-z0-9._-]{0,63})$/.exec(subject);
  if (operator?.[1]) return { kind: "operator", name: operator[1], subject };
  const viewer = /^viewer:([a-z0-9][a-z0-9._-]{0,63})$/.exec(subject);
  if (viewer?.[1]) return { kind: "viewer", name: viewer[1], subject };
  return undefined;
}

export class TokenError extends Error {}

/** The oldest a token may be (from its iat), whatever its exp says. */
const MAX_TOKEN_AGE_MS = 15 * 60 * 1000;

/**
 * Verifies tokens against a trusted JWKS; caches a verified token until it expires or reaches
 * the maximum age, whichever comes first.
 */
export class TokenVerifier {
  private jwks: ReturnType<typeof createLocalJWKSet>;
  private readonly cache = new Map<string, { principal: Principal; until: number }>();

  constructor(
    trust: JSONWebKeySet,
    private readonly clock: () => number = Date.now,
  ) {
    this.jwks = createLocalJWKSet(trust);
  }

  /**
   * Replaces the trusted keys (a reloaded trust file): a key removed is refused from now on,
   * cached tokens included; a key added (rotation) is accepted beside the old one.
   */
  setTrust(trust: JSONWebKeySet): void {
    this.jwks = createLocalJWKSet(trust);
    this.cache.clear();
  }

  async verify(token: string): Promise<Principal> {
    const now = this.clock();
    const hit = this.cache.get(token);
    if (hit && hit.until > now) return hit.principal;
    let result: Awaited<ReturnType<typeof jwtVerify>>;
    try {
      result = await jwtVerify(token, this.jwks, {
        audience: AUDIENCE,
        algorithms: ["EdDSA", "ES256"],
        maxTokenAge: MAX_TOKEN_AGE_MS / 1000,
        requiredClaims: ["exp", "iat", "sub"],
        currentDate: new Date(now),
      });
    } catch (err) {
      throw new TokenError(`invalid token: ${err instanceof Error ? err.message : String(err)}`);
    }
    const sub = result.payload.sub ?? "";
    // The key id names the caller: the subject itself, or `<subject>#<n>` for a rotated key.
    const kid = result.protectedHeader.kid ?? "";
    if (kid !== sub && !kid.startsWith(`${sub}#`))
      throw new TokenError("token subject does not match its key");
    const principal = parseSubject(sub);
    if (!principal) throw new TokenError(`unknown subject ${sub}`);
    if (this.cache.size > 100_000) this.cache.clear();
    const until = Math.min(
      (result.payload.exp ?? 0) * 1000,
      (result.payload.iat ?? 0) * 1000 + MAX_TOKEN_AGE_MS,
    );
    this.cache.set(token, { principal, until });
    return principal;
  }
}
