import { parseArgs } from "node:util";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { OnboardingService } from "@evc-interop/gen/evc/national/v1/onboarding_service_pb";
import {
  bearer,
  ConfigError,
  loadCredential,
  openDb,
  TokenSigner,
  transportTls,
} from "@evc-interop/runtime";
import { provinceCodesFromEnv, provinceConfigFromEnv } from "./config.js";
import { type OnboardProgress, onboard } from "./onboard.js";
import { migrate } from "./store/schema.js";

export const ONBOARD_USAGE = `usage: evc-province onboard [--batch N] [--concurrency N] [--conflicts]
Loads the records this province held before the national hub existed (records with
onboarding = 'pending' in its schema) into the hub, with a progress bar, rate and ETA.
Safe to stop (Ctrl-C) and run again: it goes on where it stopped, and nothing is loaded twice.
A person the hub holds already is a conflict, kept for review and never assigned.
  --batch N        records per request, 1..1000 (default 1000)
  --concurrency N  requests in flight (default 2)
  --conflicts      list the conflicts found so far (JSON lines) and exit
Environment: as evc-province (EVC_PROVINCE_CODE, DATABASE_URL, EVC_PROVINCE_SCHEMA_PREFIX,
EVC_HUB_URL, EVC_CREDENTIALS_DIR, EVC_TLS_CA/EVC_TLS_CLIENT_CERT/EVC_TLS_CLIENT_KEY for TLS).`;

/** "12,345" */
const n = (x: number) => x.toLocaleString("en-US");

function duration(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${Math.round(s % 60)}s` : `${Math.round(s)}s`;
}

/** One line of progress: bar, counts, rate and ETA. */
export function progressLine(p: Readonly<OnboardProgress>, elapsedS: number): string {
  const done = p.onboarded + p.already + p.conflicts + p.invalid + p.skipped;
  const share = p.total > 0 ? Math.min(done / p.total, 1) : 1;
  const width = 30;
  const bar = "#".repeat(Math.round(share * width)).padEnd(width, "-");
  const rate = elapsedS > 0 ? done / elapsedS : 0;
  const eta = rate > 0 ? (p.total - done) / rate : Number.POSITIVE_INFINITY;
  return `[${bar}] ${Math.floor(share * 100)}% ${n(done)}/${n(p.total)} ${n(Math.round(rate))}/s ETA ${duration(eta)} (conflicts ${n(p.conflicts)}, invalid ${n(p.invalid)})`;
}

function args(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      options: {
        batch: { type: "string", default: "1000" },
        concurrency: { type: "string", default: "2" },
        conflicts: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    throw new ConfigError(`${err instanceof Error ? err.message : String(err)}\n${ONBOARD_USAGE}`);
  }
}

/** `evc-province onboard`: returns the exit code. */
export async function runOnboard(argv: string[]): Promise<number> {
  const { values } = args(argv);
  if (values.help) {
    console.log(ONBOARD_USAGE);
    return 0;
  }
  const batch = Number(values.batch);
  const concurrency = Number(values.concurrency);
  if (!Number.isInteger(batch) || batch < 1 || batch > 1000)
    throw new ConfigError(`--batch must be 1..1000, got "${values.batch}"`);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 16)
    throw new ConfigError(`--concurrency must be 1..16, got "${values.concurrency}"`);
  const codes = provinceCodesFromEnv();
  if (codes.length !== 1)
    throw new ConfigError("onboard one province at a time: set EVC_PROVINCE_CODE to one code");
  const config = provinceConfigFromEnv(codes[0] as string);
  const sql = openDb({
    url: config.databaseUrl,
    schema: config.schema,
    max: concurrency + 2,
    applicationName: `evc-province-onboard-${config.code}`,
  });
  try {
    await migrate(sql, config.schema);
    if (values.conflicts) {
      const rows =
        await sql`SELECT record_id, conflict, holder_province, holder_record_id, detail, at
        FROM onboarding_conflicts ORDER BY at, record_id`;
      for (const r of rows) console.log(JSON.stringify(r));
      return 0;
    }
    const credential = await loadCredential(config.credentialsDir, `province:${config.code}`).catch(
      (err: unknown) => {
        throw new ConfigError(
          `cannot read the province's credential in ${config.credentialsDir} (EVC_CREDENTIALS_DIR): ${err instanceof Error ? err.message : String(err)}`,
        );
      },
    );
    const signer = new TokenSigner(credential);
    const hub = createClient(
      OnboardingService,
      createConnectTransport({
        baseUrl: config.hubUrl,
        httpVersion: "2",
        interceptors: [bearer(() => signer.token())],
        useBinaryFormat: true,
        nodeOptions: transportTls(config.hubTls),
      }),
    );
    const stop = new AbortController();
    const interrupt = () => {
      if (stop.signal.aborted) process.exit(130);
      console.error("\nstopping after the batches in flight (Ctrl-C again to quit at once)");
      stop.abort();
    };
    process.on("SIGINT", interrupt);
    const started = performance.now();
    const tty = process.stderr.isTTY;
    let lastLine = 0;
    const show = (p: Readonly<OnboardProgress>, final = false) => {
      const now = performance.now();
      if (!final && !tty && now - lastLine < 5000) return;
      lastLine = now;
      const line = progressLine(p, (now - started) / 1000);
      process.stderr.write(tty ? `\r${line}${final ? "\n" : ""}` : `${line}\n`);
    };
    let result: OnboardProgress;
    try {
      result = await onboard(sql, hub, {
        batch,
        concurrency,
        onProgress: (p) => show(p),
        signal: stop.signal,
      });
    } catch (err) {
      if (!(err instanceof ConnectError)) throw err;
      // The hub down, a credential refused: one line, and what was loaded stays loaded.
      console.error(
        `\nevc-province onboard: the hub at ${config.hubUrl} answered ${Code[err.code]}: ${err.rawMessage}; what was loaded stays loaded: run again to go on`,
      );
      return 1;
    } finally {
      process.off("SIGINT", interrupt);
    }
    show(result, true);
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `${config.code}: ${n(result.onboarded)} onboarded, ${n(result.already)} already at the hub, ${n(result.conflicts)} conflicts, ${n(result.invalid)} refused as malformed, ${n(result.skipped)} not sendable (not ACTIVE or no NORMAL certificate) in ${seconds.toFixed(1)} s${stop.signal.aborted ? " (stopped: run again to go on)" : ""}`,
    );
    if (result.conflicts + result.invalid > 0)
      console.log(
        "conflicts are kept for review: evc-province onboard --conflicts (or the table onboarding_conflicts)",
      );
    return 0;
  } finally {
    await sql.end({ timeout: 5 });
  }
}
