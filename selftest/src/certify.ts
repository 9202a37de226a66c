import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  BUNDLED_SUITES,
  type CaseResult,
  Kit,
  type KitConfig,
  loadSuites,
  probeBus,
  runSuites,
} from "@evc-interop/conformance";
import { credentialFile, freePort, generateCredential } from "@evc-interop/runtime";
import {
  chainPinStream,
  dropSchema,
  mutatedCopy,
  TEST_DATABASE_URL,
  type TestPki,
  uniqueName,
} from "@evc-interop/testing";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { pino } from "pino";
import { MUTANTS, type Mutant } from "./mutants.js";

// One certification of the reference province (or a broken copy of it) by the kit, as the
// self-test and the Stryker run do it: its own ports, schemas and stream, all removed after.

/** The reference province's build (its program is main.js, beside its entry point). */
export const PROVINCE_DIST = dirname(
  fileURLToPath(import.meta.resolve("@evc-interop/province-reference")),
);
export const PROVINCE = "110000";
/**
 * The generated histories' seed: fixed, so every CI run checks the same histories and a
 * mutant caught once is caught again (EVC_SELFTEST_SEED tries another).
 */
export const SEED = Number(process.env.EVC_SELFTEST_SEED ?? 20261129);
/** A code the kit once played itself: a vendor there must be able to certify too. */
export const XINJIANG = "650000";
const NATS_URL = process.env.EVC_TEST_NATS_URL ?? process.env.NATS_URL ?? "nats://127.0.0.1:4222";

export type CertifyOptions = {
  pki?: TestPki;
  run?: string[];
  protocol?: KitConfig["province"]["protocol"];
  /** The province code to certify as (default 110000). */
  code?: string;
  /** The province build to run (default: the reference's; Stryker's sandbox has its own). */
  dist?: string;
  /** Stop at the first failing case (a verdict is all Stryker needs). */
  bail?: boolean;
};

/**
 * Certifies once more, with other ports, a province that could not be started: the ports are
 * chosen free here and bound by the province a moment later, and on a busy machine another
 * process can take one in between (EADDRINUSE). A second failure is the answer.
 */
export async function certify(mutant: Mutant | undefined, dir: string, opts: CertifyOptions = {}) {
  try {
    return await certifyOnce(mutant, dir, opts);
  } catch (err) {
    console.log(
      `  (${mutant?.name ?? "reference"}: could not start (${err instanceof Error ? err.message.split("\n")[0] : String(err)}); once more, on other ports)`,
    );
    return await certifyOnce(mutant, dir, opts);
  }
}

