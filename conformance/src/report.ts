import type { CaseResult } from "./runner.js";

/** What a report says about the run, beyond the cases. */
export interface ReportHeader {
  implementationName: string;
  implementationVersion: string;
  provinceCode: string;
  contractVersion: string;
  kitVersion: string;
  startedAt: string;
  seconds: number;
}

export function counts(results: CaseResult[]) {
  return {
    passed: results.filter((r) => r.status === "passed").length,
    failed: results.filter((r) => r.status === "failed").length,
    skipped: results.filter((r) => r.status === "skipped").length,
  };
}

/** The human summary: a line per failure with what was expected and seen; the closing line last. */
export function humanReport(h: ReportHeader, results: CaseResult[]): string {
  const c = counts(results);
  const lines = [
    `evc-conformance ${h.kitVersion} · contract ${h.contractVersion}`,
    `implementation: ${h.implementationName} ${h.implementationVersion} (province ${h.provinceCode})`,
    "",
  ];
  for (const r of results) {
    const mark = r.status === "passed" ? "PASS" : r.status === "failed" ? "FAIL" : "SKIP";
    lines.push(`${mark}  ${r.name}${r.status === "skipped" ? ` (${r.error})` : ""}`);
    if (r.status === "failed") {
      if (r.expected) lines.push(`      expected: ${r.expected}`, `      seen:     ${r.seen}`);
      if (r.error) lines.push(`      ${r.error}`);
      lines.push(`      rule: ${r.description}`);
    }
    for (const t of r.trace) lines.push(`      | ${t}`);
  }
  lines.push(
    "",
    `${c.passed} passed, ${c.failed} failed${c.skipped ? `, ${c.skipped} skipped` : ""}`,
  );
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
    `<testsuites name="evc-conformance ${xml(h.implementationName)} ${xml(h.implementationVersion)}" tests="${results.length}" failures="${c.failed}" skipped="${c.skipped}" time="${h.seconds.toFixed(3)}">`,
  ];
  for (const [suite, rs] of suites) {
    const sc = counts(rs);
    out.push(
      `  <testsuite name="${xml(suite)}" tests="${rs.length}" failures="${sc.failed}" skipped="${sc.skipped}">`,
    );
    out.push(
      "    <properties>",
      `      <property name="province" value="${xml(h.provinceCode)}"/>`,
      `      <property name="contract" value="${xml(h.contractVersion)}"/>`,
      `      <property name="kit" value="${xml(h.kitVersion)}"/>`,
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
