import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mutatedCopy } from "./mutant-copy.js";

describe("mutatedCopy", () => {
  let ws: string;
  let dist: string;
  beforeEach(() => {
    ws = mkdtempSync(join(tmpdir(), "evc-mutant-test-"));
    mkdirSync(join(ws, "node_modules"));
    mkdirSync(join(ws, "pkg", "dist", "store"), { recursive: true });
    dist = join(ws, "pkg", "dist");
    writeFileSync(join(ws, "pkg", "package.json"), '{"type":"module"}');
    writeFileSync(
      join(dist, "store", "store.js"),
      "if (stored) {\n    return dup;\n}\nif (other) {\n}\nif (other) {\n}\n",
    );
  });
  afterEach(() => rmSync(ws, { recursive: true, force: true }));

  it("edits a copy, whitespace-insensitively, and leaves the build untouched", () => {
    const copy = mutatedCopy(
      dist,
      [{ file: "store/store.js", find: "if (stored) { return dup;", replace: "if (false) {" }],
      "t",
    );
    try {
      expect(readFileSync(join(copy.dist, "store", "store.js"), "utf8")).toMatch(
        /^if \(false\) \{\n\}/,
      );
      expect(readFileSync(join(dist, "store", "store.js"), "utf8")).toMatch(/^if \(stored\)/);
      expect(readFileSync(join(copy.dist, "..", "package.json"), "utf8")).toContain("module");
    } finally {
      copy.remove();
    }
  });

  it("refuses an edit whose text is missing or occurs more than once, naming it", () => {
    expect(() =>
      mutatedCopy(dist, [{ file: "store/store.js", find: "if (gone) {", replace: "" }], "t"),
    ).toThrow(/"if \(gone\) \{" occurs 0 times in store\/store.js/);
    expect(() =>
      mutatedCopy(dist, [{ file: "store/store.js", find: "if (other) {", replace: "" }], "t"),
    ).toThrow(/occurs 2 times/);
  });

  it("refuses a package with a node_modules of its own, which a copy would not see", () => {
    mkdirSync(join(ws, "pkg", "node_modules"));
    expect(() =>
      mutatedCopy(dist, [{ file: "store/store.js", find: "if (stored) {", replace: "" }], "t"),
    ).toThrow(/has a node_modules of its own/);
  });
});
