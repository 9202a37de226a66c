import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { BusUser } from "@evc-interop/runtime";
import { bearer, createDevCredentials, freePort } from "@evc-interop/runtime";
import postgres, { type Sql } from "postgres";
import { Supervised } from "./process.js";

/** The repository root: the hub and province programs are run from their built `dist/`. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

export interface ClusterOptions {
  /** Working directory: credentials, the nats-server store, every process's log. */
  dir: string;
  /** PostgreSQL server to create the drill's own database on. */
  adminUrl: string;
  provinces: string[];
  /** Hub settings over the drills' own (HUB_TUNING), e.g. longer deadlines for a test. */
  hubEnv?: Record<string, string>;
}

/** Short deadlines and retries, so a drill's recovery takes seconds, not minutes. */
const HUB_TUNING = {
  EVC_SUSPEND_DEADLINE_MS: "4000",
  EVC_ACTIVATE_DEADLINE_MS: "4000",
  EVC_COMPENSATE_DEADLINE_MS: "6000",
  EVC_REDELIVER_AFTER_MS: "1500",
  EVC_REDELIVER_MAX_MS: "3000",
  EVC_MAX_PUBLISHES: "1000",
  EVC_CONSUMER_ACK_WAIT_MS: "2000",
  EVC_POLL_MS: "100",
  EVC_SHUTDOWN_GRACE_MS: "2000",
};

const PROVINCE_TUNING = {
  EVC_RECONCILE_INTERVAL_MS: "0",
  EVC_RECONCILE_EXTRA_GRACE_MS: "0",
  EVC_RECEIPT_POLL_MS: "200",
  EVC_INTENT_POLL_MS: "300",
  EVC_GAP_RESYNC_MS: "1000",
  EVC_PROVISION_CONSUMER: "0",
  EVC_SHUTDOWN_GRACE_MS: "2000",
};

/**
 * The system under drill: its own database, its own nats-server (JetStream, users limited to
 * their own consumer), the hub and one process per province, each killable and restartable.
 */
export class Cluster {
  readonly nats: Supervised;
  readonly hub: Supervised;
  readonly provinces: Map<string, Supervised>;
  readonly databaseUrl: string;
  private readonly admin: Sql;
  readonly database: string;
  /** The provinces' control API token (the drills drive them through it). */
  readonly controlToken: string;
  private readonly controlPorts: ReadonlyMap<string, number>;

  private constructor(parts: {
    nats: Supervised;
    hub: Supervised;
    provinces: Map<string, Supervised>;
    databaseUrl: string;
    admin: Sql;
    database: string;
    controlToken: string;
    controlPorts: ReadonlyMap<string, number>;
  }) {
    this.nats = parts.nats;
    this.hub = parts.hub;
    this.provinces = parts.provinces;
    this.databaseUrl = parts.databaseUrl;
    this.admin = parts.admin;
    this.database = parts.database;
    this.controlToken = parts.controlToken;
    this.controlPorts = parts.controlPorts;
  }

