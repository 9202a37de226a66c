#!/usr/bin/env node
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { issueReaderToken, loadReaderIssuer } from "@evc-interop/runtime";

/**
 * `evc-reader-token --province CODE --caller SUB --scope SCOPE [--record ID] [--lifetime S]`:
 * prints a phone-tier reader token signed by the development issuer in EVC_CREDENTIALS_DIR
 * (what a clinic registry or a holder app's back end does in production).
 */
const { values } = parseArgs({
  options: {
    province: { type: "string" },
    caller: { type: "string" },
    scope: { type: "string", default: "records:read" },
    record: { type: "string" },
    lifetime: { type: "string", default: "300" },
    dir: { type: "string" },
  },
});
if (!values.province || !values.caller) {
  console.error(
    "usage: evc-reader-token --province 110000 --caller clinic:110105-01 [--scope records:read|holder:read|access-log:read] [--record RECORD_ID] [--lifetime 300]",
  );
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
