#!/usr/bin/env node
// `npm run release`: a self-contained release of the national hub, release/evc-hub-<version>/
// and release/evc-hub-<version>.tar.gz: the hub packed from this workspace (gen, runtime,
// console with its built browser app, national, with `npm pack`) and installed with its
// production dependencies only into the release's node_modules, so it runs with Node.js and
// nothing else; bin/ wrappers; the systemd unit, the example environment and the release's
// README (national/release/); the alert rules and the dashboard (national/ops/). Schema
// migrations are the hub's own (`evc-hub migrate`). Needs the workspace built (`npm run build`,
// which the npm script runs).
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { version } = JSON.parse(readFileSync(join(root, "national", "package.json"), "utf8"));
const name = `evc-hub-${version}`;
const releases = join(root, "release");
const out = join(releases, name);
rmSync(out, { recursive: true, force: true });
rmSync(`${out}.tar.gz`, { force: true });
mkdirSync(out, { recursive: true });

/** The release's package.json: what it is, no dependencies (they are in node_modules). */
function writeManifest() {
  const manifest = { name: "evc-hub-release", version, private: true, type: "module" };
  writeFileSync(join(out, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
}

// The hub and its libraries, as npm installs them from the packed packages.
const packs = mkdtempSync(join(tmpdir(), "evc-release-"));
try {
  execFileSync(
    "npm",
    [
      "pack",
      "-w",
      "gen",
      "-w",
      "runtime",
      "-w",
      "console",
      "-w",
      "national",
      "--pack-destination",
      packs,
      "--silent",
    ],
    { cwd: root, stdio: ["ignore", "ignore", "inherit"] },
  );
  const tarballs = readdirSync(packs).map((f) => join(packs, f));
  writeManifest();
  execFileSync(
    "npm",
    [
      "install",
      "--omit=dev",
      "--no-audit",
      "--no-fund",
      "--no-package-lock",
      "--silent",
      ...tarballs,
    ],
    { cwd: out, stdio: ["ignore", "ignore", "inherit"] },
  );
} finally {
  rmSync(packs, { recursive: true, force: true });
}
// What npm added about the tarballs' paths is of no use once they are gone.
writeManifest();

const national = "node_modules/@evc-interop/national";
const bins = {
  "evc-hub": `${national}/dist/main.js`,
  "evc-operator": `${national}/dist/ops/operator-main.js`,
  "evc-credentials": `${national}/dist/auth/credentials-cli.js`,
};
mkdirSync(join(out, "bin"));
for (const [bin, script] of Object.entries(bins)) {
  const file = join(out, "bin", bin);
  writeFileSync(
    file,
    `#!/bin/sh\n# ${bin} of the evc-interop hub release\nhere=$(dirname "$(readlink -f "$0")")\nexec node "$here/../${script}" "$@"\n`,
  );
  chmodSync(file, 0o755);
}
for (const f of [
  "evc-hub.service",
  "evc-hub.env.example",
  "README.md",
  "Dockerfile",
  "compose.yaml",
  "nats-server.conf",
]) {
  cpSync(join(root, "national", "release", f), join(out, f));
}
cpSync(join(root, "national", "ops"), join(out, "ops"), { recursive: true });

execFileSync("tar", ["-czf", `${out}.tar.gz`, "-C", releases, name]);
console.log(`release: ${out}.tar.gz (${out})`);
