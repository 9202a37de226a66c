import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type JsonWebKey,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

/**
 * Directives are signed by the hub (see proto/evc/directive/v1/directive.proto): the bus
 * message carries `Evc-Signature: <key id>:<signature>`, an Ed25519 signature over the
 * message's bytes in base64url, so a province applies only what the hub issued, whoever could
 * publish on the bus. Several keys may be trusted at once (rotation).
 */
export const SIGNATURE_HEADER = "Evc-Signature";

/** A hub signing key as stored: an Ed25519 private JWK with its key id. */
export interface SigningJwk extends JsonWebKey {
  kid: string;
}

/** The public keys a province trusts for directives (a JWKS of Ed25519 keys). */
export interface DirectiveKeySet {
  keys: SigningJwk[];
}

const KID = /^[A-Za-z0-9_-]{1,64}$/;

export class DirectiveSigner {
  private readonly key: KeyObject;

  constructor(readonly jwk: SigningJwk) {
    if (!KID.test(jwk.kid))
      throw new Error(`directive signing key id "${jwk.kid}" is not [A-Za-z0-9_-]{1,64}`);
    this.key = createPrivateKey({ key: jwk, format: "jwk" });
  }

  /** The header value for a message of these bytes. */
  sign(payload: Uint8Array): string {
    return `${this.jwk.kid}:${sign(null, payload, this.key).toString("base64url")}`;
  }

  /** The public half, for the provinces' key set. */
  publicJwk(): SigningJwk {
    const { d: _private, ...pub } = this.jwk;
    return pub;
  }
}

export type Verdict = { ok: true; kid: string } | { ok: false; why: string };

export class DirectiveVerifier {
  private readonly keys = new Map<string, KeyObject>();

  constructor(set: DirectiveKeySet) {
    for (const k of set.keys) {
      const { d: _never, ...pub } = k;
      this.keys.set(k.kid, createPublicKey({ key: pub, format: "jwk" }));
    }
    if (this.keys.size === 0) throw new Error("no directive key to trust");
  }

  /** Whether `header` is a signature over `payload` by a trusted key. */
  verify(payload: Uint8Array, header: string | undefined): Verdict {
    if (!header) return { ok: false, why: `unsigned: no ${SIGNATURE_HEADER} header` };
    const at = header.indexOf(":");
    const kid = at > 0 ? header.slice(0, at) : "";
    const key = this.keys.get(kid);
    if (!key)
      return { ok: false, why: `signed with key "${kid.slice(0, 64)}", which is not trusted` };
    const sig = Buffer.from(header.slice(at + 1), "base64url");
    if (sig.length !== 64 || !verify(null, payload, key, sig)) {
      return { ok: false, why: `signature by "${kid}" does not match the message` };
    }
    return { ok: true, kid };
  }
}

/** A new hub signing key. */
export function generateSigningKey(kid = `hub-${Date.now().toString(36)}`): DirectiveSigner {
  const { privateKey } = generateKeyPairSync("ed25519");
  return new DirectiveSigner({ ...(privateKey.export({ format: "jwk" }) as JsonWebKey), kid });
}

/** File names in a credentials directory. */
export const SIGNING_KEY_FILE = "hub-directive-signing.jwk";
export const DIRECTIVE_KEYS_FILE = "hub-directive-keys.json";

/**
 * Writes a hub signing key and the key set provinces trust into `dir`, unless a signing key is
 * already there. Returns whether it wrote them.
 */
export async function ensureSigningKey(dir: string): Promise<boolean> {
  if (existsSync(join(dir, SIGNING_KEY_FILE))) return false;
  const signer = generateSigningKey();
  await writeFile(join(dir, SIGNING_KEY_FILE), `${JSON.stringify(signer.jwk, null, 2)}\n`, {
    mode: 0o600,
  });
  const set: DirectiveKeySet = { keys: [signer.publicJwk()] };
  await writeFile(join(dir, DIRECTIVE_KEYS_FILE), `${JSON.stringify(set, null, 2)}\n`);
  return true;
}

export async function loadSigner(file: string): Promise<DirectiveSigner> {
  return new DirectiveSigner(JSON.parse(await readFile(file, "utf8")) as SigningJwk);
}

export async function loadVerifier(file: string): Promise<DirectiveVerifier> {
  return new DirectiveVerifier(JSON.parse(await readFile(file, "utf8")) as DirectiveKeySet);
}
