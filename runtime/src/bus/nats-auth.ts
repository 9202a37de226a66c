import { readFileSync } from "node:fs";
import { type ConnectionOptions, nkeyAuthenticator, nkeys } from "@nats-io/transport-node";
import { ConfigError } from "../env.js";
import { type BusLayout, provinceConsumer, provinceSubject } from "./stream.js";

/**
 * A NATS user of the directive bus: an NKey (the server knows only its public key; the client
 * proves it holds the seed) or, for a server of the operator's that uses them, a password.
 */
export interface BusUser {
  /** A label (the NATS user name for a password user). */
  user: string;
  /** Public NKey (U…) of an NKey user. */
  nkey?: string;
  /** File holding the NKey seed (SU…), for the user's own process. */
  seedFile?: string;
  password?: string;
  /** Province code, or undefined for the hub (full access to the account). */
  province?: string;
}

/** How a process authenticates to NATS: an NKey seed, or a user and password, or neither. */
export interface NatsCredentialFields {
  natsUser: string;
  natsPassword: string;
  /** NKey seed text (SU…); empty: none. */
  natsNkeySeed?: string;
  /** Connect with no credential at all: only when said so (EVC_NATS_ANONYMOUS=1). */
  natsAnonymous?: boolean;
}

/**
 * The connect options that authenticate as `c` (NKey first, then user and password). Secure by
 * default: no credential is a configuration error unless anonymity was asked for — a bus that
 * lets anyone in lets anyone read and publish directives.
 */
export function natsCredentials(
  c: NatsCredentialFields,
): Pick<ConnectionOptions, "user" | "pass" | "authenticator"> {
  if (c.natsNkeySeed)
    return { authenticator: nkeyAuthenticator(new TextEncoder().encode(c.natsNkeySeed)) };
  if (c.natsUser) return { user: c.natsUser, pass: c.natsPassword };
  if (c.natsAnonymous) return {};
  throw new ConfigError(
    "no NATS credential: set EVC_NATS_NKEY_SEED (npm run credentials makes a seed per bus user) or EVC_NATS_USER and EVC_NATS_PASSWORD; EVC_NATS_ANONYMOUS=1 connects without one (a private test bus only)",
  );
}

/**
 * The servers of a NATS URL setting: one URL, or several separated by commas (the nodes of a
 * cluster), as the NATS client wants them (it would take a comma-separated string for one host).
 */
export function natsServers(url: string): string[] {
  return url
    .split(",")
    .map((u) => u.trim())
    .filter(Boolean);
}

/** The NKey seed in the file EVC_NATS_NKEY_SEED names ("" if unset). */
export function nkeySeedFromEnv(env: NodeJS.ProcessEnv): string {
  const file = env.EVC_NATS_NKEY_SEED;
  if (!file) return "";
  let seed: string;
  try {
    seed = readFileSync(file, "utf8").trim();
  } catch (err) {
    throw new ConfigError(`EVC_NATS_NKEY_SEED: cannot read ${file}: ${String(err)}`);
  }
  if (!/^SU[A-Z2-7]+$/.test(seed))
    throw new ConfigError(`EVC_NATS_NKEY_SEED: ${file} does not hold a user NKey seed (SU…)`);
  return seed;
}

/** A new NKey user: its public key and its seed. */
export function newNkeyUser(): { nkey: string; seed: string } {
  const kp = nkeys.createUser();
  return { nkey: kp.getPublicKey(), seed: new TextDecoder().decode(kp.getSeed()) };
}

function quote(s: string): string {
  return JSON.stringify(s);
}

/**
 * The reply-subject prefix a province's NATS client uses (its `inboxPrefix`): with the shared
 * `_INBOX.>` a province allowed to subscribe there would receive every other province's pulled
 * directives (replies to their fetch requests travel on inbox subjects).
 */
export function provinceInbox(province: string): string {
  return `_INBOX_${province}`;
}

/**
 * The NATS authorization block that enforces I7 on the bus: the hub may do anything in the
 * account; a province may only read its own durable consumer (fetch, ack, info) and use its
 * reply inbox (provinceInbox). It cannot subscribe to another province's subject, read another province's
 * consumer, or create consumers at all (the hub provisions them).
 */
export function natsAccountsConfig(layout: BusLayout, users: BusUser[], account = "EVC"): string {
  const lines = users.map((u) => {
    const who = u.nkey
      ? `nkey: ${quote(u.nkey)}`
      : `user: ${quote(u.user)}, password: ${quote(u.password ?? "")}`;
    if (!u.province) return `      { ${who} }`;
    const consumer = provinceConsumer(u.province);
    const publish = [
      `$JS.API.CONSUMER.INFO.${layout.stream}.${consumer}`,
      `$JS.API.CONSUMER.MSG.NEXT.${layout.stream}.${consumer}`,
      `$JS.ACK.${layout.stream}.${consumer}.>`,
      `$JS.API.STREAM.INFO.${layout.stream}`,
    ];
    return [
      `      { ${who}, permissions: {  # ${u.user}`,
      `          publish: { allow: [${publish.map(quote).join(", ")}] }`,
      `          subscribe: { allow: [${quote(`${provinceInbox(u.province)}.>`)}] }`,
      `          # delivers on ${provinceSubject(layout, u.province)} via ${consumer} only`,
      "      } }",
    ].join("\n");
  });
  return [
    "accounts {",
    `  ${account} {`,
    "    jetstream: enabled",
    "    users: [",
    lines.join(",\n"),
    "    ]",
    "  }",
    "}",
    "",
  ].join("\n");
}
