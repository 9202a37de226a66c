#!/usr/bin/env node
// The hub release, as an operator gets it (#18 part 5): `npm run release`, the tarball unpacked
// into an empty folder outside the workspace, and from there, with only Node.js and the
// release's own files: development credentials (bin/evc-credentials), the schema
// (bin/evc-hub migrate), the hub served (bin/evc-hub serve, a clean environment: no
// NODE_PATH, nothing of the workspace). Two reference provinces (the workspace's build) play
// the demo's first scenario against it — a child registered in Beijing migrates to Guangdong —
// and the released bin/evc-operator must list the migration COMPLETED; bin/evc-hub verify-log
// must find the chain intact. The bus is what the release's compose.yaml runs: three
// nats-servers from its nats-server.conf (the route password, the NKey users the release's
// bin/evc-credentials wrote), the directive stream on all three (EVC_STREAM_REPLICAS=3), every
// node in NATS_URL. Exit 0 only if all holds. Needs the workspace built, PostgreSQL as the tests
// do, and nats-server on the PATH.
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const DATABASE_URL =
  process.env.EVC_TEST_DATABASE_URL ??
  process.env.DATABASE_URL ??
  "postgres://postgres@127.0.0.1:5432/test";
const { createClient } = await import("@connectrpc/connect");
const { createConnectTransport } = await import("@connectrpc/connect-node");
const { ControlService } = await import("@evc-interop/gen/evc/conformance/v1/control_service_pb");
const { bearer, syntheticIdentity } = await import(join(root, "runtime", "dist", "index.js"));
const { connect, nkeyAuthenticator } = await import("@nats-io/transport-node");
const { jetstreamManager } = await import("@nats-io/jetstream");

