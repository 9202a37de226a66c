#!/usr/bin/env node
// Package boundaries, checked in CI (`npm run check:boundaries`):
// - every workspace package but the generated contract exports one entry point ("."), plus the
//   few declared in EXTRA_ENTRIES, each with its reason;
// - no import reaches into another package (a subpath of @evc-interop/x other than gen, or a
//   relative path leaving the package);
// - every @evc-interop package a file imports is declared in its package.json (production code:
//   dependencies; tests and test helpers: dependencies or devDependencies);
// - the reference province's production code depends on the contract and the runtime only.
// Exits 1 naming each offending import.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const rootPkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));

/** What a package's production code may import, beyond what it declares (a policy, not a fact). */
const ONLY = {
  "@evc-interop/province-reference": ["@evc-interop/gen", "@evc-interop/runtime"],
  "@evc-interop/runtime": ["@evc-interop/gen"],
  "@evc-interop/gen": [],
};

/**
 * Entry points beside ".", on purpose. `@evc-interop/runtime/db`: the database helpers alone, for
 * the hub's worker threads (chain verification, replay), which would otherwise load the whole
 * runtime (Connect, NATS, jose: about 170 ms) at each start; measured as 13% of a 300,000-event
 * chain verification.
 */
const EXTRA_ENTRIES = { "@evc-interop/runtime": ["./db"] };

const problems = [];
const packages = rootPkg.workspaces.map((dir) => {
  const pkg = JSON.parse(readFileSync(join(root, dir, "package.json"), "utf8"));
  return { dir, pkg };
});

function sourceFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name === "dist") continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (/\.(ts|mts|js|mjs)$/.test(name) && !name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

const isTestFile = (rel) => /\.test\.ts$/.test(rel) || /(^|\/)testing\//.test(rel);
const SPEC = /(?:from\s+|import\s*\(\s*|import\s+)["']([^"']+)["']/g;

for (const { dir, pkg } of packages) {
  const exportsField = pkg.exports ?? {};
  const keys = Object.keys(exportsField);
  const allowed = [".", ...(EXTRA_ENTRIES[pkg.name] ?? [])];
  if (
    pkg.name !== "@evc-interop/gen" &&
    (keys.length !== allowed.length || !allowed.every((k) => keys.includes(k)))
  ) {
    problems.push(
      `${dir}/package.json: exports must be exactly ${JSON.stringify(allowed)}, has ${JSON.stringify(keys)}`,
    );
  }
  const declared = new Set(Object.keys(pkg.dependencies ?? {}));
  const declaredDev = new Set([...declared, ...Object.keys(pkg.devDependencies ?? {})]);
  const srcDir = join(root, dir, "src");
  let files = [];
  try {
    files = sourceFiles(srcDir);
  } catch {
    continue;
  }
  for (const file of files) {
    const rel = relative(join(root, dir), file);
    const test = isTestFile(relative(srcDir, file));
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(SPEC)) {
      const spec = m[1];
      const where = `${dir}/${rel}: imports "${spec}"`;
      if (spec.startsWith(".")) {
        const target = resolve(dirname(file), spec);
        if (!target.startsWith(`${join(root, dir)}/`))
          problems.push(`${where}, which is outside ${dir}/`);
        continue;
      }
      const mm = /^(@evc-interop\/[^/]+)(\/.*)?$/.exec(spec);
      if (!mm) continue;
      const [, name, sub] = mm;
      if (name === pkg.name) {
        problems.push(`${where}: use a relative import inside the package`);
        continue;
      }
      if (sub && name !== "@evc-interop/gen" && !(EXTRA_ENTRIES[name] ?? []).includes(`.${sub}`)) {
        problems.push(`${where}: import "${name}" (its entry point), not its internals`);
      }
      if (!(test ? declaredDev : declared).has(name)) {
        problems.push(
          `${where}, not declared in ${dir}/package.json ${test ? "(dev)" : ""}dependencies`,
        );
      }
      const only = ONLY[pkg.name];
      if (!test && only && !only.includes(name)) {
        problems.push(
          `${where}: ${pkg.name} may depend on ${only.join(" and ") || "nothing of ours"} only`,
        );
      }
    }
  }
}

if (problems.length > 0) {
  console.error(`package boundaries: ${problems.length} problem(s)`);
  for (const p of problems) console.error(`  ${p}`);
  process.exit(1);
}
console.log(`package boundaries: ${packages.length} packages, each through its entry point only`);
