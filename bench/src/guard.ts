#!/usr/bin/env node
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  best,
  GUARDED,
  guardedRatios,
  judge,
  LEAST_SHARE,
  medianRatios,
  partsOf,
  ratioName,
} from "./guard-check.js";
import type { Figure } from "./measure.js";

/**
 * `npm run bench:guard`: a short bench (small scale, two or three minutes) whose ratios to their
 * in-run baselines are compared with the committed reference, bench/guard-reference.json. It
 * fails, naming the figure, when a ratio dropped by more than a third and a second run of the
 * parts concerned confirms it (each ratio at the better of the two: the machine is noisy, a
 * regression is not). `-- --update` measures and writes the reference instead (each ratio's
 * median over three runs): a deliberate commit, with the full bench's figures in its message.
 */
const USAGE = `usage: npm run bench:guard [-- --update]

Runs the bench at small scale and compares each headline's ratio to its in-run baseline with
bench/guard-reference.json; exits 1 naming each ratio that fell below ${Math.round(LEAST_SHARE * 100)}% of its
reference (a drop is measured once more before it fails the run). --update writes the
reference instead: each ratio's median over three runs.
EVC_BENCH_ONLY limits the parts (the ratios of the others are then not compared).`;

/** Runs the reference is the median of (--update). */
const UPDATE_RUNS = 3;

/** The short bench's size: the reference was measured at this size, and is compared at it. */
const SHORT = {
  EVC_BENCH_SCALE: "0.05",
  EVC_BENCH_OPERATIONS: "500",
  EVC_BENCH_ROUNDS: "2",
  EVC_BENCH_CALL_MS: "2000",
};

const referenceFile = fileURLToPath(new URL("../guard-reference.json", import.meta.url));

interface Reference {
  note: string;
  measured_at: string;
  node: string;
  settings: Record<string, string>;
  ratios: Record<string, number>;
}

async function runShortBench(
  settings: Record<string, string>,
  only = process.env.EVC_BENCH_ONLY || partsOf(GUARDED.map(ratioName)).join(","),
): Promise<Figure[]> {
  const out = mkdtempSync(join(tmpdir(), "evc-bench-guard-"));
  try {
    const main = fileURLToPath(new URL("./main.js", import.meta.url));
    const child = spawn(process.execPath, [...process.execArgv, main], {
      env: { ...process.env, ...settings, EVC_BENCH_OUT: out, EVC_BENCH_ONLY: only },
      stdio: ["ignore", "ignore", "inherit"],
    });
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    if (code !== 0) throw new Error(`bench:guard: the short bench failed (exit ${code})`);
    const result = JSON.parse(readFileSync(join(out, "bench.json"), "utf8")) as {
      figures: Figure[];
    };
    return result.figures;
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

async function main(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const unknown = args.filter((a) => a !== "--update");
  if (unknown.length > 0) {
    process.stderr.write(`bench:guard: unknown argument ${unknown[0]}\n${USAGE}\n`);
    return 2;
  }
  if (args.includes("--update")) {
    if (process.env.EVC_BENCH_ONLY) {
      process.stderr.write("bench:guard: --update measures every part; unset EVC_BENCH_ONLY\n");
      return 2;
    }
    const runs: Record<string, number>[] = [];
    for (let i = 1; i <= UPDATE_RUNS; i++) {
      runs.push(guardedRatios(await runShortBench(SHORT)));
      process.stdout.write(`bench:guard: reference run ${i}/${UPDATE_RUNS} measured\n`);
    }
    const ratios = medianRatios(runs);
    const reference: Reference = {
      note: "Written by npm run bench:guard -- --update; commit it with the full bench's figures in the message.",
      measured_at: new Date().toISOString(),
      node: process.version,
      settings: SHORT,
      ratios,
    };
    writeFileSync(referenceFile, `${JSON.stringify(reference, null, 2)}\n`);
    process.stdout.write(`bench:guard: reference written to ${referenceFile}\n`);
    for (const [name, value] of Object.entries(ratios))
      process.stdout.write(`  ${name}: ${value.toPrecision(3)}\n`);
    return 0;
  }
  const reference = JSON.parse(readFileSync(referenceFile, "utf8")) as Reference;
  let measured = guardedRatios(await runShortBench(reference.settings));
  let verdict = judge(reference.ratios, measured);
  if (verdict.dropped.length > 0) {
    const names = verdict.dropped.map((l) => l.slice(0, l.indexOf(":")));
    // Both sides of each ratio as a full run measures them; within EVC_BENCH_ONLY if it is set.
    const only = process.env.EVC_BENCH_ONLY;
    const parts = only ? only.split(",") : partsOf(names);
    process.stdout.write(
      `bench:guard: ${names.join(", ")} below ${Math.round(LEAST_SHARE * 100)}% of the reference; measuring ${parts.join(",")} once more\n`,
    );
    measured = best(
      measured,
      guardedRatios(await runShortBench(reference.settings, parts.join(","))),
    );
    verdict = judge(reference.ratios, measured);
  }
  for (const line of verdict.lines) process.stdout.write(`bench:guard: ${line}\n`);
  if (verdict.missing.length > 0 && !process.env.EVC_BENCH_ONLY) {
    process.stdout.write(`bench:guard: FAILED: not measured: ${verdict.missing.join(", ")}\n`);
    return 1;
  }
  if (verdict.dropped.length > 0) {
    process.stdout.write(
      `bench:guard: FAILED: dropped by more than a third against bench/guard-reference.json:\n${verdict.dropped.map((l) => `  ${l}\n`).join("")}`,
    );
    return 1;
  }
  process.stdout.write(
    `bench:guard: ok: ${verdict.lines.length} ratios at ${Math.round(LEAST_SHARE * 100)}% of their reference or more\n`,
  );
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
