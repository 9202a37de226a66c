#!/usr/bin/env node
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { createDevCredentials } from "@evc-interop/runtime";

/** `evc-credentials [DIR]`: creates development credentials for the 31 provinces and an operator. */
const USAGE = `usage: evc-credentials [DIR] [--force]

Writes development credentials into DIR (default EVC_CREDENTIALS_DIR or .data/credentials):
a key pair per province and for the operator "ops", the hub's trust file (trust.json), its
directive signing key, the phone tier's reader-token issuer and the NATS users. Development
only: production keys are each holder's own.
  --force    replace the credentials DIR already holds (every holder of the old ones is locked out)
  --version  print the version`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
    version: string;
  };
  return pkg.version;
}

const OPTIONS = {
  force: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
  version: { type: "boolean", default: false },
} as const;
let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>;
try {
  parsed = parseArgs({ options: OPTIONS, allowPositionals: true });
} catch (err) {
  // An unknown option (--hepl) or a value where none belongs: never a folder named after it.
  console.error(`evc-credentials: ${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
  process.exit(2);
}
const { values, positionals } = parsed;
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
if (values.version) {
  console.log(version());
  process.exit(0);
}
if (positionals.length > 1) {
  console.error(`evc-credentials: one folder at most, got ${positionals.join(" ")}\n${USAGE}`);
  process.exit(2);
}
const dir = resolve(positionals[0] ?? process.env.EVC_CREDENTIALS_DIR ?? ".data/credentials");
// A rerun used to replace every key silently: the hub's trust and each province's key no longer
// matched what was deployed with them.
if (existsSync(join(dir, "trust.json")) && !values.force) {
  console.error(
    `evc-credentials: ${dir} already holds credentials (trust.json); writing again would replace every key. Pass --force to replace them, or name another folder.`,
  );
  process.exit(1);
}
const subjects = await createDevCredentials(dir);
console.log(`wrote ${subjects.length} credentials and trust.json to ${dir}`);
console.log(`hub:      EVC_TRUST_FILE=${dir}/trust.json`);
console.log(`province: EVC_CREDENTIALS_DIR=${dir} (each province reads province-<code>.jwk)`);
console.log(
  `bus:      the hub signs directives with ${dir}/hub-directive-signing.jwk; provinces trust ${dir}/hub-directive-keys.json`,
);
console.log(
  `phone:    provinces trust reader tokens signed by ${dir}/reader-issuer.jwk (${dir}/reader-keys.json, EVC_READER_KEYS); mint one with evc-reader-token`,
);
console.log(`nats:     include ${dir}/nats-accounts.conf; passwords in ${dir}/nats-users.json`);