const freePort = () =>
  new Promise((res) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
/** n free ports, all different (each listener gets its own). */
async function freePorts(n) {
  const ports = new Set();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}
/**
 * Polls f (each attempt given 10 s at most: a call that never answers is a failed attempt) until
 * it returns something, ms pass, or dead() says waiting longer is pointless.
 */
const until = async (what, f, ms = 30_000, dead = () => undefined) => {
  const end = Date.now() + ms;
  for (;;) {
    let timer;
    const v = await Promise.race([
      f().catch(() => undefined),
      new Promise((r) => {
        timer = setTimeout(r, 10_000);
      }),
    ]);
    clearTimeout(timer);
    if (v) return v;
    const why = dead();
    if (why) throw new Error(`release check: ${what}: ${why}`);
    if (Date.now() > end) throw new Error(`release check: ${what} not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
};

const run = `rel_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
const work = mkdtempSync(join(tmpdir(), "evc-release-check-"));
const children = [];
let failed = false;
/** The NATS nodes, each with its log file: on a failure, the end of each log is printed. */
let natsNodes = [];
try {
  execFileSync("node", ["scripts/release.mjs"], {
    cwd: root,
    stdio: ["ignore", "inherit", "inherit"],
  });
  const { version } = await import(join(root, "national", "package.json"), {
    with: { type: "json" },
  }).then((m) => m.default);
  const tarball = join(root, "release", `evc-hub-${version}.tar.gz`);
  execFileSync("tar", ["-xzf", tarball, "-C", work]);
  const release = join(work, `evc-hub-${version}`);
  const bin = (b) => join(release, "bin", b);
  const creds = join(work, "credentials");
  // Nothing of the workspace: a clean environment, the release's own folder.
  const clean = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: work };
  const inRelease = (b, args, env = {}) =>
    execFileSync(bin(b), args, { cwd: work, env: { ...clean, ...env }, encoding: "utf8" });
  inRelease("evc-credentials", [creds]);

  // The release's three-node NATS cluster, as compose.yaml runs it (here on free ports, each
  // node's store in the work folder).
  // As the release's README makes it: letters first (nats-server.conf says why; a bare hex
  // password such as 4e5f… stopped every node at start, about one check in eight).
  const routePassword = `evc${randomBytes(12).toString("hex")}`;
  const nodes = [];
  // Every listener of the check gets a port of its own: three per node, the hub, two per province.
  const ports = await freePorts(14);
  const port = () => ports.pop();
  for (let i = 0; i < 3; i++) nodes.push({ client: port(), route: port(), http: port() });
  const routes = nodes.map((n) => `nats://route:${routePassword}@127.0.0.1:${n.route}`).join(",");
  const natsConf = readFileSync(join(release, "nats-server.conf"), "utf8");
  for (const [i, n] of nodes.entries()) {
    const dir = join(work, `nats-${i + 1}`);
    mkdirSync(dir);
    writeFileSync(
      join(dir, "nats-server.conf"),
      natsConf.replace("store_dir: /data", `store_dir: ${join(dir, "data")}`),
    );
    writeFileSync(
      join(dir, "nats-accounts.conf"),
      readFileSync(join(creds, "nats-accounts.conf"), "utf8"),
    );
    n.log = join(work, `nats-${i + 1}.log`);
    const node = spawn(
      "nats-server",
      ["-c", join(dir, "nats-server.conf"), "-n", `nats-${i + 1}`, "-a", "127.0.0.1"]
        .concat(["-p", `${n.client}`, "-m", `${n.http}`, "--routes", routes])
        .concat(["--cluster", `nats://127.0.0.1:${n.route}`, "-l", n.log]),
      {
        env: { ...clean, NATS_ROUTE_PASSWORD: routePassword },
        stdio: ["ignore", "ignore", openSync(`${n.log}.stderr`, "w")],
      },
    );
    node.once("exit", (code, signal) => {
      n.exited = `exited (${signal ?? code})`;
    });
    children.push(node);
  }
  natsNodes = nodes;
  const natsStarted = Date.now();
  const NATS_URL = nodes.map((n) => `nats://127.0.0.1:${n.client}`).join(",");
  await until(
    "the NATS cluster formed (a JetStream meta leader)",
    async () => {
      const jsz = await (await fetch(`http://127.0.0.1:${nodes[0].http}/jsz`)).json();
      return jsz.meta_cluster?.leader && jsz.meta_cluster.cluster_size === 3;
    },
    60_000,
    () => nodes.map((n, i) => n.exited && `nats-${i + 1} ${n.exited}`).find(Boolean),
  );
  console.log(`release check: cluster formed in ${Date.now() - natsStarted} ms`);
  console.log("release check: three nats-servers from the release's nats-server.conf, clustered");

  const hubPort = port();
  const hubUrl = `http://127.0.0.1:${hubPort}`;
  const hubEnv = {
    DATABASE_URL,
    EVC_HUB_SCHEMA: `${run}_hub`,
    EVC_HUB_LISTEN: `127.0.0.1:${hubPort}`,
    NATS_URL,
    EVC_NATS_NKEY_SEED: join(creds, "nats-hub.nk"),
    EVC_STREAM_REPLICAS: "3",
    EVC_CREDENTIALS_DIR: creds,
    EVC_PERSON_KEY_SECRET: randomBytes(32).toString("hex"),
    EVC_LOG_LEVEL: "warn",
  };
  console.log(inRelease("evc-hub", ["migrate"], hubEnv).trim());
  const hub = spawn(bin("evc-hub"), ["serve"], {
    cwd: work,
    env: { ...clean, ...hubEnv },
    stdio: ["ignore", "ignore", "inherit"],
  });
  children.push(hub);
  await until("the released hub ready", async () => (await fetch(`${hubUrl}/readyz`)).ok);
  console.log(`release check: the released hub serves at ${hubUrl}`);

  const provincePorts = [port(), port()];
  const controlPorts = [port(), port()];
  const controlToken = randomBytes(18).toString("base64url");
  // Each province as its own NKey user on the bus, its consumer provisioned by the hub.
  for (const [i, code] of ["110000", "440000"].entries()) {
    const province = spawn(
      process.execPath,
      [join(root, "province-reference", "dist", "main.js")],
      {
        cwd: root,
        env: {
          ...process.env,
          EVC_PROVINCE_CODES: code,
          EVC_PROVINCE_LISTEN: `127.0.0.1:${provincePorts[i]}`,
          EVC_CONTROL_LISTEN: `127.0.0.1:${controlPorts[i]}`,
          EVC_CONTROL_TOKEN: controlToken,
          DATABASE_URL,
          EVC_PROVINCE_SCHEMA_PREFIX: `${run}_p`,
          NATS_URL,
          EVC_NATS_NKEY_SEED: join(creds, `nats-province-${code}.nk`),
          EVC_PROVISION_CONSUMER: "0",
          EVC_HUB_URL: hubUrl,
          EVC_CREDENTIALS_DIR: creds,
          EVC_LOG_LEVEL: "warn",
        },
        stdio: ["ignore", "ignore", "inherit"],
      },
    );
    children.push(province);
  }
  const control = (i) =>
    createClient(
      ControlService,
      createConnectTransport({
        baseUrl: `http://127.0.0.1:${controlPorts[i]}`,
        httpVersion: "2",
        defaultTimeoutMs: 10_000,
        interceptors: [bearer(controlToken)],
      }),
    );
  const [beijing, guangdong] = [control(0), control(1)];
  await until(
    "the provinces ready",
    async () =>
      (await beijing.getFeatures({})).provinceCode &&
      (await guangdong.getFeatures({})).provinceCode,
  );
  // Scenario 1 of the demo: registered in Beijing, the child moves to Guangdong.
  const identity = syntheticIdentity("Release Check Child");
  await beijing.registerRecord({ identity });
  const { migrationId } = await guangdong.migrateIn({ identity });
  const operator = ["--hub", hubUrl, "--key", join(creds, "operator-ops.jwk")];
  const line = await until(
    "the migration COMPLETED, as the released evc-operator lists it",
    async () =>
      inRelease("evc-operator", ["migrations", "--state", "completed", ...operator])
        .split("\n")
        .find((l) => l.startsWith(`${migrationId}\t`)),
  );
  console.log(`release check: ${line}`);
  const nc = await connect({
    servers: NATS_URL.split(","),
    authenticator: nkeyAuthenticator(
      new TextEncoder().encode(readFileSync(join(creds, "nats-hub.nk"), "utf8").trim()),
    ),
  });
  try {
    const info = await (await jetstreamManager(nc)).streams.info("EVC_DIRECTIVES");
    const replicas = 1 + (info.cluster?.replicas?.length ?? 0);
    if (info.config.num_replicas !== 3 || replicas !== 3)
      throw new Error(`the directive stream has ${replicas} replicas, not 3`);
  } finally {
    await nc.close();
  }
  console.log("release check: the directive stream is replicated on the three nodes");
  // The console ships built: the page, its script, and a token for it from the released CLI.
  for (const file of ["", "console.js", "console.css"]) {
    const res = await fetch(`${hubUrl}/console/${file}`);
    if (res.status !== 200) throw new Error(`/console/${file}: ${res.status} ${await res.text()}`);
  }
  const token = inRelease("evc-operator", ["token", ...operator]).trim();
  if (token.split(".").length !== 3) throw new Error(`evc-operator token printed: ${token}`);
  console.log("release check: /console served, evc-operator token prints a token for it");
  // Exit 0: the chain is intact (execFileSync throws otherwise); its log line says how much.
  const verified = inRelease("evc-hub", ["verify-log"], { ...hubEnv, EVC_LOG_LEVEL: "info" });
  const r = JSON.parse(verified.trim().split("\n").at(-1) ?? "{}");
  if (!r.ok || !(r.eventsVerified > 0)) throw new Error(`verify-log: ${verified}`);
  console.log(`release check: verify-log: ${r.eventsVerified} events, chain intact`);
  console.log("release check: the release runs from an empty folder and serves the demo's flow");
} catch (err) {
  failed = true;
  console.error(err instanceof Error ? err.message : String(err));
  for (const [i, n] of natsNodes.entries()) {
    const read = (f) => (existsSync(f) ? readFileSync(f, "utf8") : "");
    const lines = `${read(`${n.log}.stderr`)}${read(n.log)}`.trimEnd().split("\n");
    console.error(`--- nats-${i + 1} ${n.exited ?? "running"}, its log's last lines:`);
    console.error(lines.slice(-25).join("\n"));
  }
} finally {
  for (const c of children.reverse()) {
    c.kill("SIGTERM");
    await new Promise((r) => (c.exitCode !== null || c.signalCode ? r() : c.once("exit", r)));
  }
  const drop = (schema) =>
    execFileSync("psql", [DATABASE_URL, "-qc", `DROP SCHEMA IF EXISTS "${schema}" CASCADE`], {
      stdio: "ignore",
    });
  for (const s of [`${run}_hub`, `${run}_p110000`, `${run}_p440000`]) {
    try {
      drop(s);
    } catch {
      // best effort
    }
  }
  rmSync(work, { recursive: true, force: true });
  process.exitCode = failed ? 1 : 0;
}
