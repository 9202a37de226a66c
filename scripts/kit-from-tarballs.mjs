#!/usr/bin/env node
// The kit as a vendor gets it (#17 parts 3 and 4): packs the kit and the packages it needs (gen,
// runtime, local-services, console, national, conformance) with `npm pack` and installs the
// tarballs into an empty folder outside the workspace. From that folder, as a vendor would:
// 1. `npx evc-conformance contract --out contract`: the contract, out of the installed kit;
// 2. the reference province (the workspace's build) certified on the core profile, with nothing
//    but the kit: its own nats-server and an embedded PostgreSQL for the kit and the province;
// 3. the Go example province (conformance/examples/province-go, shipped in the kit) built from
//    that contract with Debian's Go packages only, and certified on every profile it declares,
//    on the kit's own bus (NKey) and the machine's PostgreSQL.
// Each report must name the image `contract` wrote, by its SHA-256. Exit 0 only if all holds.
// Needs the workspace built (`tsc -b`), PostgreSQL and nats-server as the tests do, protoc and Go.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { credentialFile, generateCredential } = await import(
  join(root, "runtime", "dist", "index.js")
);
const { referenceProvinceEnv } = await import(join(root, "selftest", "dist", "index.js"));
const DATABASE_URL =
  process.env.EVC_TEST_DATABASE_URL ??
  process.env.DATABASE_URL ??
  "postgres://postgres@127.0.0.1:5432/test";
const PACKAGES = ["gen", "runtime", "local-services", "console", "national", "conformance"];
const GO_PACKAGES =
  "golang-go golang-goprotobuf-dev golang-google-grpc-dev golang-github-nats-io-go-nats-dev golang-github-golang-jwt-jwt-dev golang-github-lib-pq-dev";

function freePort() {
  return new Promise((res) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/**
 * Runs the installed kit in `vendor`; returns what it wrote (its stderr, then its stdout: the
 * last line is the verdict), or throws with it.
 */
function kit(vendor, args, what) {
  const run = spawnSync("npx", ["evc-conformance", ...args], {
    cwd: vendor,
    stdio: ["ignore", "pipe", "pipe"],
    encoding: "utf8",
    timeout: 300_000,
  });
  process.stderr.write(run.stderr);
  const last = run.stdout.trim().split("\n").at(-1) ?? "";
  console.log(`${what}: ${last}`);
  if (run.status !== 0) throw new Error(`${what} failed (exit ${run.status}):\n${run.stdout}`);
  return `${run.stderr}\n${run.stdout}`;
}

/**
 * The kit's part of a config: its own stream, schema and hub port for this run. No bus named:
 * the kit starts a nats-server of its own, every user authenticated (the province by the NKey
 * seed the kit gives it). `ownDatabase`: a database URL where nothing answers, so the kit starts
 * an embedded PostgreSQL (and gives the province its DATABASE_URL); else the machine's.
 */
async function kitSection(work, { ownDatabase }) {
  return {
    hub_listen: "127.0.0.1:0",
    directive_keys_dir: join(work, "kit-directive-keys"),
    database_url: ownDatabase
      ? `postgres://postgres@127.0.0.1:${await freePort()}/postgres`
      : DATABASE_URL,
  };
}

function certified(stdout, sha256, what) {
  const last = stdout.trim().split("\n").at(-1) ?? "";
  if (!stdout.includes(`(image sha256:${sha256})`)) {
    throw new Error(`${what}: the report does not name the image sha256:${sha256}`);
  }
  if (!/\b[1-9]\d* passed, 0 failed\b/.test(last)) throw new Error(`${what}: ${last}`);
}

const dropSchema = (schema) =>
  spawnSync("psql", [DATABASE_URL, "-qc", `DROP SCHEMA IF EXISTS "${schema}" CASCADE`]);

async function certifyReference(vendor, work, sha256) {
  const code = "110000";
  const keys = join(work, "keys");
  mkdirSync(keys);
  const { credential } = await generateCredential(`province:${code}`);
  writeFileSync(
    join(keys, credentialFile(`province:${code}`)),
    JSON.stringify(credential.privateJwk),
  );
  const id = `packed_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
  const [provincePort, controlPort] = [await freePort(), await freePort()];
  const controlToken = randomBytes(18).toString("base64url");
  const program = join(root, "province-reference", "dist", "main.js");
  const config = {
    province: {
      code,
      url: `http://127.0.0.1:${provincePort}`,
      control_url: `http://127.0.0.1:${controlPort}`,
      public_key: join(keys, credentialFile(`province:${code}`)),
      control_token: controlToken,
      start_command: `exec ${JSON.stringify(process.execPath)} ${JSON.stringify(program)}`,
      env: referenceProvinceEnv({
        kitBus: true,
        schemaPrefix: `${id}_p`,
        credentialsDir: keys,
        provincePort,
        controlPort,
        controlToken,
      }),
    },
    kit: await kitSection(work, { ownDatabase: true }),
  };
  writeFileSync(join(vendor, "reference.json"), JSON.stringify(config, null, 2));
  // The province's schema lives in the kit's embedded PostgreSQL: nothing to drop after.
  const out = kit(
    vendor,
    ["--config", "reference.json", "--run", "status", "--run", "directive"],
    "reference province (core profile)",
  );
  for (const started of ["started an embedded PostgreSQL", "started nats-server"]) {
    if (!out.includes(started)) throw new Error(`reference province: the kit never ${started}`);
  }
  certified(out, sha256, "reference province");
}

