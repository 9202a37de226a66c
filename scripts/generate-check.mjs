// Regenerates gen/src from proto/ into a temporary directory and fails if it differs from the
// gen/src in the working tree: generated code is committed and must always be current.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = mkdtempSync(join(tmpdir(), "evc-gen-"));
try {
  execFileSync("node", ["scripts/proto-image.mjs"], { cwd: root, stdio: "inherit" });
  execFileSync("npx", ["buf", "generate", ".build/evc.binpb", "--path", "evc", "--output", out], {
    cwd: root,
    stdio: "inherit",
  });
  try {
    execFileSync("diff", ["-r", join(out, "gen", "src"), join(root, "gen", "src")], {
      stdio: "pipe",
    });
  } catch (err) {
    console.error(
      `gen/ is not current with proto/. Run \`npm run generate\` and commit:\n${err.stdout ?? ""}`,
    );
    process.exit(1);
  }
  console.error("generate: gen/ is current");
} finally {
  rmSync(out, { recursive: true, force: true });
}
