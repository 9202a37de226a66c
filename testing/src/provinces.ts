import type { Transport } from "@connectrpc/connect";
import {
  Province,
  type ProvinceConfig,
  type ProvinceOptions,
  provinceConfigFromEnv,
} from "@evc-interop/province-reference";
import {
  bearer,
  generateReaderIssuer,
  issueReaderToken,
  type ReaderIssuer,
} from "@evc-interop/runtime";
import { pino } from "pino";
import { type TestHubEnv, transport } from "./harness.js";
import { dropSchema, TEST_DATABASE_URL, uniqueName } from "./pg.js";

let issuer: Promise<ReaderIssuer> | undefined;
/** The reader token issuer every test province trusts. */
export function testReaderIssuer(): Promise<ReaderIssuer> {
  issuer ??= generateReaderIssuer("test-clinic-registry");
  return issuer;
}

/** Config of a reference province wired to a test hub, in a schema of its own. */
export function testProvinceConfig(
  env: TestHubEnv,
  code: string,
  overrides: Partial<ProvinceConfig> = {},
): ProvinceConfig {
  return {
    ...provinceConfigFromEnv(code, 0, {}),
    databaseUrl: TEST_DATABASE_URL,
    schema: uniqueName(`prov_${code}`),
    natsUrl: env.config.natsUrl,
    natsAnonymous: env.config.natsAnonymous,
    stream: env.config.stream,
    subjectPrefix: env.config.subjectPrefix,
    hubUrl: env.hub.url,
    host: "127.0.0.1",
    port: 0,
    reconcileIntervalMs: 0,
    extraGraceMs: 0,
    receiptPollMs: 100,
    shutdownGraceMs: 1000,
    provisionConsumer: false,
    controlToken: "test-control-token",
    controlPort: 0,
    ...overrides,
  };
}

export async function startTestProvince(
  env: TestHubEnv,
  code: string,
  overrides: Partial<ProvinceConfig> = {},
  opts: ProvinceOptions = {},
): Promise<Province> {
  return Province.start(testProvinceConfig(env, code, overrides), {
    credential: env.creds.credential(`province:${code}`),
    directiveKeys: env.directiveKeys,
    readerKeys: (await testReaderIssuer()).publicKeys,
    logger: pino({ level: process.env.EVC_TEST_LOG_LEVEL ?? "silent" }),
    ...opts,
  });
}

/** Stops a test province and drops its schema. */
export async function closeTestProvince(p: Province): Promise<void> {
  await p.stop().catch(() => undefined);
  await dropSchema(p.config.schema);
}

/** A transport to a test province's port that carries its control token. */
export function controlTransport(p: Province): Transport {
  return transport(p.controlUrl, [bearer(p.config.controlToken)]);
}

/**
 * A transport to a test province's port that carries a reader token (default: a clinic, scope
 * records:read; `record` makes it a holder token for that record).
 */
export function readerTransport(
  p: Province,
  opts: { scope?: string; record?: string; caller?: string } = {},
): Transport {
  const token = async () =>
    issueReaderToken((await testReaderIssuer()).privateJwk, {
      province: p.code,
      caller: opts.caller ?? "clinic:test",
      scope: opts.scope ?? (opts.record ? "holder:read" : "records:read"),
      ...(opts.record ? { record: opts.record } : {}),
    });
  return transport(p.url, [bearer(token)]);
}
