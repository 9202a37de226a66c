import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Profile } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { TestSuiteSchema } from "@evc-interop/gen/evc/conformance/v1/suite_pb";
import { describe, expect, it } from "vitest";
import type { Kit } from "./kit.js";
import { virtualProvinces } from "./kit-hub.js";
import { humanReport, jsonReport, junitReport, type ReportHeader } from "./report.js";
import {
  applyKnownFailing,
  applyKnownFlaky,
  type CaseResult,
  loadSuites,
  matches,
  runSuites,
} from "./runner.js";
import { SCENARIOS } from "./scenarios.js";

const header: ReportHeader = {
  implementationName: "acme-province",
  implementationVersion: "2.1.0",
  provinceCode: "440000",
  contractVersion: "evc.*.v1",
  kitVersion: "0.1.0",
  contractSha256: "9f".repeat(32),
  seed: 4242,
  startedAt: "2026-11-27T00:00:00.000Z",
  seconds: 1.5,
};

const results: CaseResult[] = [
  {
    name: "directive/duplicate-delivery",
    description: "I4",
    profile: "CORE",
    status: "passed",
    trace: [],
    ms: 12,
  },
  {
    name: "directive/wrong-province",
    description: "a directive for another province is never applied (I7)",
    profile: "CORE",
    status: "failed",
    expected: "no receipt for directive <x>",
    seen: 'a receipt & "APPLIED"',
    trace: ["0.001s → directive {...}"],
    ms: 1500,
  },
  {
    name: "resilience/restart-after-delivery",
    description: "",
    profile: "RESILIENCE",
    status: "skipped",
    error: "no restart command",
    trace: [],
    ms: 0,
  },
];

describe("case selection", () => {
  it("matches full names, suites and wildcards", () => {
    expect(matches("directive/duplicate-delivery", "directive/duplicate-delivery")).toBe(true);
    expect(matches("directive", "directive/duplicate-delivery")).toBe(true);
    expect(matches("directive/", "directive/duplicate-delivery")).toBe(true);
    expect(matches("dir", "directive/duplicate-delivery")).toBe(false);
    expect(matches("*/duplicate-*", "directive/duplicate-delivery")).toBe(true);
    expect(matches("status/*", "directive/duplicate-delivery")).toBe(false);
  });

  it("reports a known-failing case that fails as XFAIL (never PASS), and fails one that passes", () => {
    const [passed, failed, skipped] = results;
    if (!passed || !failed || !skipped) throw new Error("fixture");
    const xfail = applyKnownFailing(failed, ["directive/wrong-*"]);
    expect(xfail.status).toBe("xfail");
    expect(xfail.seen).toBe(failed.seen);
    expect(applyKnownFailing(skipped, ["resilience/*"])).toBe(skipped);
    const stale = applyKnownFailing(passed, ["directive/duplicate-delivery"]);
    expect(stale.status).toBe("failed");
    expect(stale.error).toMatch(/remove it from the list/);
    expect(applyKnownFailing(passed, ["status/*"])).toBe(passed);
  });

  it("reports a known-flaky case that fails as FLAKY, and one that passes as passed", () => {
    const [passed, failed] = results;
    if (!passed || !failed) throw new Error("fixture");
    expect(applyKnownFlaky(failed, ["directive/wrong-province"]).status).toBe("flaky");
    expect(applyKnownFlaky(passed, ["directive/*"])).toBe(passed);
    expect(applyKnownFlaky(failed, ["status/*"])).toBe(failed);
  });

  it("loads the bundled suites, with stable kebab-case names and known scenarios", () => {
    const suites = loadSuites(join(import.meta.dirname, "..", "suites"));
    const names = suites.flatMap((s) => s.cases.map((c) => `${s.name}/${c.name}`));
    expect(names.length).toBeGreaterThanOrEqual(20);
    expect(new Set(names).size).toBe(names.length);
    for (const n of names) expect(n).toMatch(/^[a-z]+\/[a-z0-9]+(-[a-z0-9]+)*$/);
    for (const s of suites)
      for (const c of s.cases) expect(Object.keys(SCENARIOS)).toContain(c.scenario);
  });
});

