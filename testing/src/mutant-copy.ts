import {
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";

/**
 * One change to a built file: `find` (whitespace-insensitive: any run of spaces or newlines in it
 * matches any run, or none, in the file) must occur exactly once; it is replaced by `replace`.
 */
export interface Edit {
  /** Path inside the package's `dist/`, e.g. `store/store.js`. */
  file: string;
  find: string;
  replace: string;
}

/** A temporary copy of a built package with edits applied; `remove()` deletes it. */
export interface MutantCopy {
  /** The copy's `dist/`: run its programs from here. */
  dist: string;
  remove(): void;
}

function pattern(find: string): RegExp {
  const parts = find
    .trim()
    .split(/\s+/)
    .map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(parts.join("\\s*"), "g");
}

/**
 * Copies a workspace package's built `dist/` (e.g. province-reference/dist) to a temporary
 * folder, with the package's package.json and the workspace's node_modules, and applies
 * `edits` there, so a test can run a deliberately wrong or crashing build without any switch in
 * the real one. Throws, naming the edit, when a `find` does not occur exactly once: the source
 * changed and the edit must follow it.
 */
export function mutatedCopy(dist: string, edits: readonly Edit[], label: string): MutantCopy {
  const pkgDir = dirname(dist);
  const root = resolve(pkgDir, "..");
  // The copy resolves its imports from the workspace root's node_modules only; a package with
  // modules of its own (npm nests a version when two are wanted) would run with the wrong ones.
  if (existsSync(join(pkgDir, "node_modules"))) {
    throw new Error(
      `${label}: ${pkgDir} has a node_modules of its own; a copy of its build would not see it (run \`npm dedupe\`, or make the versions agree)`,
    );
  }
  const dir = mkdtempSync(join(tmpdir(), `evc-mutant-${label}-`));
  try {
    cpSync(dist, join(dir, "dist"), { recursive: true });
    // The package's own package.json (ES modules) and the workspace's dependencies.
    cpSync(join(pkgDir, "package.json"), join(dir, "package.json"));
    symlinkSync(join(root, "node_modules"), join(dir, "node_modules"), "dir");
    for (const e of edits) {
      const file = join(dir, "dist", e.file);
      const text = readFileSync(file, "utf8");
      const re = pattern(e.find);
      const hits = text.match(re)?.length ?? 0;
      if (hits !== 1) {
        throw new Error(
          `${label}: "${e.find.trim().slice(0, 60)}" occurs ${hits} times in ${e.file}, not once (the source changed: update the edit)`,
        );
      }
      writeFileSync(
        file,
        text.replace(re, () => e.replace),
      );
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return { dist: join(dir, "dist"), remove: () => rmSync(dir, { recursive: true, force: true }) };
}
