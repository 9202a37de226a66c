import {
  envInt,
  hostPort,
  type NatsTls,
  natsTlsFromEnv,
  nkeySeedFromEnv,
  oneOf,
  optional,
  type ServerTls,
  serverTlsFromEnv,
} from "@evc-interop/runtime";

/** Hub configuration, read from the environment (every variable is documented in national/README.md). */
export interface HubConfig {
  databaseUrl: string;
  schema: string;
  dbPoolSize: number;
  natsUrl: string;
  /** NATS user and password (empty: none). */
  natsUser: string;
  natsPassword: string;
  /** NKey seed of the hub's NATS user (EVC_NATS_NKEY_SEED names its file); preferred. */
  natsNkeySeed: string;
  /** Connect to NATS with no credential (EVC_NATS_ANONYMOUS=1; a private test bus only). */
  natsAnonymous: boolean;
  host: string;
  port: number;
  /** HTTPS (and mutual TLS with a client CA); absent: cleartext HTTP/1.1 and h2c. */
  tls?: ServerTls;
  /** NATS over TLS (CA file, client certificate). */
  natsTls?: NatsTls;
  trustFile: string;
  /** How often the trust file is checked for changes (0: never); SIGHUP also reloads it. */
  trustReloadMs: number;
  /** The hub's directive signing key (Ed25519 private JWK). */
  directiveSigningKeyFile: string;
  personKeySecret: string;
  stream: string;
  subjectPrefix: string;
  duplicateWindowMs: number;
  /** Replicas of the directive stream (EVC_STREAM_REPLICAS; 3 on a three-node NATS cluster). */
  streamReplicas: number;
  suspendDeadlineMs: number;
  activateDeadlineMs: number;
  compensateDeadlineMs: number;
  /** Re-drives of an unanswered compensation revoke before NEEDS_OPERATOR. */
  compensateRounds: number;
  redeliverAfterMs: number;
  redeliverMaxMs: number;
  maxPublishes: number;
  /** ack_wait of the provinces' durable consumers: redelivery after a province died unacked. */
  consumerAckWaitMs: number;
  /** Worker tick when no notification arrives. */
  pollMs: number;
  /** Commands group-committed in one transaction at most (1: one transaction each). */
  maxBatch: number;
  shutdownGraceMs: number;
  /**
   * A snapshot stream whose reader leaves a page untaken this long is ended: its REPEATABLE
   * READ transaction would otherwise hold back the xmin horizon (and the sealer behind it).
   */
  snapshotStallMs: number;
  /** Largest request message accepted, checked while reading and decompressing (before auth). */
  readMaxBytes: number;
  /** `all` (default: RPCs and background workers) or `api` (RPCs only; another replica relays). */
  role: "all" | "api";
  /**
   * The pinned chain sequence the operator accepts to lose (EVC_ACCEPT_RESTORED_CHAIN): a hub
   * whose database is behind the pin starts anyway, and pins its own head. Only the sequence the
   * fence names works, so a value left set cannot accept a later restore.
   */
  acceptRestoredChain?: number;
}

export const DEV_PERSON_KEY_SECRET = "evc-dev-person-key-secret-change-me";

export function hubConfigFromEnv(env: NodeJS.ProcessEnv = process.env): HubConfig {
  const listen = hostPort(env.EVC_HUB_LISTEN ?? "127.0.0.1:8080", "EVC_HUB_LISTEN");
  const credentialsDir = env.EVC_CREDENTIALS_DIR ?? ".data/credentials";
  return {
    databaseUrl: env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres",
    schema: env.EVC_HUB_SCHEMA ?? "evc_hub",
    dbPoolSize: envInt(env, "EVC_DB_POOL", 10),
    natsUrl: env.NATS_URL ?? "nats://127.0.0.1:4222",
    natsUser: env.EVC_NATS_USER ?? "",
    natsPassword: env.EVC_NATS_PASSWORD ?? "",
    natsNkeySeed: nkeySeedFromEnv(env),
    natsAnonymous: env.EVC_NATS_ANONYMOUS === "1",
    host: listen.host,
    port: listen.port,
    ...optional("tls", serverTlsFromEnv(env)),
    ...optional("natsTls", natsTlsFromEnv(env)),
    trustFile: env.EVC_TRUST_FILE ?? `${credentialsDir}/trust.json`,
    trustReloadMs: envInt(env, "EVC_TRUST_RELOAD_MS", 10_000),
    directiveSigningKeyFile:
      env.EVC_DIRECTIVE_SIGNING_KEY ?? `${credentialsDir}/hub-directive-signing.jwk`,
    personKeySecret: env.EVC_PERSON_KEY_SECRET ?? DEV_PERSON_KEY_SECRET,
    stream: env.EVC_STREAM ?? "EVC_DIRECTIVES",
    subjectPrefix: env.EVC_SUBJECT_PREFIX ?? "evc.directives",
    duplicateWindowMs: envInt(env, "EVC_DUPLICATE_WINDOW_MS", 120_000),
    streamReplicas: envInt(env, "EVC_STREAM_REPLICAS", 1),
    suspendDeadlineMs: envInt(env, "EVC_SUSPEND_DEADLINE_MS", 60_000),
    activateDeadlineMs: envInt(env, "EVC_ACTIVATE_DEADLINE_MS", 60_000),
    compensateDeadlineMs: envInt(env, "EVC_COMPENSATE_DEADLINE_MS", 300_000),
    compensateRounds: envInt(env, "EVC_COMPENSATE_ROUNDS", 3),
    redeliverAfterMs: envInt(env, "EVC_REDELIVER_AFTER_MS", 30_000),
    redeliverMaxMs: envInt(env, "EVC_REDELIVER_MAX_MS", 600_000),
    maxPublishes: envInt(env, "EVC_MAX_PUBLISHES", 10),
    consumerAckWaitMs: envInt(env, "EVC_CONSUMER_ACK_WAIT_MS", 30_000),
    pollMs: envInt(env, "EVC_POLL_MS", 250),
    maxBatch: envInt(env, "EVC_MAX_BATCH", 64),
    shutdownGraceMs: envInt(env, "EVC_SHUTDOWN_GRACE_MS", 10_000),
    snapshotStallMs: envInt(env, "EVC_SNAPSHOT_STALL_MS", 60_000),
    readMaxBytes: envInt(env, "EVC_READ_MAX_BYTES", 16 * 1024 * 1024),
    role: oneOf(env, "EVC_ROLE", ["all", "api"] as const, "all"),
    ...optional(
      "acceptRestoredChain",
      env.EVC_ACCEPT_RESTORED_CHAIN === undefined
        ? undefined
        : envInt(env, "EVC_ACCEPT_RESTORED_CHAIN", 0),
    ),
  };
}
