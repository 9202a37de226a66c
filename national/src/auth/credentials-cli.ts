#!/usr/bin/env node
import { resolve } from "node:path";
import { createDevCredentials } from "@evc-interop/runtime";

/** `evc-credentials [DIR]`: creates development credentials for the 31 provinces and an operator. */
const dir = resolve(process.argv[2] ?? process.env.EVC_CREDENTIALS_DIR ?? ".data/credentials");
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
