// `buf breaking` (rules FILE) of the working tree's contract against a previous one.
// Against: $EVC_BREAKING_AGAINST if set; else HEAD when proto/ has uncommitted changes (a
// developer at work), else HEAD~1 (CI on the tip of main: the previous commit of main).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const git = (...args) => execFileSync("git", args, { cwd: root, encoding: "utf8" }).trim();
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: "inherit" });

const dirty = git("status", "--porcelain", "--", "proto") !== "";
let against = process.env.EVC_BREAKING_AGAINST || (dirty ? "HEAD" : "HEAD~1");
try {
  against = git("rev-parse", "--verify", "--quiet", `${against}^{commit}`);
} catch {
  console.error(
    `breaking: no commit ${against} to compare with (first commit or shallow clone); nothing to check`,
  );
  process.exit(0);
}
if (git("ls-tree", "-d", against, "proto") === "") {
  console.error(`breaking: ${against.slice(0, 12)} has no proto/; nothing to compare with`);
  process.exit(0);
}

const work = mkdtempSync(join(tmpdir(), "evc-breaking-"));
try {
  execFileSync("sh", ["-c", `git archive ${against} proto | tar -x -C ${work}`], { cwd: root });
  run("node", ["scripts/proto-image.mjs"]);
  run("node", [
    "scripts/proto-image.mjs",
    "--proto-dir",
    join(work, "proto"),
    "--out",
    join(work, "against.binpb"),
  ]);
  run("npx", [
    "buf",
    "breaking",
    ".build/evc.binpb",
    "--against",
    join(work, "against.binpb"),
    "--path",
    "evc",
  ]);
  console.error(`breaking: no breaking change against ${against.slice(0, 12)}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
