import {
  type ClientTls,
  ConfigError,
  clientTlsFromEnv,
  envInt,
  type NatsTls,
  natsTlsFromEnv,
  nkeySeedFromEnv,
  optional,
  type ServerTls,
  serverTlsFromEnv,
} from "@evc-interop/runtime";

/** Configuration of one reference province (see province-reference/README.md). */
export interface ProvinceConfig {
  code: string;
  databaseUrl: string;
  schema: string;
  natsUrl: string;
  /** NATS user and password of this province (empty: none). */
  natsUser: string;
  natsPassword: string;
  /** NKey seed of this province's NATS user (EVC_NATS_NKEY_SEED names its file); preferred. */
  natsNkeySeed: string;
  /** Connect to NATS with no credential (EVC_NATS_ANONYMOUS=1; a private test bus only). */
  natsAnonymous: boolean;
  stream: string;
  subjectPrefix: string;
  hubUrl: string;
  credentialsDir: string;
  host: string;
  port: number;
  /** HTTPS on the province port (mutual TLS with a client CA); absent: cleartext. */
  tls?: ServerTls;
  /** How to verify the hub (CA) and, for a hub that wants mutual TLS, this province's certificate. */
  hubTls: ClientTls;
  /** NATS over TLS. */
  natsTls?: NatsTls;
  reconcileIntervalMs: number;
  reconcileChunk: number;
  /** Missing and differing certificates repaired per transaction by reconciliation. */
  reconcileRepairBatch: number;
  extraGraceMs: number;
  concurrency: number;
  /** Directives applied in one transaction at most (1: one transaction each). */
  maxBatch: number;
  /** PostgreSQL connections of this province's pool (one more listens for changes). */
  dbPoolSize: number;
  provisionConsumer: boolean;
  /**
   * The conformance kit's control API (evc.conformance.v1.ControlService) is served only when
   * this is set, only to `Authorization: Bearer <token>`, and only on its own port.
   */
  controlToken: string;
  controlHost: string;
  controlPort: number;
  receiptPollMs: number;
  /** Retry tick of pending hub intents (registrations, closures, dose reports). */
  intentPollMs: number;
  /** A directive parked for a missing predecessor this long is dead-lettered as poison. */
  gapHoldMs: number;
  /**
   * A record whose directive is still parked this long is resynced from the hub's snapshot
   * (certificates, contents, directive sequence): what closes a gap left by a restored backup.
   */
  gapResyncMs: number;
  /** The hub's directive keys (a JWKS): only directives signed by one of them are applied. */
  directiveKeysFile: string;
  /**
   * The keys of the reader token issuers this province trusts (a JWKS file): clinics, holder
   * apps and auditors present tokens they sign. Absent: reads by identity and of full records
   * are refused; reads by certificate number stay open.
   */
  readerKeysFile: string;
  /** Reads of person-level data a minute per caller (0: no limit). */
  readerRatePerMinute: number;
  /** Largest request accepted on the province port (checked before decompression ends). */
  readMaxBytes: number;
  shutdownGraceMs: number;
}

/** Province codes to run: EVC_PROVINCE_CODES (comma-separated) or EVC_PROVINCE_CODE. */
export function provinceCodesFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  const raw = env.EVC_PROVINCE_CODES ?? env.EVC_PROVINCE_CODE ?? "";
  const codes = raw
    .split(",")
    .map((c) => c.trim())
    .filter(Boolean);
  if (codes.length === 0)
    throw new ConfigError("set EVC_PROVINCE_CODE (e.g. 110000) or EVC_PROVINCE_CODES");
  for (const c of codes)
    if (!/^[1-8][0-9]0000$/.test(c))
      throw new ConfigError(`"${c}" is not a GB/T 2260 province code`);
  return codes;
}