  static async start(opts: ClusterOptions): Promise<Cluster> {
    mkdirSync(opts.dir, { recursive: true });
    const database = `evc_drill_${process.pid}_${Date.now().toString(36)}`;
    const admin = postgres(opts.adminUrl, { max: 1, onnotice: () => undefined });
    await admin.unsafe(`CREATE DATABASE ${database}`);
    const url = new URL(opts.adminUrl);
    url.pathname = `/${database}`;
    const databaseUrl = url.toString();

    const credentials = join(opts.dir, "credentials");
    await createDevCredentials(credentials);
    const users = JSON.parse(
      readFileSync(join(credentials, "nats-users.json"), "utf8"),
    ) as BusUser[];
    const userOf = (name: string) => {
      const u = users.find((x) => x.user === name);
      if (!u) throw new Error(`no NATS user ${name}`);
      if (!u.seedFile) throw new Error(`NATS user ${name} has no NKey`);
      return { EVC_NATS_NKEY_SEED: u.seedFile };
    };
    const natsPort = await freePort();
    const natsConf = join(opts.dir, "nats.conf");
    writeFileSync(
      natsConf,
      [
        `listen: 127.0.0.1:${natsPort}`,
        `jetstream { store_dir: ${JSON.stringify(join(opts.dir, "nats-store"))} }`,
        // nats-server resolves an include relative to the including file.
        `include ${JSON.stringify("credentials/nats-accounts.conf")}`,
        "",
      ].join("\n"),
    );
    const nats = new Supervised(
      "nats-server",
      "nats-server",
      ["-c", natsConf],
      process.env,
      natsPort,
      join(opts.dir, "nats.log"),
    );
    const common = {
      ...process.env,
      DATABASE_URL: databaseUrl,
      NATS_URL: `nats://127.0.0.1:${natsPort}`,
      EVC_CREDENTIALS_DIR: credentials,
      EVC_LOG_LEVEL: "info",
    };
    const hubPort = await freePort();
    const controlToken = randomBytes(18).toString("base64url");
    const hub = new Supervised(
      "hub",
      process.execPath,
      [join(ROOT, "national/dist/main.js")],
      {
        ...common,
        ...HUB_TUNING,
        ...opts.hubEnv,
        ...userOf("hub"),
        EVC_HUB_LISTEN: `127.0.0.1:${hubPort}`,
      },
      hubPort,
      join(opts.dir, "hub.log"),
    );
    const provinces = new Map<string, Supervised>();
    const controlPorts = new Map<string, number>();
    for (const code of opts.provinces) {
      const port = await freePort();
      const controlPort = await freePort();
      controlPorts.set(code, controlPort);
      provinces.set(
        code,
        new Supervised(
          `province ${code}`,
          process.execPath,
          [join(ROOT, "province-reference/dist/main.js")],
          {
            ...common,
            ...PROVINCE_TUNING,
            ...userOf(`province-${code}`),
            EVC_PROVINCE_CODE: code,
            EVC_CONTROL_TOKEN: controlToken,
            EVC_PROVINCE_LISTEN: `127.0.0.1:${port}`,
            EVC_CONTROL_LISTEN: `127.0.0.1:${controlPort}`,
            EVC_HUB_URL: `http://127.0.0.1:${hubPort}`,
          },
          port,
          join(opts.dir, `province-${code}.log`),
        ),
      );
    }
    const cluster = new Cluster({
      nats,
      hub,
      provinces,
      databaseUrl,
      admin,
      database,
      controlToken,
      controlPorts,
    });
    try {
      await cluster.recover();
    } catch (err) {
      await cluster.stop().catch(() => undefined);
      throw err;
    }
    return cluster;
  }

  get hubUrl(): string {
    return `http://127.0.0.1:${this.hub.port}`;
  }

  /** The province's control API (a port of its own). */
  controlUrl(code: string): string {
    const port = this.controlPorts.get(code);
    if (port === undefined) throw new Error(`no province ${code} in the drill`);
    return `http://127.0.0.1:${port}`;
  }

  provinceUrl(code: string): string {
    const p = this.provinces.get(code);
    if (!p) throw new Error(`no province ${code} in the drill`);
    return `http://127.0.0.1:${p.port}`;
  }

  /** Every process, in start order. */
  get all(): Supervised[] {
    return [this.nats, this.hub, ...this.provinces.values()];
  }

  /** Starts whatever is not running: the bus first, then the hub, then the provinces. */
  async recover(): Promise<void> {
    for (const p of this.all) await p.start();
  }

  /** Stops every process and drops the drill's database (unless it is to be kept, to read). */
  async stop(keepDatabase = false): Promise<void> {
    for (const p of [...this.all].reverse()) await p.stop();
    if (!keepDatabase)
      await this.admin.unsafe(`DROP DATABASE IF EXISTS ${this.database} WITH (FORCE)`);
    await this.admin.end({ timeout: 5 });
  }
}

/** A Connect transport to one of the cluster's provinces carrying the control token. */
export function controlTransport(cluster: Cluster, code: string): Transport {
  return createConnectTransport({
    baseUrl: cluster.controlUrl(code),
    httpVersion: "2",
    interceptors: [bearer(cluster.controlToken)],
  });
}
