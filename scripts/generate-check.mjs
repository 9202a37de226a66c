// Regenerates gen/src from proto/ and fails if anything changed: generated code is committed
// and must always be current.
import { execFileSync } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
execFileSync("npm", ["run", "--silent", "generate"], { cwd: root, stdio: "inherit" });
const changed = execFileSync("git", ["status", "--porcelain", "--", "gen/src"], {
  cwd: root,
  encoding: "utf8",
});
if (changed.trim() !== "") {
  console.error(
    `gen/ is not current with proto/. Run \`npm run generate\` and commit:\n${changed}`,
  );
  process.exit(1);
}
console.error("generate: gen/ is current");
