import { readFileSync } from "node:fs";
import type { TLSSocket } from "node:tls";
import { createContextKey } from "@connectrpc/connect";
import { ConfigError } from "./env.js";

/**
 * TLS settings shared by the hub, the reference province and the kit, read from files named by
 * the environment. A server given a certificate and key serves HTTPS (HTTP/2 and HTTP/1.1 by
 * ALPN); given a client CA too, it requires a client certificate signed by that CA (mutual TLS),
 * and the hub binds the certificate to the token: its subject CN must be the token's subject.
 */

export interface ServerTls {
  cert: Buffer;
  key: Buffer;
  /** Mutual TLS: clients must present a certificate signed by this CA. */
  clientCa?: Buffer;
}

export interface ClientTls {
  /** CA file to verify servers against (default: the system's, plus NODE_EXTRA_CA_CERTS). */
  ca?: Buffer;
  /** Client certificate and key, for a server that wants mutual TLS. */
  cert?: Buffer;
  key?: Buffer;
}

function file(env: NodeJS.ProcessEnv, name: string): Buffer | undefined {
  const path = env[name];
  if (!path) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`${name}: cannot read ${path}: ${String(err)}`);
  }
}

/** EVC_TLS_CERT + EVC_TLS_KEY (HTTPS), EVC_TLS_CLIENT_CA (mutual TLS); none: cleartext. */
export function serverTlsFromEnv(env: NodeJS.ProcessEnv): ServerTls | undefined {
  const cert = file(env, "EVC_TLS_CERT");
  const key = file(env, "EVC_TLS_KEY");
  const clientCa = file(env, "EVC_TLS_CLIENT_CA");
  if (!cert && !key) {
    if (clientCa) throw new ConfigError("EVC_TLS_CLIENT_CA needs EVC_TLS_CERT and EVC_TLS_KEY");
    return undefined;
  }
  if (!cert || !key) throw new ConfigError("set both EVC_TLS_CERT and EVC_TLS_KEY, or neither");
  return { cert, key, ...(clientCa ? { clientCa } : {}) };
}

/** EVC_TLS_CA (servers' CA), EVC_TLS_CLIENT_CERT + EVC_TLS_CLIENT_KEY (this side's certificate). */
export function clientTlsFromEnv(env: NodeJS.ProcessEnv): ClientTls {
  const ca = file(env, "EVC_TLS_CA");
  const cert = file(env, "EVC_TLS_CLIENT_CERT");
  const key = file(env, "EVC_TLS_CLIENT_KEY");
  if (!cert !== !key)
    throw new ConfigError("set both EVC_TLS_CLIENT_CERT and EVC_TLS_CLIENT_KEY, or neither");
  return { ...(ca ? { ca } : {}), ...(cert && key ? { cert, key } : {}) };
}

/** How to reach NATS over TLS (files, as the NATS client takes them). */
export interface NatsTls {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

/** NATS over TLS: EVC_NATS_CA, and EVC_NATS_CERT + EVC_NATS_KEY for a client certificate. */
export function natsTlsFromEnv(env: NodeJS.ProcessEnv): NatsTls | undefined {
  const ca = env.EVC_NATS_CA;
  const cert = env.EVC_NATS_CERT;
  const key = env.EVC_NATS_KEY;
  if (!cert !== !key) throw new ConfigError("set both EVC_NATS_CERT and EVC_NATS_KEY, or neither");
  if (!ca && !cert) return undefined;
  return {
    ...(ca ? { caFile: ca } : {}),
    ...(cert && key ? { certFile: cert, keyFile: key } : {}),
  };
}

/** Options for createConnectTransport's nodeOptions (HTTP/2 and HTTP/1.1 alike). */
export function transportTls(tls: ClientTls | undefined): {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
} {
  if (!tls) return {};
  return {
    ...(tls.ca ? { ca: tls.ca } : {}),
    ...(tls.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}),
  };
}

/** The subject CN of the verified client certificate of this request (mutual TLS only). */
export const peerKey = createContextKey<string | undefined>(undefined, {
  description: "the verified client certificate's subject CN",
});

/** The CN of a socket's client certificate, if the TLS handshake verified one. */
export function peerCommonName(socket: unknown): string | undefined {
  const s = socket as Partial<TLSSocket> | undefined;
  if (s?.authorized !== true || typeof s.getPeerCertificate !== "function") return undefined;
  const cn = s.getPeerCertificate().subject?.CN;
  return typeof cn === "string" ? cn : Array.isArray(cn) ? cn[0] : undefined;
}