async function certifyOnce(
  mutant: Mutant | undefined,
  dir: string,
  opts: CertifyOptions = {},
): Promise<{ results: CaseResult[]; name: string; version: string }> {
  const { pki } = opts;
  const code = opts.code ?? PROVINCE;
  // Over TLS: the province serves HTTPS with mutual TLS and trusts the kit's hub by the CA; the
  // kit's hub serves HTTPS and wants the province's certificate (CN = its token's subject).
  const provinceCert = pki?.client(`province:${code}`);
  const kitCert = pki?.client("clinic:evc-conformance");
  const tlsEnv: Record<string, string> =
    pki && provinceCert
      ? {
          EVC_TLS_CERT: pki.serverCertFile,
          EVC_TLS_KEY: pki.serverKeyFile,
          EVC_TLS_CLIENT_CA: pki.caFile,
          EVC_TLS_CA: pki.caFile,
          EVC_TLS_CLIENT_CERT: provinceCert.certFile,
          EVC_TLS_CLIENT_KEY: provinceCert.keyFile,
        }
      : {};
  // Short names: PostgreSQL truncates identifiers at 63 bytes.
  const id = uniqueName(mutant ? `conf_v${MUTANTS.indexOf(mutant)}` : "conf_ref");
  const dist = opts.dist ?? PROVINCE_DIST;
  const copy = mutant ? mutatedCopy(dist, mutant.edits, mutant.name) : undefined;
  const program = join(copy?.dist ?? dist, "main.js");
  const [hubPort, provincePort, controlPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const controlToken = randomBytes(18).toString("base64url");
  const config: KitConfig = {
    province: {
      code,
      url: `${pki ? "https" : "http"}://127.0.0.1:${provincePort}`,
      controlUrl: `${pki ? "https" : "http"}://127.0.0.1:${controlPort}`,
      protocol: opts.protocol ?? "grpc",
      httpVersion: "2",
      publicKeyFile: join(dir, credentialFile(`province:${code}`)),
      controlToken,
      startCommand: `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(program)}`,
      restartCommand: "",
      env: {
        ...referenceProvinceEnv({
          databaseUrl: TEST_DATABASE_URL,
          schemaPrefix: `${id}_p`,
          credentialsDir: dir,
          provincePort,
          controlPort,
          controlToken,
        }),
        ...tlsEnv,
      },
      readyTimeoutMs: 30_000,
      caFile: pki?.caFile ?? "",
      clientCertFile: kitCert?.certFile ?? "",
      clientKeyFile: kitCert?.keyFile ?? "",
    },
    kit: {
      hubListen: `127.0.0.1:${hubPort}`,
      natsUrl: NATS_URL,
      natsUser: "",
      natsPassword: "",
      natsNkeySeed: "",
      // The machine's open test bus (the kit and the province it starts say so).
      natsAnonymous: true,
      stream: id.toUpperCase(),
      subjectPrefix: `conf.${id}`,
      databaseUrl: TEST_DATABASE_URL,
      schema: `${id}_hub`,
      caseTimeoutMs: 20_000,
      callTimeoutMs: 10_000,
      ownNames: { stream: false, schema: false },
      directiveKeysDir: join(dir, "kit-directive-keys"),
      tlsCertFile: pki?.serverCertFile ?? "",
      tlsKeyFile: pki?.serverKeyFile ?? "",
      tlsCaFile: pki?.caFile ?? "",
    },
  };
  const kit = await Kit.start(config, pino({ level: "silent" }));
  try {
    await kit.startProvince();
    await probeBus(kit, config.province.readyTimeoutMs);
    const features = await kit.control.getFeatures({});
    const results = await runSuites(kit, loadSuites(BUNDLED_SUITES), features.profiles, {
      run: opts.run ?? [],
      skip: [],
      knownFailing: [],
      knownFlaky: [],
      trace: mutant === undefined,
      caseTimeoutMs: config.kit.caseTimeoutMs,
      seed: SEED,
      bail: opts.bail ?? false,
    });
    return { results, name: features.implementationName, version: features.implementationVersion };
  } finally {
    await kit.stop();
    copy?.remove();
    await dropSchema(config.kit.schema);
    await dropSchema(`${config.province.env.EVC_PROVINCE_SCHEMA_PREFIX}${code}`);
    const nc = await connect({ servers: NATS_URL });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(config.kit.stream).catch(() => undefined);
    await jsm.streams.delete(chainPinStream(config.kit.stream)).catch(() => undefined);
    await nc.close();
  }
}

/** Writes a private key for each province code into `dir` (what the provinces sign with). */
export async function writeCredentials(dir: string, codes: string[]): Promise<void> {
  for (const code of codes) {
    const { credential } = await generateCredential(`province:${code}`);
    writeFileSync(
      join(dir, credentialFile(`province:${code}`)),
      JSON.stringify(credential.privateJwk),
    );
  }
}

/**
 * The environment of a reference province the kit starts for a test run: its store, keys and
 * ports, the kit's hub provisioning its consumer, fast receipts, quiet logs, the open test bus.
 */
export function referenceProvinceEnv(o: {
  /** Unset: the province takes the DATABASE_URL the kit gives it (its own PostgreSQL). */
  databaseUrl?: string;
  /** The kit's own bus: the kit gives the province its NKey seed, never anonymity. */
  kitBus?: boolean;
  schemaPrefix: string;
  credentialsDir: string;
  provincePort: number;
  controlPort: number;
  controlToken: string;
}): Record<string, string> {
  return {
    ...(o.databaseUrl ? { DATABASE_URL: o.databaseUrl } : {}),
    EVC_PROVINCE_SCHEMA_PREFIX: o.schemaPrefix,
    EVC_CREDENTIALS_DIR: o.credentialsDir,
    EVC_PROVINCE_LISTEN: `127.0.0.1:${o.provincePort}`,
    EVC_CONTROL_LISTEN: `127.0.0.1:${o.controlPort}`,
    EVC_CONTROL_TOKEN: o.controlToken,
    EVC_RECONCILE_EXTRA_GRACE_MS: "0",
    EVC_PROVISION_CONSUMER: "0",
    EVC_RECEIPT_POLL_MS: "200",
    EVC_LOG_LEVEL: "silent",
    ...(o.kitBus ? {} : { EVC_NATS_ANONYMOUS: "1" }),
  };
}
