import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/**
 * Seen on main (#29): `evc-province --help` answered a configuration error; `evc-province
 * onboard` is new (#28 story 4). Neither answers a typo with a stack trace nor starts anything.
 */
const program = fileURLToPath(new URL("../dist/main.js", import.meta.url));

function run(...args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    // No province configured: an answer that starts a province would fail, not hang.
    const env = { ...process.env, EVC_PROVINCE_CODE: "", EVC_PROVINCE_CODES: "" };
    execFile(process.execPath, [program, ...args], { env }, (err, stdout, stderr) => {
      resolve({ code: err ? Number(err.code ?? 1) : 0, out: `${stdout}${stderr}` });
    });
  });
}

describe("evc-province on the command line", () => {
  it("answers --help and --version, and an unknown command with the usage", async () => {
    expect(await run("--help")).toEqual({
      code: 0,
      out: expect.stringMatching(/^usage: evc-province/),
    });
    expect(await run("--version")).toEqual({
      code: 0,
      out: expect.stringMatching(/^\d+\.\d+\.\d+\n$/),
    });
    const typo = await run("onbaord");
    expect([typo.code, typo.out]).toEqual([
      2,
      expect.stringMatching(/unknown command "onbaord"[\s\S]*usage:/),
    ]);
  });

  it("onboard: --help, and a bad option named with the usage, never a stack trace", async () => {
    expect(await run("onboard", "--help")).toEqual({
      code: 0,
      out: expect.stringMatching(/^usage: evc-province onboard/),
    });
    const bad = await run("onboard", "--batch", "5000");
    expect([bad.code, bad.out]).toEqual([1, expect.stringContaining("--batch must be 1..1000")]);
    const typo = await run("onboard", "--bacth", "10");
    expect([typo.code, typo.out]).toEqual([
      1,
      expect.stringMatching(/Unknown option '--bacth'[\s\S]*usage:/),
    ]);
    for (const r of [bad, typo]) expect(r.out).not.toMatch(/\n\s+at /);
  });
});