/** The Go example, as conformance/examples/province-go/README.md walks a vendor through it. */
async function certifyGoExample(vendor, work, sha256) {
  const go = spawnSync("go", ["version"], { encoding: "utf8" });
  if (go.status !== 0) {
    throw new Error(`Go is not installed: apt-get install ${GO_PACKAGES} (.ci/run does)`);
  }
  const example = join(vendor, "province-go");
  cpSync(
    join(vendor, "node_modules", "@evc-interop", "conformance", "examples", "province-go"),
    example,
    {
      recursive: true,
    },
  );
  const unformatted = execFileSync("gofmt", ["-l", "."], { cwd: example, encoding: "utf8" });
  if (unformatted.trim()) throw new Error(`gofmt: not formatted:\n${unformatted}`);
  execFileSync(join(example, "build.sh"), ["contract"], {
    cwd: vendor,
    stdio: ["ignore", "ignore", "inherit"],
  });
  execFileSync("go", ["vet", "."], {
    cwd: example,
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, GO111MODULE: "off", GOPATH: `/usr/share/gocode:${example}/.gopath` },
  });
  execFileSync(join(example, "province-go"), ["keygen", "120000", "province-go/province.jwk"], {
    cwd: vendor,
  });
  // The example's kit.yaml, with this run's port and schema (as JSON, which the kit also reads).
  const port = await freePort();
  const schema = `packed_go_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
  const token = randomBytes(18).toString("base64url");
  const sep = DATABASE_URL.includes("?") ? "&" : "?";
  const config = {
    province: {
      code: "120000",
      url: `http://127.0.0.1:${port}`,
      protocol: "grpc",
      public_key: "province.jwk.pub",
      control_token: token,
      start_command: "exec province-go/province-go",
      env: {
        EVC_PROVINCE_KEY: "province-go/province.jwk",
        EVC_LISTEN: `127.0.0.1:${port}`,
        EVC_CONTROL_TOKEN: token,
        DATABASE_URL: `${DATABASE_URL}${sep}sslmode=disable`,
        EVC_SCHEMA: schema,
      },
    },
    kit: await kitSection(work, { ownDatabase: false }),
  };
  writeFileSync(join(example, "kit.json"), JSON.stringify(config, null, 2));
  try {
    const out = kit(
      vendor,
      ["--config", "province-go/kit.json", "--json", "go-report.json", "--seed", "7"],
      "Go example province (every declared profile)",
    );
    certified(out, sha256, "Go example province");
  } finally {
    dropSchema(schema);
  }
}

const work = mkdtempSync(join(tmpdir(), "evc-kit-packed-"));
// A vendor's folder as usual (mkdtemp's is closed to others): run as root, the kit's embedded
// PostgreSQL runs as the user postgres, which must reach the installed programs.
chmodSync(work, 0o755);
try {
  const packs = join(work, "tarballs");
  mkdirSync(packs);
  execFileSync(
    "npm",
    ["pack", ...PACKAGES.flatMap((p) => ["-w", p]), "--pack-destination", packs, "--silent"],
    { cwd: root, stdio: ["ignore", "ignore", "inherit"] },
  );
  const tarballs = readdirSync(packs).map((f) => join(packs, f));
  if (tarballs.length !== PACKAGES.length) throw new Error(`packed ${tarballs.length} tarballs`);

  const vendor = join(work, "vendor");
  mkdirSync(vendor);
  writeFileSync(join(vendor, "package.json"), '{ "name": "vendor-ci", "private": true }\n');
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--silent", ...tarballs], {
    cwd: vendor,
    stdio: ["ignore", "ignore", "inherit"],
  });
  console.log(`kit installed from ${tarballs.length} tarballs in ${vendor}`);

  // The contract, as a vendor gets it from the kit.
  const contract = kit(vendor, ["contract", "--out", "contract"], "contract");
  const sha256 = /sha256:([0-9a-f]{64})/.exec(contract)?.[1];
  const written = createHash("sha256")
    .update(readFileSync(join(vendor, "contract", "evc.binpb")))
    .digest("hex");
  if (sha256 !== written) throw new Error(`contract --out printed ${sha256}, wrote ${written}`);
  if (
    !existsSync(
      join(vendor, "contract", "proto", "evc", "province", "v1", "province_service.proto"),
    )
  ) {
    throw new Error("contract --out wrote no .proto files");
  }

  await certifyReference(vendor, work, sha256);
  await certifyGoExample(vendor, work, sha256);
} catch (err) {
  console.error(`kit from tarballs: ${err instanceof Error ? err.message : err}`);
  process.exitCode = 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
