import type { CaseResult } from "./runner.js";

/** What a report says about the run, beyond the cases. */
export interface ReportHeader {
  implementationName: string;
  implementationVersion: string;
  provinceCode: string;
  contractVersion: string;
  kitVersion: string;
  /** SHA-256 of the contract image the kit was built with (`evc-conformance contract`). */
  contractSha256: string;
  /** The seed of the generated histories (`--seed` replays them). */
  seed: number;
  startedAt: string;
  seconds: number;
}

export function counts(results: CaseResult[]) {
  const n = (status: CaseResult["status"]) => results.filter((r) => r.status === status).length;
  return {
    passed: n("passed"),
    failed: n("failed"),
    xfail: n("xfail"),
    flaky: n("flaky"),
    skipped: n("skipped"),
  };
}

const MARK: Record<CaseResult["status"], string> = {
  passed: "PASS ",
  failed: "FAIL ",
  xfail: "XFAIL",
  flaky: "FLAKY",
  skipped: "SKIP ",
};

/** The closing line: every count that is not zero (passed and failed always). */
export function summaryLine(results: CaseResult[]): string {
  const c = counts(results);
  return [
    `${c.passed} passed`,
    `${c.failed} failed`,
    ...(c.xfail ? [`${c.xfail} expected failures (known failing)`] : []),
    ...(c.flaky ? [`${c.flaky} flaky (known flaky)`] : []),
    ...(c.skipped ? [`${c.skipped} skipped`] : []),
  ].join(", ");
}

/** The human summary: a line per failure with what was expected and seen; the closing line last. */
export function humanReport(h: ReportHeader, results: CaseResult[]): string {
  const lines = [
    `evc-conformance ${h.kitVersion} · contract ${h.contractVersion} (image sha256:${h.contractSha256})`,
    `implementation: ${h.implementationName} ${h.implementationVersion} (province ${h.provinceCode})`,
    `seed: ${h.seed} (--seed ${h.seed} replays the generated histories)`,
    "",
  ];
  for (const r of results) {
    lines.push(`${MARK[r.status]} ${r.name}${r.status === "skipped" ? ` (${r.error})` : ""}`);
    if (r.status === "failed" || r.status === "xfail" || r.status === "flaky") {
      if (r.expected) lines.push(`      expected: ${r.expected}`, `      seen:     ${r.seen}`);
      if (r.error) lines.push(`      ${r.error}`);
      lines.push(`      rule: ${r.description}`);
    }
    for (const t of r.trace) lines.push(`      | ${t}`);
  }
  lines.push("", summaryLine(results));
  return lines.join("\n");
}

function xml(s: string): string {
  return s.replace(
    /[<>&'"]/g,
    (ch) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&apos;", '"': "&quot;" })[ch] ?? ch,
  );
}

export function junitReport(h: ReportHeader, results: CaseResult[]): string {
  const c = counts(results);
  const suites = new Map<string, CaseResult[]>();
  for (const r of results) {
    const suite = r.name.split("/")[0] ?? r.name;
    suites.set(suite, [...(suites.get(suite) ?? []), r]);
  }
  const out = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="evc-conformance ${xml(h.implementationName)} ${xml(h.implementationVersion)}" tests="${results.length}" failures="${c.failed}" skipped="${c.skipped + c.xfail + c.flaky}" time="${h.seconds.toFixed(3)}">`,
  ];
  for (const [suite, rs] of suites) {
    const sc = counts(rs);
    out.push(
      `  <testsuite name="${xml(suite)}" tests="${rs.length}" failures="${sc.failed}" skipped="${sc.skipped + sc.xfail + sc.flaky}">`,
    );
    out.push(
      "    <properties>",
      `      <property name="province" value="${xml(h.provinceCode)}"/>`,
      `      <property name="contract" value="${xml(h.contractVersion)}"/>`,
      `      <property name="kit" value="${xml(h.kitVersion)}"/>`,
      `      <property name="contract_sha256" value="${xml(h.contractSha256)}"/>`,
      `      <property name="seed" value="${h.seed}"/>`,
      "    </properties>",
    );
    for (const r of rs) {
      out.push(
        `    <testcase classname="${xml(suite)}" name="${xml(r.name)}" time="${(r.ms / 1000).toFixed(3)}">`,
      );
      if (r.status === "failed") {
        const msg = r.expected ? `expected ${r.expected}; saw ${r.seen}` : (r.error ?? "failed");
        out.push(
          `      <failure message="${xml(msg)}">${xml([msg, `rule: ${r.description}`, ...r.trace].join("\n"))}</failure>`,
        );
      } else if (r.status === "skipped") {
        out.push(`      <skipped message="${xml(r.error ?? "")}"/>`);
      } else if (r.status === "xfail" || r.status === "flaky") {
        // JUnit has no expected failure: a skip that says what it is, with what was seen.
        const msg = r.expected ? `expected ${r.expected}; saw ${r.seen}` : (r.error ?? "failed");
        const what =
          r.status === "xfail" ? "expected failure (known failing)" : "flaky (known flaky)";
        out.push(`      <skipped type="${r.status}" message="${xml(`${what}: ${msg}`)}"/>`);
      }
      out.push("    </testcase>");
    }
    out.push("  </testsuite>");
  }
  out.push("</testsuites>", "");
  return out.join("\n");
}

export function jsonReport(h: ReportHeader, results: CaseResult[]): string {
  return `${JSON.stringify({ ...h, summary: counts(results), cases: results }, null, 2)}\n`;
}
