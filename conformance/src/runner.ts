import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { Profile } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { type TestSuite, TestSuiteSchema } from "@evc-interop/gen/evc/conformance/v1/suite_pb";
import { parse } from "yaml";
import { CaseFailure } from "./case.js";
import type { Kit } from "./kit.js";
import { SCENARIOS } from "./scenarios.js";

export interface CaseResult {
  /** `<suite>/<case>`. */
  name: string;
  description: string;
  profile: string;
  /**
   * `xfail`: listed with --known-failing and failed, as expected; `flaky`: listed with
   * --known-flaky and failed this time. Neither fails the run; neither is a pass.
   */
  status: "passed" | "failed" | "skipped" | "xfail" | "flaky";
  expected?: string;
  seen?: string;
  error?: string;
  /** Messages exchanged, when tracing. */
  trace: string[];
  ms: number;
}

/** Loads every suite file (YAML in the protojson form of evc.conformance.v1.TestSuite). */
export function loadSuites(dir: string): TestSuite[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".yaml") || f.endsWith(".yml"))
    .sort()
    .map((f) => {
      const json = parse(readFileSync(join(dir, f), "utf8")) as JsonValue;
      try {
        return fromJson(TestSuiteSchema, json);
      } catch (err) {
        throw new Error(
          `${f}: not a TestSuite: ${err instanceof Error ? err.message : String(err)}`,
        );
      }
    });
}

/** Glob-ish match: `*` matches anything; otherwise a prefix or exact name. */
export function matches(pattern: string, name: string): boolean {
  if (pattern.includes("*")) {
    const re = new RegExp(
      `^${pattern
        .split("*")
        .map((p) => p.replace(/[.+?^${}()|[\]\\/]/g, "\\$&"))
        .join(".*")}$`,
    );
    return re.test(name);
  }
  return name === pattern || name.startsWith(pattern.endsWith("/") ? pattern : `${pattern}/`);
}

/**
 * A case listed as known failing that fails is an expected failure (XFAIL, never a pass); one
 * that passes fails the run, so the list cannot go stale (the connectrpc/conformance rule).
 */
export function applyKnownFailing(result: CaseResult, patterns: string[]): CaseResult {
  if (!patterns.some((p) => matches(p, result.name))) return result;
  if (result.status === "failed") return { ...result, status: "xfail" };
  if (result.status !== "passed") return result;
  return {
    ...result,
    status: "failed",
    error: "listed as known failing but passed: remove it from the list",
  };
}

/** A case listed as known flaky that fails this time is reported FLAKY and does not fail the run. */
export function applyKnownFlaky(result: CaseResult, patterns: string[]): CaseResult {
  if (result.status !== "failed" || !patterns.some((p) => matches(p, result.name))) return result;
  return { ...result, status: "flaky" };
}

export interface RunOptions {
  run: string[];
  skip: string[];
  knownFailing: string[];
  knownFlaky: string[];
  trace: boolean;
  caseTimeoutMs: number;
  /** Seed of the generated scenarios (`--seed`). */
  seed: number;
  /**
   * Stop at the first failure (`--bail`): the cases after it are listed as skipped, and a
   * failing generated history is reported as found, not shrunk.
   */
  bail?: boolean;
  onProgress?: (done: number, total: number, last: CaseResult) => void;
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new CaseFailure(`the case to finish within ${ms} ms`, "a timeout")),
          ms,
        );
      }),
    ]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/** Runs the cases of the suites whose profile the implementation declared. */
export async function runSuites(
  kit: Kit,
  suites: TestSuite[],
  profiles: Profile[],
  opts: RunOptions,
): Promise<CaseResult[]> {
  const all = suites.flatMap((suite) =>
    suite.cases.map((tc) => ({ suite, tc, name: `${suite.name}/${tc.name}` })),
  );
  const results: CaseResult[] = [];
  for (const { suite, tc, name } of all) {
    const profile = Profile[suite.profile] ?? "UNSPECIFIED";
    const base = { name, description: tc.description, profile, trace: [] as string[] };
    // Cases left out are listed, with why: a report says what was not checked.
    const skipped = (why: string) => {
      const r: CaseResult = { ...base, status: "skipped", error: why, ms: 0 };
      results.push(r);
      opts.onProgress?.(results.length, all.length, r);
    };
    if (opts.bail && results.some((r) => r.status === "failed")) {
      skipped("not run: an earlier case failed (--bail)");
      continue;
    }
    if (opts.run.length > 0 && !opts.run.some((p) => matches(p, name))) {
      skipped(`not selected by --run ${opts.run.join(" ")}`);
      continue;
    }
    const by = opts.skip.find((p) => matches(p, name));
    if (by) {
      skipped(`left out by --skip ${by}`);
      continue;
    }
    if (!profiles.includes(suite.profile)) {
      skipped(`profile ${profile} not declared by the implementation (GetFeatures)`);
      continue;
    }
    if (suite.profile === Profile.RESILIENCE && !kit.canRestart) {
      skipped("no start_command or restart_command in the config");
      continue;
    }
    const scenario = SCENARIOS[tc.scenario];
    const started = Date.now();
    kit.trace = (line) => base.trace.push(`${((Date.now() - started) / 1000).toFixed(3)}s ${line}`);
    let result: CaseResult;
    try {
      if (!scenario)
        throw new Error(`unknown scenario "${tc.scenario}" (suite file and kit version disagree)`);
      await withTimeout(
        scenario({ kit, tc, name, seed: opts.seed, bail: opts.bail ?? false }),
        tc.timeoutMs || opts.caseTimeoutMs,
      );
      result = { ...base, status: "passed", ms: Date.now() - started };
    } catch (err) {
      result =
        err instanceof CaseFailure
          ? {
              ...base,
              status: "failed",
              expected: err.expected,
              seen: err.seen,
              ms: Date.now() - started,
            }
          : {
              ...base,
              status: "failed",
              error: err instanceof Error ? err.message : String(err),
              ms: Date.now() - started,
            };
    }
    kit.trace = () => {};
    result = applyKnownFlaky(applyKnownFailing(result, opts.knownFailing), opts.knownFlaky);
    if (!opts.trace) result.trace = [];
    results.push(result);
    opts.onProgress?.(results.length, all.length, result);
  }
  return results;
}
