#!/usr/bin/env node
// The hub release, as an operator gets it (#18 part 5): `npm run release`, the tarball unpacked
// into an empty folder outside the workspace, and from there, with only Node.js and the
// release's own files: development credentials (bin/evc-credentials), the schema
// (bin/evc-hub migrate), the hub served (bin/evc-hub serve, a clean environment: no
// NODE_PATH, nothing of the workspace). Two reference provinces (the workspace's build) play
// the demo's first scenario against it — a child registered in Beijing migrates to Guangdong —
// and the released bin/evc-operator must list the migration COMPLETED; bin/evc-hub verify-log
// must find the chain intact. Exit 0 only if all holds. Needs the workspace built, PostgreSQL
// and NATS as the tests do.
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const DATABASE_URL =
  process.env.EVC_TEST_DATABASE_URL ??
  process.env.DATABASE_URL ??
  "postgres://postgres@127.0.0.1:5432/test";
const NATS_URL = process.env.EVC_TEST_NATS_URL ?? process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const { createClient } = await import("@connectrpc/connect");
const { createConnectTransport } = await import("@connectrpc/connect-node");
const { ControlService } = await import("@evc-interop/gen/evc/conformance/v1/control_service_pb");
const { bearer, syntheticIdentity } = await import(join(root, "runtime", "dist", "index.js"));

const freePort = () =>
  new Promise((res) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
const isFree = (port) =>
  new Promise((res) => {
    const s = createServer();
    s.once("error", () => res(false));
    s.listen(port, "127.0.0.1", () => s.close(() => res(true)));
  });
/** Two consecutive free ports (the reference provinces listen on base + index). */
async function portPair() {
  for (;;) {
    const p = await freePort();
    if (p < 65535 && (await isFree(p + 1))) return p;
  }
}
const until = async (what, f, ms = 30_000) => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v) return v;
    if (Date.now() > end) throw new Error(`release check: ${what} not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
};

const run = `rel_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
const work = mkdtempSync(join(tmpdir(), "evc-release-check-"));
const children = [];
let failed = false;
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

  const hubPort = await freePort();
  const hubUrl = `http://127.0.0.1:${hubPort}`;
  const hubEnv = {
    DATABASE_URL,
    EVC_HUB_SCHEMA: `${run}_hub`,
    EVC_HUB_LISTEN: `127.0.0.1:${hubPort}`,
    NATS_URL,
    EVC_NATS_ANONYMOUS: "1",
    EVC_STREAM: run.toUpperCase(),
    EVC_SUBJECT_PREFIX: `evc.${run}`,
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

  const [provincePort, controlPort] = [await portPair(), await portPair()];
  const controlToken = randomBytes(18).toString("base64url");
  const provinces = spawn(process.execPath, [join(root, "province-reference", "dist", "main.js")], {
    cwd: root,
    env: {
      ...process.env,
      EVC_PROVINCE_CODES: "110000,440000",
      EVC_PROVINCE_LISTEN: `127.0.0.1:${provincePort}`,
      EVC_CONTROL_LISTEN: `127.0.0.1:${controlPort}`,
      EVC_CONTROL_TOKEN: controlToken,
      DATABASE_URL,
      EVC_PROVINCE_SCHEMA_PREFIX: `${run}_p`,
      NATS_URL,
      EVC_NATS_ANONYMOUS: "1",
      EVC_STREAM: hubEnv.EVC_STREAM,
      EVC_SUBJECT_PREFIX: hubEnv.EVC_SUBJECT_PREFIX,
      EVC_HUB_URL: hubUrl,
      EVC_CREDENTIALS_DIR: creds,
      EVC_LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  children.push(provinces);
  const control = (i) =>
    createClient(
      ControlService,
      createConnectTransport({
        baseUrl: `http://127.0.0.1:${controlPort + i}`,
        httpVersion: "2",
        interceptors: [bearer(controlToken)],
      }),
    );
  const [beijing, guangdong] = [control(0), control(1)];
  await until("the provinces ready", async () => (await guangdong.getFeatures({})).provinceCode);
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
