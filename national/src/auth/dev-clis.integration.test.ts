import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

/**
 * Seen on main (#29): `evc-credentials --help` wrote 32 keys into a folder named `./--help`, and
 * a rerun silently replaced every existing key, locking out whoever held the old ones;
 * `evc-reader-token --help` printed a stack trace.
 */
const built = (name: string) => fileURLToPath(new URL(`../../dist/auth/${name}`, import.meta.url));
const cli = built("credentials-cli.js");
const work = mkdtempSync(join(tmpdir(), "evc-credentials-cli-"));

afterAll(() => rmSync(work, { recursive: true, force: true }));

function runIt(program: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [program, ...args], { cwd: work }, (err, stdout, stderr) => {
      resolve({ code: err ? Number(err.code ?? 1) : 0, out: `${stdout}${stderr}` });
    });
  });
}
const run = (...args: string[]) => runIt(cli, args);

describe("evc-credentials", () => {
  it("answers --help and refuses an unknown option without writing anything", async () => {
    expect(await run("--help")).toEqual({
      code: 0,
      out: expect.stringMatching(/^usage: evc-credentials/),
    });
    const typo = await run("--hepl");
    expect([typo.code, typo.out]).toEqual([2, expect.stringContaining("Unknown option '--hepl'")]);
    expect(readdirSync(work)).toEqual([]);
  });

  it("never replaces the keys a folder holds unless told to", async () => {
    const dir = join(work, "creds");
    expect((await run(dir)).code).toBe(0);
    const trust = readFileSync(join(dir, "trust.json"), "utf8");
    const again = await run(dir);
    expect([again.code, again.out]).toEqual([
      1,
      expect.stringContaining("already holds credentials"),
    ]);
    expect(readFileSync(join(dir, "trust.json"), "utf8")).toBe(trust);
    expect((await run(dir, "--force")).code).toBe(0);
    expect(readFileSync(join(dir, "trust.json"), "utf8")).not.toBe(trust);
  });
});

describe("evc-reader-token", () => {
  it("answers --help, and an unknown option or a missing one with the usage, never a stack trace", async () => {
    const token = built("reader-token-cli.js");
    expect(await runIt(token, ["--help"])).toEqual({
      code: 0,
      out: expect.stringMatching(/^usage: evc-reader-token/),
    });
    const typo = await runIt(token, ["--provnice", "110000"]);
    expect([typo.code, typo.out]).toEqual([
      2,
      expect.stringMatching(/Unknown option '--provnice'[\s\S]*usage:/),
    ]);
    expect(typo.out).not.toMatch(/\n\s+at /);
    const missing = await runIt(token, ["--province", "110000"]);
    expect([missing.code, missing.out]).toEqual([
      2,
      expect.stringContaining("--caller are required"),
    ]);
  });
});
