import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { loadConfig } from "./config.js";
import { contractSha256, writeContract } from "./contract.js";
import { Kit } from "./kit.js";
import { probeBus } from "./probe.js";
import { counts, humanReport, jsonReport, junitReport, type ReportHeader } from "./report.js";
import { type CaseResult, loadSuites, runSuites } from "./runner.js";
import { startServices } from "./services.js";

const USAGE = `usage: evc-conformance --config FILE [options]
       evc-conformance contract --out DIR

Certifies a province system against the evc-interop contract (evc.*.v1), through the protocol
only. The kit serves the hub API and drives the directive bus itself.

  --config FILE         kit configuration (YAML or JSON; see conformance/README.md)
  --run PATTERN         run only matching cases (repeatable; "directive/*", "status/by-number")
  --skip PATTERN        skip matching cases (repeatable)
  --known-failing FILE  cases (one pattern a line) expected to fail: reported XFAIL; one that
                        passes fails the run
  --known-flaky FILE    cases (one pattern a line) that may fail: a failure is reported FLAKY
  --seed N              seed of the generated histories (default: a new one, printed in the
                        report): the same seed replays the same histories
  --bail                stop at the first failure (the rest listed as skipped; a failing
                        generated history reported as found, not shrunk)
  --trace               show the messages exchanged for every case
  --junit FILE          write a JUnit XML report
  --json FILE           write a JSON report
  --suites DIR          test-case files (default: the kit's own suites/)
  --log FILE            kit hub log (default: evc-conformance.log)
  --help                this text

contract --out DIR      write the contract this kit checks against: DIR/evc.binpb (the image,
                        with every import, for protoc --descriptor_set_in or buf generate) and
                        DIR/proto (the .proto files, with their comments)`;

const here = dirname(fileURLToPath(import.meta.url));
const packageRoot = resolve(here, "..");
const KIT_VERSION = (
  JSON.parse(readFileSync(join(packageRoot, "package.json"), "utf8")) as { version: string }
).version;
export const CONTRACT_VERSION = "evc.*.v1";

/** How a case's end is shown while the run goes on. */
const PROGRESS: Record<CaseResult["status"], string> = {
  passed: "ok   ",
  failed: "FAIL ",
  xfail: "XFAIL",
  flaky: "FLAKY",
  skipped: "skip ",
};

const newSeed = () => Math.floor(Math.random() * 2 ** 31);

/** The kit's own case files (suites/ in its package). */
export const BUNDLED_SUITES = join(packageRoot, "suites");

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: "string" },
      out: { type: "string" },
      run: { type: "string", multiple: true, default: [] },
      skip: { type: "string", multiple: true, default: [] },
      "known-failing": { type: "string" },
      "known-flaky": { type: "string" },
      trace: { type: "boolean", default: false },
      bail: { type: "boolean", default: false },
      seed: { type: "string" },
      junit: { type: "string" },
      json: { type: "string" },
      suites: { type: "string" },
      log: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (positionals[0] === "contract" && positionals.length === 1 && values.out) {
    const { image, protoDir, sha256 } = writeContract(values.out);
    console.log(`contract ${CONTRACT_VERSION} sha256:${sha256}\n${image}\n${protoDir}`);
    return 0;
  }
  if (values.help || !values.config || positionals.length > 0) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  const loaded = loadConfig(values.config);
  const seed = values.seed === undefined ? newSeed() : Number(values.seed);
  if (!Number.isSafeInteger(seed)) throw new Error(`--seed ${values.seed}: not an integer`);
  const patterns = (file: string | undefined) =>
    file
      ? readFileSync(file, "utf8")
          .split("\n")
          .map((l) => l.trim())
          .filter((l) => l && !l.startsWith("#"))
      : [];
  const knownFailing = patterns(values["known-failing"]);
  const knownFlaky = patterns(values["known-flaky"]);
  const suites = loadSuites(values.suites ?? BUNDLED_SUITES);
  const logger = pino(
    { level: "info" },
    pino.destination({ dest: values.log ?? "evc-conformance.log", sync: false }),
  );
  const started = Date.now();
  const services = await startServices(loaded);
  const config = services.config;
  for (const note of services.notes) process.stderr.write(`${note}\n`);
  let kit: Kit;
  try {
    kit = await Kit.start(config, logger, services.provinceEnv);
  } catch (err) {
    await services.stop();
    throw err;
  }
  // Ctrl-C (or a CI's SIGTERM) stops the province the kit started, then the kit.
  const interrupted = () => {
    process.stderr.write("\nevc-conformance: stopping\n");
    void kit
      .stop()
      .catch(() => undefined)
      .then(services.stop)
      .finally(() => process.exit(130));
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  try {
    process.stderr.write(
      `kit hub at ${kit.hub.url}, bus ${config.kit.natsUrl} stream ${config.kit.stream}\n`,
    );
    await kit.startProvince();
    await probeBus(kit, config.province.readyTimeoutMs);
    const features = await kit.control.getFeatures({});
    const results = await runSuites(kit, suites, features.profiles, {
      run: values.run ?? [],
      skip: values.skip ?? [],
      knownFailing,
      knownFlaky,
      trace: values.trace ?? false,
      caseTimeoutMs: config.kit.caseTimeoutMs,
      seed,
      bail: values.bail ?? false,
      onProgress: (done, total, last) => {
        const line = `[${done}/${total}] ${PROGRESS[last.status]} ${last.name}`;
        process.stderr.write(process.stderr.isTTY ? `\r\x1b[K${line}` : `${line}\n`);
      },
    });
    if (process.stderr.isTTY) process.stderr.write("\r\x1b[K");
    const header: ReportHeader = {
      implementationName: features.implementationName,
      implementationVersion: features.implementationVersion,
      provinceCode: features.provinceCode,
      contractVersion: CONTRACT_VERSION,
      kitVersion: KIT_VERSION,
      contractSha256: contractSha256(),
      seed,
      startedAt: new Date(started).toISOString(),
      seconds: (Date.now() - started) / 1000,
    };
    if (values.junit) writeFileSync(values.junit, junitReport(header, results));
    if (values.json) writeFileSync(values.json, jsonReport(header, results));
    console.log(humanReport(header, results));
    return counts(results).failed === 0 ? 0 : 1;
  } finally {
    process.off("SIGINT", interrupted);
    process.off("SIGTERM", interrupted);
    try {
      await kit.stop();
    } finally {
      // The nats-server and PostgreSQL the kit started, whatever happened to the rest.
      await services.stop();
      logger.flush();
    }
  }
}

/** Runs the CLI with the process's arguments and sets the exit code (the bin's entry point). */
export function run(): void {
  // Whatever a vendor's system left open (a half-closed connection, a stuck stream), the kit
  // exits shortly after it has said its result.
  const exit = (code: number) => {
    process.exitCode = code;
    setTimeout(() => process.exit(code), 2000).unref();
  };
  main(process.argv.slice(2)).then(exit, (err: unknown) => {
    console.error(`evc-conformance: ${err instanceof Error ? err.message : String(err)}`);
    exit(2);
  });
}