describe("reports", () => {
  it("the human summary names each failure with what was expected and seen, and closes with the counts", () => {
    const text = humanReport(header, results);
    expect(text).toContain("implementation: acme-province 2.1.0 (province 440000)");
    expect(text).toContain(`contract evc.*.v1 (image sha256:${"9f".repeat(32)})`);
    expect(text).toContain("seed: 4242 (--seed 4242 replays the generated histories)");
    expect(text).toContain("FAIL  directive/wrong-province");
    expect(text).toContain("expected: no receipt for directive <x>");
    expect(text.trim().split("\n").at(-1)).toBe("1 passed, 1 failed, 1 skipped");
    expect(text).toContain("SKIP  resilience/restart-after-delivery (no restart command)");
  });

  it("XFAIL and FLAKY are their own lines and counts, with what was seen, never a pass", () => {
    const [passed, failed, skipped] = results;
    if (!passed || !failed || !skipped) throw new Error("fixture");
    const flaky = { ...failed, name: "status/watch-pushes-change", status: "flaky" as const };
    const marked = [passed, { ...failed, status: "xfail" as const }, flaky, skipped];
    const text = humanReport(header, marked);
    expect(text).toContain("XFAIL directive/wrong-province");
    expect(text).toContain("FLAKY status/watch-pushes-change");
    expect(text).toContain('seen:     a receipt & "APPLIED"');
    expect(text.trim().split("\n").at(-1)).toBe(
      "1 passed, 0 failed, 1 expected failures (known failing), 1 flaky (known flaky), 1 skipped",
    );
    const xml = junitReport(header, marked);
    expect(xml).toContain('tests="4" failures="0" skipped="3"');
    expect(xml).toContain(
      '<skipped type="xfail" message="expected failure (known failing): expected',
    );
  });

  it("JUnit XML escapes what the province sent and counts failures and skips", () => {
    const xml = junitReport(header, results);
    expect(xml).toContain('tests="3" failures="1" skipped="1"');
    expect(xml).toContain("a receipt &amp; &quot;APPLIED&quot;");
    expect(xml).toContain('<property name="kit" value="0.1.0"/>');
    expect(xml).toContain(`<property name="contract_sha256" value="${"9f".repeat(32)}"/>`);
    expect(xml).not.toContain('& "APPLIED"');
  });

  it("JSON carries the versions and every case", () => {
    const json = JSON.parse(jsonReport(header, results)) as {
      contractVersion: string;
      contractSha256: string;
      kitVersion: string;
      summary: unknown;
      cases: unknown[];
    };
    expect(json.contractVersion).toBe("evc.*.v1");
    expect(json.contractSha256).toBe("9f".repeat(32));
    expect(json.kitVersion).toBe("0.1.0");
    expect(json.summary).toEqual({ passed: 1, failed: 1, xfail: 0, flaky: 0, skipped: 1 });
    expect(json.cases).toHaveLength(3);
  });
});

describe("the kit's own provinces", () => {
  it("are never the vendor's: a Xinjiang or Ningxia vendor can certify", () => {
    expect(virtualProvinces("110000")).toEqual(["650000", "640000"]);
    expect(virtualProvinces("650000")).toEqual(["640000", "630000"]);
    expect(virtualProvinces("640000")).toEqual(["650000", "630000"]);
  });
});

describe("--bail", () => {
  const suite = create(TestSuiteSchema, {
    name: "directive",
    profile: Profile.CORE,
    cases: [
      { name: "first", scenario: "no-such-scenario" },
      { name: "second", scenario: "no-such-scenario" },
    ],
  });
  // The runner touches only these of the kit when no scenario runs.
  const kit = { trace: () => {}, canRestart: false } as unknown as Kit;
  const run = (bail: boolean) =>
    runSuites(kit, [suite], [Profile.CORE], {
      run: [],
      skip: [],
      knownFailing: [],
      knownFlaky: [],
      trace: false,
      caseTimeoutMs: 1000,
      seed: 1,
      bail,
    });

  it("stops at the first failure and lists the rest as skipped, with why", async () => {
    const [first, second] = await run(true);
    expect(first?.status).toBe("failed");
    expect(second?.status).toBe("skipped");
    expect(second?.error).toBe("not run: an earlier case failed (--bail)");
  });

  it("runs every case without it", async () => {
    expect((await run(false)).map((r) => r.status)).toEqual(["failed", "failed"]);
  });
});
