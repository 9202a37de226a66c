#!/usr/bin/env node
// The kit as a vendor gets it (#17 part 3, first step): packs the kit and the packages it needs
// (gen, runtime, national, conformance) with `npm pack`, installs the tarballs into an empty
// folder outside the workspace, and certifies the reference province (core profile: status and
// directive suites) with `npx evc-conformance` run from that folder, after taking the contract
// out of the installed kit (`evc-conformance contract --out`): the report must name the image
// that command wrote, by its SHA-256. Exit 0 only if all of it holds.
// Needs the workspace built (`tsc -b`), PostgreSQL and NATS as the tests do.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
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
const DATABASE_URL =
  process.env.EVC_TEST_DATABASE_URL ??
  process.env.DATABASE_URL ??
  "postgres://postgres@127.0.0.1:5432/test";
const NATS_URL = process.env.EVC_TEST_NATS_URL ?? process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const PACKAGES = ["gen", "runtime", "national", "conformance"];

function freePort() {
  return new Promise((res) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

const work = mkdtempSync(join(tmpdir(), "evc-kit-packed-"));
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

  // The contract, as a vendor gets it from the kit.
  const contract = spawnSync("npx", ["evc-conformance", "contract", "--out", "contract"], {
    cwd: vendor,
    encoding: "utf8",
  });
  const sha256 = /sha256:([0-9a-f]{64})/.exec(contract.stdout)?.[1];
  const written = createHash("sha256")
    .update(readFileSync(join(vendor, "contract", "evc.binpb")))
    .digest("hex");
  if (contract.status !== 0 || sha256 !== written) {
    throw new Error(`contract --out: ${contract.stdout}${contract.stderr}`);
  }
  if (
    !existsSync(
      join(vendor, "contract", "proto", "evc", "province", "v1", "province_service.proto"),
    )
  ) {
    throw new Error("contract --out wrote no .proto files");
  }

  // The reference province, from the workspace's build, started by the kit.
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
      env: {
        DATABASE_URL,
        EVC_PROVINCE_SCHEMA_PREFIX: `${id}_p`,
        EVC_CREDENTIALS_DIR: keys,
        EVC_PROVINCE_LISTEN: `127.0.0.1:${provincePort}`,
        EVC_CONTROL_LISTEN: `127.0.0.1:${controlPort}`,
        EVC_CONTROL_TOKEN: controlToken,
        EVC_RECONCILE_EXTRA_GRACE_MS: "0",
        EVC_PROVISION_CONSUMER: "0",
        EVC_RECEIPT_POLL_MS: "200",
        EVC_LOG_LEVEL: "silent",
        EVC_NATS_ANONYMOUS: "1",
      },
    },
    kit: {
      hub_listen: "127.0.0.1:0",
      nats_url: NATS_URL,
      nats_anonymous: true,
      database_url: DATABASE_URL,
      directive_keys_dir: join(work, "kit-directive-keys"),
    },
  };
  writeFileSync(join(vendor, "kit.json"), JSON.stringify(config, null, 2));
  const run = spawnSync(
    "npx",
    ["evc-conformance", "--config", "kit.json", "--run", "status", "--run", "directive"],
    { cwd: vendor, stdio: ["ignore", "pipe", "inherit"], encoding: "utf8", timeout: 300_000 },
  );
  const last = run.stdout.trim().split("\n").at(-1) ?? "";
  console.log(`kit installed from ${tarballs.length} tarballs in ${vendor}: ${last}`);
  // The kit drops the schema and stream it made; the province's schema is ours to drop.
  spawnSync("psql", [DATABASE_URL, "-qc", `DROP SCHEMA IF EXISTS "${id}_p${code}" CASCADE`]);
  const namesImage = run.stdout.includes(`(image sha256:${sha256})`);
  if (!namesImage) console.log(`the report does not name the image sha256:${sha256}`);
  if (run.status !== 0 || !namesImage || !/\b[1-9]\d* passed, 0 failed\b/.test(last)) {
    console.log(run.stdout);
    process.exitCode = 1;
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
