import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  BUNDLED_SUITES,
  type CaseResult,
  contractSha256,
  counts,
  humanReport,
  Kit,
  type KitConfig,
  loadSuites,
  probeBus,
  runSuites,
} from "@evc-interop/conformance";
import { credentialFile, freePort, generateCredential } from "@evc-interop/runtime";
import {
  dropSchema,
  makeTestPki,
  mutatedCopy,
  TEST_DATABASE_URL,
  type TestPki,
  uniqueName,
} from "@evc-interop/testing";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { pino } from "pino";
import { MUTANTS, type Mutant } from "./mutants.js";

/**
 * `npm run conformance:self`: the kit proves itself. It certifies province-reference (every case
 * must pass), then runs the same suites against each deliberately broken copy of it (its
 * build, patched in a temporary folder: see mutants.ts) and requires every one to be caught by
 * at least one case.
 */
/** The reference province's build (its program is main.js, beside its entry point). */
const PROVINCE_DIST = dirname(
  fileURLToPath(import.meta.resolve("@evc-interop/province-reference")),
);
const PROVINCE = "110000";
/**
 * The generated histories' seed: fixed, so every CI run checks the same histories and a
 * mutant caught once is caught again (EVC_SELFTEST_SEED tries another).
 */
const SEED = Number(process.env.EVC_SELFTEST_SEED ?? 20261129);
/** A code the kit once played itself: a vendor there must be able to certify too. */
const XINJIANG = "650000";
const NATS_URL = process.env.EVC_TEST_NATS_URL ?? process.env.NATS_URL ?? "nats://127.0.0.1:4222";

type CertifyOptions = {
  pki?: TestPki;
  run?: string[];
  protocol?: KitConfig["province"]["protocol"];
  /** The province code to certify as (default 110000). */
  code?: string;
};

/**
 * Certifies once more, with other ports, a province that could not be started: the ports are
 * chosen free here and bound by the province a moment later, and on a busy machine another
 * process can take one in between (EADDRINUSE). A second failure is the answer.
 */
