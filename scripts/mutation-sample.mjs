#!/usr/bin/env node
// The CI sample of the kit's mutation testing (conformance/docs/mutation-testing.md): Stryker on
// one line of province-reference/src/domain/decide.ts — the dose dedupe of an append, four
// mutants the full run killed — found by its text (below), so edits above it do not move the
// sample onto another line; selftest/stryker.sample.json holds the rest of the configuration, and
// the kit's directive suite is the test command. Exit 0 only if the slice still has mutants and the kit killed every one.
// Needs the workspace built (`tsc -b`), PostgreSQL and NATS as the tests do.
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const work = join(root, ".stryker-tmp-sample");
const file = "province-reference/src/domain/decide.ts";
const sampled = "return ok(addDoses(rec.recordId, [a.value.dose]) === 0);";
rmSync(work, { recursive: true, force: true });
try {
  const lines = readFileSync(join(root, file), "utf8").split("\n");
  const at = lines.findIndex((l) => l.includes(sampled)) + 1;
  if (at === 0) throw new Error(`${file} no longer holds the sampled line: ${sampled}`);
  const mutate = `${file}:${at}-${at}`;
  const run = spawnSync(
    "npx",
    ["stryker", "run", "selftest/stryker.sample.json", "--mutate", mutate],
    {
      cwd: root,
      stdio: ["ignore", "pipe", "inherit"],
      encoding: "utf8",
    },
  );
  if (run.status !== 0) {
    process.stdout.write(run.stdout);
    throw new Error(`stryker exited with ${run.status}`);
  }
  const report = JSON.parse(readFileSync(join(work, "mutation.json"), "utf8"));
  const mutants = Object.values(report.files).flatMap((f) => f.mutants);
  const survivors = mutants.filter((m) => m.status !== "Killed");
  if (mutants.length === 0) throw new Error("the sampled slice holds no mutant: fix its lines");
  for (const m of survivors) {
    console.log(
      `  ${m.status}: line ${m.location.start.line}, ${m.mutatorName} → ${m.replacement}`,
    );
  }
  console.log(
    `mutation sample: the kit killed ${mutants.length - survivors.length}/${mutants.length}`,
  );
  process.exitCode = survivors.length === 0 ? 0 : 1;
} catch (err) {
  console.error(`mutation sample: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