/** Config of the i-th province of this process (ports count up from EVC_PROVINCE_LISTEN). */
export function provinceConfigFromEnv(
  code: string,
  index = 0,
  env: NodeJS.ProcessEnv = process.env,
): ProvinceConfig {
  const listen = env.EVC_PROVINCE_LISTEN ?? "127.0.0.1:8081";
  const m = /^(.*):(\d+)$/.exec(listen);
  if (!m?.[1] || !m[2])
    throw new ConfigError(`EVC_PROVINCE_LISTEN must be host:port, got "${listen}"`);
  const basePort = Number(m[2]);
  const control = /^(.*):(\d+)$/.exec(env.EVC_CONTROL_LISTEN ?? "");
  if (env.EVC_CONTROL_LISTEN && (!control?.[1] || !control[2]))
    throw new ConfigError(`EVC_CONTROL_LISTEN must be host:port, got "${env.EVC_CONTROL_LISTEN}"`);
  const controlBase = control?.[2] ? Number(control[2]) : basePort === 0 ? 0 : basePort + 1000;
  return {
    code,
    databaseUrl: env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres",
    schema: `${env.EVC_PROVINCE_SCHEMA_PREFIX ?? "evc_province_"}${code}`,
    natsUrl: env.NATS_URL ?? "nats://127.0.0.1:4222",
    natsUser: env.EVC_NATS_USER ?? "",
    natsPassword: env.EVC_NATS_PASSWORD ?? "",
    natsNkeySeed: nkeySeedFromEnv(env),
    natsAnonymous: env.EVC_NATS_ANONYMOUS === "1",
    stream: env.EVC_STREAM ?? "EVC_DIRECTIVES",
    subjectPrefix: env.EVC_SUBJECT_PREFIX ?? "evc.directives",
    hubUrl: env.EVC_HUB_URL ?? "http://127.0.0.1:8080",
    credentialsDir: env.EVC_CREDENTIALS_DIR ?? ".data/credentials",
    host: m[1],
    port: basePort === 0 ? 0 : basePort + index,
    ...optional("tls", serverTlsFromEnv(env)),
    hubTls: clientTlsFromEnv(env),
    ...optional("natsTls", natsTlsFromEnv(env)),
    reconcileIntervalMs: envInt(env, "EVC_RECONCILE_INTERVAL_MS", 300_000),
    reconcileChunk: envInt(env, "EVC_RECONCILE_CHUNK", 5000),
    reconcileRepairBatch: envInt(env, "EVC_RECONCILE_REPAIR_BATCH", 500),
    extraGraceMs: envInt(env, "EVC_RECONCILE_EXTRA_GRACE_MS", 30_000),
    concurrency: envInt(env, "EVC_AGENT_CONCURRENCY", 16),
    maxBatch: envInt(env, "EVC_MAX_BATCH", 64),
    dbPoolSize: envInt(env, "EVC_DB_POOL", 10),
    provisionConsumer: (env.EVC_PROVISION_CONSUMER ?? "1") !== "0",
    controlToken: env.EVC_CONTROL_TOKEN ?? "",
    controlHost: control?.[1] ?? m[1],
    controlPort: controlBase === 0 ? 0 : controlBase + index,
    receiptPollMs: envInt(env, "EVC_RECEIPT_POLL_MS", 1000),
    intentPollMs: envInt(env, "EVC_INTENT_POLL_MS", 2000),
    gapHoldMs: envInt(env, "EVC_GAP_HOLD_MS", 120_000),
    gapResyncMs: envInt(env, "EVC_GAP_RESYNC_MS", 5000),
    readMaxBytes: envInt(env, "EVC_READ_MAX_BYTES", 4 * 1024 * 1024),
    directiveKeysFile:
      env.EVC_DIRECTIVE_KEYS ??
      `${env.EVC_CREDENTIALS_DIR ?? ".data/credentials"}/hub-directive-keys.json`,
    readerKeysFile:
      env.EVC_READER_KEYS ?? `${env.EVC_CREDENTIALS_DIR ?? ".data/credentials"}/reader-keys.json`,
    readerRatePerMinute: envInt(env, "EVC_READER_RATE_PER_MINUTE", 600),
    shutdownGraceMs: envInt(env, "EVC_SHUTDOWN_GRACE_MS", 10_000),
  };
}
