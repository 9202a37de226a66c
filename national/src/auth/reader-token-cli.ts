#!/usr/bin/env node
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { issueReaderToken, loadReaderIssuer } from "@evc-interop/runtime";

/**
 * `evc-reader-token --province CODE --caller SUB --scope SCOPE [--record ID] [--lifetime S]`:
 * prints a phone-tier reader token signed by the development issuer in EVC_CREDENTIALS_DIR
 * (what a clinic registry or a holder app's back end does in production).
 */
const USAGE =
  "usage: evc-reader-token --province 110000 --caller clinic:110105-01 [--scope records:read|holder:read|access-log:read] [--record RECORD_ID] [--lifetime 300] [--dir CREDENTIALS_DIR]";
const OPTIONS = {
  province: { type: "string" },
  caller: { type: "string" },
  scope: { type: "string", default: "records:read" },
  record: { type: "string" },
  lifetime: { type: "string", default: "300" },
  dir: { type: "string" },
  help: { type: "boolean", short: "h", default: false },
} as const;
let values: ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>["values"];
try {
  ({ values } = parseArgs({ options: OPTIONS }));
} catch (err) {
  console.error(`evc-reader-token: ${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
  process.exit(2);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
if (!values.province || !values.caller) {
  console.error(`evc-reader-token: --province and --caller are required\n${USAGE}`);
  process.exit(2);
}
const dir = resolve(values.dir ?? process.env.EVC_CREDENTIALS_DIR ?? ".data/credentials");
const key = await loadReaderIssuer(dir);
console.log(
  await issueReaderToken(key, {
    province: values.province,
    caller: values.caller,
    scope: values.scope,
    lifetimeS: Number(values.lifetime),
    ...(values.record ? { record: values.record } : {}),
  }),
);