async function certify(mutant: Mutant | undefined, dir: string, opts: CertifyOptions = {}) {
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
  const copy = mutant ? mutatedCopy(PROVINCE_DIST, mutant.edits, mutant.name) : undefined;
  const program = join(copy?.dist ?? PROVINCE_DIST, "main.js");
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
        DATABASE_URL: TEST_DATABASE_URL,
        EVC_PROVINCE_SCHEMA_PREFIX: `${id}_p`,
        EVC_CREDENTIALS_DIR: dir,
        EVC_PROVINCE_LISTEN: `127.0.0.1:${provincePort}`,
        EVC_CONTROL_LISTEN: `127.0.0.1:${controlPort}`,
        EVC_CONTROL_TOKEN: controlToken,
        EVC_RECONCILE_EXTRA_GRACE_MS: "0",
        EVC_PROVISION_CONSUMER: "0",
        EVC_RECEIPT_POLL_MS: "200",
        EVC_LOG_LEVEL: "silent",
        EVC_NATS_ANONYMOUS: "1",
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
    });
    return { results, name: features.implementationName, version: features.implementationVersion };
  } finally {
    await kit.stop();
    copy?.remove();
    await dropSchema(config.kit.schema);
    await dropSchema(`${config.province.env.EVC_PROVINCE_SCHEMA_PREFIX}${code}`);
    const nc = await connect({ servers: NATS_URL });
    await (await jetstreamManager(nc)).streams.delete(config.kit.stream).catch(() => undefined);
    await nc.close();
  }
}

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "evc-conformance-self-"));
  try {
    for (const code of [PROVINCE, XINJIANG]) {
      const { credential } = await generateCredential(`province:${code}`);
      writeFileSync(
        join(dir, credentialFile(`province:${code}`)),
        JSON.stringify(credential.privateJwk),
      );
    }

    const started = Date.now();
    const reference = await certify(undefined, dir);
    console.log(
      humanReport(
        {
          implementationName: reference.name,
          implementationVersion: reference.version,
          provinceCode: PROVINCE,
          contractVersion: "evc.*.v1",
          kitVersion: "self-test",
          contractSha256: contractSha256(),
          seed: SEED,
          startedAt: new Date(started).toISOString(),
          seconds: (Date.now() - started) / 1000,
        },
        reference.results,
      ),
    );
    const ref = counts(reference.results);

    // The reference speaks every protocol a vendor's kit run may use: the core profile over
    // Connect and gRPC-Web too (the run above, and the mutation runs, are over gRPC).
    const byProtocol: string[] = [];
    let protocolsOk = true;
    for (const protocol of ["connect", "grpc-web"] as const) {
      const { results } = await certify(undefined, dir, { protocol, run: ["status", "directive"] });
      const c = counts(results);
      protocolsOk &&= c.failed === 0 && c.passed > 0;
      byProtocol.push(`${protocol} ${c.passed} passed, ${c.failed} failed`);
      for (const r of results.filter((x) => x.status === "failed"))
        console.log(
          `  FAIL (${protocol}) ${r.name}: ${r.expected ? `expected ${r.expected}; saw ${r.seen}` : r.error}`,
        );
    }
    console.log(`\nCore profile by protocol (status, directive): ${byProtocol.join("; ")}`);

    // As Xinjiang (650000), a code the kit's own virtual provinces once took: they step aside.
    const asXinjiang = counts(
      (await certify(undefined, dir, { code: XINJIANG, run: ["status", "directive"] })).results,
    );
    console.log(
      `As province ${XINJIANG} (status, directive): ${asXinjiang.passed} passed, ${asXinjiang.failed} failed`,
    );
    protocolsOk &&= asXinjiang.failed === 0 && asXinjiang.passed > 0;

    // Every hop over TLS: the kit's hub and the province on HTTPS with mutual TLS, the kit's
    // clients verifying the province by a CA (the core profile's status and directive suites).
    const pki = makeTestPki();
    let overTls: ReturnType<typeof counts>;
    try {
      const { results } = await certify(undefined, dir, { pki, run: ["status", "directive"] });
      overTls = counts(results);
      console.log(
        `\nOver HTTPS with mutual TLS (status, directive): ${overTls.passed} passed, ${overTls.failed} failed`,
      );
      for (const r of results.filter((x) => x.status === "failed"))
        console.log(
          `  FAIL ${r.name}: ${r.expected ? `expected ${r.expected}; saw ${r.seen}` : r.error}`,
        );
    } finally {
      pki.remove();
    }

    console.log("\nBroken copies of the reference (each must be caught by at least one case):");
    const concurrency = Number(process.env.EVC_SELF_TEST_CONCURRENCY ?? 3);
    const caught = new Map<string, string[]>();
    const errors: string[] = [];
    const only = process.env.EVC_SELF_TEST_VARIANTS?.split(",").filter(Boolean);
    const queue = MUTANTS.filter((m) => !only || only.includes(m.name));
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        for (let m = queue.shift(); m; m = queue.shift()) {
          const v = m.name;
          let results: CaseResult[];
          try {
            ({ results } = await certify(m, dir));
          } catch (err) {
            // Not a verdict either way: the run fails, the other copies go on.
            const why = err instanceof Error ? err.message.split("\n")[0] : String(err);
            errors.push(v);
            console.log(`  ERROR    ${v}: could not be run: ${why}`);
            continue;
          }
          const by = results.filter((r) => r.status === "failed").map((r) => r.name);
          if (process.env.EVC_SELF_TEST_VERBOSE) {
            for (const r of results.filter((x) => x.status === "failed")) {
              console.log(
                `    ${v}: ${r.name}: ${r.expected ? `expected ${r.expected}; saw ${r.seen}` : r.error}`,
              );
            }
          }
          caught.set(v, by);
          console.log(
            `  ${by.length > 0 ? "caught  " : "MISSED  "} ${v}${by.length > 0 ? ` by ${by.join(", ")}` : ""}`,
          );
        }
      }),
    );
    const score = [...caught.values()].filter((by) => by.length > 0).length;
    console.log(
      `\nmutation score: caught ${score}/${caught.size + errors.length}${errors.length > 0 ? ` (${errors.length} could not be run: ${errors.join(", ")})` : ""}`,
    );
    console.log(`reference: ${ref.passed} passed, ${ref.failed} failed`);
    const tlsOk = overTls.failed === 0 && overTls.passed > 0;
    return ref.failed === 0 &&
      ref.skipped === 0 &&
      errors.length === 0 &&
      score === caught.size &&
      tlsOk &&
      protocolsOk
      ? 0
      : 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
