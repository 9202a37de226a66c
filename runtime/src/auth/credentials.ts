import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { JSONWebKeySet } from "jose";
import { type BusUser, natsAccountsConfig, newNkeyUser } from "../bus/nats-auth.js";
import { ensureSigningKey } from "../bus/signing.js";
import { DEFAULT_LAYOUT } from "../bus/stream.js";
import { PROVINCES } from "./provinces.js";
import { ensureReaderIssuer } from "./reader-tokens.js";
import { type Credential, generateCredential } from "./tokens.js";

/**
 * Development credentials: one Ed25519 key per province and one operator key, written to a
 * directory as `<subject>.jwk` (private, mode 0600) plus `trust.json` (the public JWKS the hub
 * trusts), and NATS users for the bus: `nats-accounts.conf` (include it in nats-server.conf)
 * with `nats-users.json` (each user's password, for EVC_NATS_USER / EVC_NATS_PASSWORD). Production provinces generate their own keys and hand the hub only the public half.
 */
export async function createDevCredentials(
  dir: string,
  operators: string[] = ["ops"],
): Promise<string[]> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const subjects = [
    ...Object.keys(PROVINCES).map((c) => `province:${c}`),
    ...operators.map((o) => `operator:${o}`),
  ];
  const trust: JSONWebKeySet = { keys: [] };
  for (const subject of subjects) {
    const { credential, publicJwk } = await generateCredential(subject);
    trust.keys.push(publicJwk);
    await writeFile(
      join(dir, credentialFile(subject)),
      `${JSON.stringify(credential.privateJwk, null, 2)}\n`,
      {
        mode: 0o600,
      },
    );
  }
  await writeFile(join(dir, "trust.json"), `${JSON.stringify(trust, null, 2)}\n`);
  await createBusUsers(dir);
  // The hub's directive signing key, and the key set provinces verify directives with.
  await ensureSigningKey(dir);
  await ensureReaderIssuer(dir);
  return subjects;
}

/**
 * NATS users for the bus, as NKeys (the server keeps only public keys): the hub, and one per
 * province limited to its own consumer and inbox (I7). Each seed in a file of its own;
 * `nats-users.json` lists them, `nats-accounts.conf` is what nats-server includes.
 */
export async function createBusUsers(dir: string): Promise<BusUser[]> {
  const users: BusUser[] = [];
  for (const [name, province] of [
    ["hub", undefined] as const,
    ...Object.keys(PROVINCES).map((code) => [`province-${code}`, code] as const),
  ]) {
    const { nkey, seed } = newNkeyUser();
    const seedFile = join(dir, `nats-${name}.nk`);
    await writeFile(seedFile, `${seed}\n`, { mode: 0o600 });
    users.push({ user: name, nkey, seedFile, ...(province ? { province } : {}) });
  }
  await writeFile(join(dir, "nats-accounts.conf"), natsAccountsConfig(DEFAULT_LAYOUT, users), {
    mode: 0o600,
  });
  await writeFile(join(dir, "nats-users.json"), `${JSON.stringify(users, null, 2)}\n`, {
    mode: 0o600,
  });
  return users;
}

export function credentialFile(subject: string): string {
  return `${subject.replace(":", "-")}.jwk`;
}

export async function loadCredential(dir: string, subject: string): Promise<Credential> {
  const privateJwk = JSON.parse(await readFile(join(dir, credentialFile(subject)), "utf8"));
  return { subject, privateJwk };
}

export async function loadTrust(file: string): Promise<JSONWebKeySet> {
  return JSON.parse(await readFile(file, "utf8")) as JSONWebKeySet;
}
