import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Interceptor } from "@connectrpc/connect";
import { Hub, hubConfigFromEnv } from "@evc-interop/national";
import {
  ensureReaderIssuer,
  ensureSigningKey,
  generateCredential,
  loadReaderIssuer,
  loadSigner,
  SIGNING_KEY_FILE,
  TokenSigner,
} from "@evc-interop/runtime";
import type { JSONWebKeySet, JWK } from "jose";
import type { Logger } from "pino";
import type { KitConfig } from "./config.js";

/** Provinces the kit plays itself, beside the vendor's, when a case needs a source or a target. */
const VIRTUAL_CANDIDATES = ["650000", "640000", "630000"] as const;

/** The two provinces the kit plays: never the vendor's own code. */
export function virtualProvinces(vendor: string): [string, string] {
  const [a, b] = VIRTUAL_CANDIDATES.filter((c) => c !== vendor);
  return [a ?? "650000", b ?? "640000"];
}

/**
 * The hub the kit serves: the reference hub on the kit's database and bus, trusting the
 * province's public key and two virtual provinces' keys (made for this run), signing directives
 * and reader tokens with keys kept in kit.directive_keys_dir. `inspect` sees every call after
 * authentication and before validation (the kit records receipts there).
 */
export async function startKitHub(config: KitConfig, log: Logger, inspect: Interceptor) {
  const publicJwk = JSON.parse(readFileSync(config.province.publicKeyFile, "utf8")) as JWK;
  const kid = `province:${config.province.code}`;
  if (publicJwk.kid !== kid) {
    throw new Error(
      `${config.province.publicKeyFile}: the key's kid must be "${kid}", it is "${publicJwk.kid ?? ""}"`,
    );
  }
  const { d: _private, ...publicOnly } = publicJwk;
  const trust: JSONWebKeySet = { keys: [publicOnly] };
  const signers = new Map<string, TokenSigner>();
  for (const code of virtualProvinces(config.province.code)) {
    const { credential, publicJwk: pub } = await generateCredential(`province:${code}`);
    trust.keys.push(pub);
    signers.set(code, new TokenSigner(credential));
  }
  const m = /^(.*):(\d+)$/.exec(config.kit.hubListen);
  if (!m?.[1] || !m[2])
    throw new Error(`config: kit.hub_listen must be host:port, got ${config.kit.hubListen}`);
  const hubConfig = {
    ...hubConfigFromEnv({
      EVC_TLS_CERT: config.kit.tlsCertFile,
      EVC_TLS_KEY: config.kit.tlsKeyFile,
    }),
    databaseUrl: config.kit.databaseUrl,
    schema: config.kit.schema,
    natsUrl: config.kit.natsUrl,
    natsUser: config.kit.natsUser,
    natsPassword: config.kit.natsPassword,
    natsNkeySeed: config.kit.natsNkeySeed,
    natsAnonymous: config.kit.natsAnonymous,
    host: m[1],
    port: Number(m[2]),
    stream: config.kit.stream,
    subjectPrefix: config.kit.subjectPrefix,
    consumerAckWaitMs: 2000,
    redeliverAfterMs: 60_000,
    pollMs: 50,
    personKeySecret: randomBytes(16).toString("hex"),
  };
  await mkdir(config.kit.directiveKeysDir, { recursive: true, mode: 0o700 });
  await ensureSigningKey(config.kit.directiveKeysDir);
  const signer = await loadSigner(join(config.kit.directiveKeysDir, SIGNING_KEY_FILE));
  await ensureReaderIssuer(config.kit.directiveKeysDir, "evc-conformance-reader-issuer");
  const readerIssuer = await loadReaderIssuer(config.kit.directiveKeysDir);
  const hub = await Hub.start(hubConfig, {
    trust,
    signer,
    logger: log.child({ component: "kit-hub" }),
    // Before validation: a receipt the hub refuses (for a malformed directive) was still sent.
    inspect: [inspect],
  });
  return { hub, signers, signer, readerIssuer };
}
