import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { counts } from "@evc-interop/conformance";
import { certify, PROVINCE, writeCredentials } from "./certify.js";

/**
 * The test command of the Stryker run (`npm run conformance:mutation`, selftest/stryker.config.json):
 * the kit certifies the province-reference build in the current directory — Stryker's sandbox,
 * instrumented, where `__STRYKER_ACTIVE_MUTANT__` in the environment (which the province it
 * starts inherits) picks the mutant — on the core profile: status, directive and the generated
 * histories, with the self-test's fixed seed (arguments name other suites: the CI sample runs
 * `directive` only). Exit 0 when every case passed (the mutant survived), 1 when one failed (the
 * kit killed it).
 */
async function main(suites: string[]): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "evc-stryker-"));
  try {
    await writeCredentials(dir, [PROVINCE]);
    const { results } = await certify(undefined, dir, {
      dist: join(process.cwd(), "province-reference", "dist"),
      run: suites.length > 0 ? suites : ["status", "directive", "generated"],
      bail: true,
    });
    const c = counts(results);
    for (const r of results.filter((x) => x.status === "failed")) {
      console.log(`killed by ${r.name}: ${r.expected ? `expected ${r.expected}` : r.error}`);
    }
    return c.failed === 0 && c.passed > 0 ? 0 : 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
