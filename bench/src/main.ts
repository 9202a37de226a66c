#!/usr/bin/env node
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { connectBaseline, natsBaselines, pgCpuBaseline, pgInsertBaseline } from "./baselines.js";
import { killChildren } from "./children.js";
import { connectionPlan, describePlan } from "./connections.js";
import { doseFigure } from "./doses.js";
import type { Figure } from "./measure.js";
import { migrationFigures } from "./migrations.js";
import { onboardFigures } from "./onboard.js";
import { readFigures } from "./reads.js";
import { reconcileFigures } from "./reconcile.js";
import { markdown } from "./report.js";
import { logFigures, mixedRebuildFigures } from "./scale-log.js";
import { securityFigures } from "./security.js";
import { PROVINCES, progress, ROUNDS, SCALE, t0, want } from "./settings.js";
import { startSystem, stopSystem } from "./system.js";

/**
 * `npm run bench`: end-to-end figures of the hub and reference provinces on this machine, with
 * the machine's own baselines in the same run (PostgreSQL commits, JetStream publish/consume,
 * a trivial Connect call) and every headline divided by the baseline that bounds it.
 */
async function main(): Promise<void> {
  progress(`rounds ${ROUNDS}, scale ${SCALE}`);
  const figures: Figure[] = [];
  if (want("baselines")) {
    figures.push(await pgInsertBaseline());
    figures.push(await pgCpuBaseline());
    figures.push(...(await natsBaselines()));
    // With the status reads, the trivial call is measured in turn with them (readFigures).
    if (!want("reads")) figures.push(await connectBaseline());
  }
  if (want("migrations") || want("doses") || want("reads")) {
    const plan = await connectionPlan(PROVINCES.length);
    progress(describePlan(plan, PROVINCES.length));
    const system = await startSystem(plan);
    try {
      if (want("migrations")) figures.push(...(await migrationFigures(system)));
      if (want("doses")) figures.push(await doseFigure(system));
      if (want("reads")) figures.push(...(await readFigures(system)));
    } finally {
      await stopSystem(system);
    }
  }
  if (want("log")) {
    figures.push(...(await logFigures()));
    figures.push(...(await mixedRebuildFigures()));
  }
  if (want("reconcile")) figures.push(...(await reconcileFigures()));
  if (want("onboard")) figures.push(...(await onboardFigures()));
  if (want("security")) figures.push(...(await securityFigures()));

  // Baselines first, in the order of the parts that measure them, then the headlines.
  const BASELINES = [
    "pg_commits",
    "pg_cpu",
    "js_publish",
    "js_consume",
    "connect_trivial",
    "naive_pipeline",
  ];
  const rank = (f: Figure) => {
    const b = BASELINES.indexOf(f.id);
    return b >= 0 ? b : BASELINES.length;
  };
  figures.sort((a, b) => rank(a) - rank(b));
  const by = new Map(figures.map((f) => [f.id, f]));
  const relate = (id: string, baseline: string, target?: string, met?: (f: Figure) => boolean) => {
    const f = by.get(id);
    const b = by.get(baseline);
    if (!f) return;
    if (b) {
      f.baseline = baseline;
      f.ratio = f.median / b.median;
    }
    if (target && met) {
      f.target = target;
      f.met = met(f);
    }
  };
  relate("migrations", "naive_pipeline", "≥ 1,000/s (aim 2,000)", (f) => f.median >= 1000);
  relate("doses", "pg_commits");
  relate("status_reads", "connect_trivial", "≥ 80% of trivial call", (f) => (f.ratio ?? 0) >= 0.8);
  relate("verify", "pg_commits", "≥ 100,000 events/s", (f) => f.median >= 100_000);
  relate("rebuild", "pg_commits", "≥ 100,000 events/s", (f) => f.median >= 100_000);
  relate("rebuild_mixed", "pg_commits", "≥ 100,000 events/s", (f) => f.median >= 100_000);
  relate("rebuild_refill", "pg_commits", "≥ 100,000 events/s", (f) => f.median >= 100_000);
  relate("rebuild_mixed_refill", "pg_commits", "≥ 100,000 events/s", (f) => f.median >= 100_000);
  // What the protections cost, as a share of all the CPU a completed migration takes.
  const security = by.get("sec_migration");
  const migrations = by.get("migrations");
  if (security && migrations) {
    const cpu = Object.entries(migrations.extra)
      .filter(([k]) => k.startsWith("cpu_ms_"))
      .reduce((sum, [, v]) => sum + v, 0);
    if (cpu > 0) {
      security.baseline = "the CPU of a migration";
      security.ratio = security.median / cpu;
    }
  }
  const onboarded = by.get("onboard");
  if (onboarded) {
    onboarded.target = "< 5 min (aim 2)";
    onboarded.met = (onboarded.extra.seconds ?? Number.POSITIVE_INFINITY) < 300;
  }
  const sync = by.get("reconcile_sync");
  if (sync) {
    sync.target = "< 10 s, < 300 MB";
    sync.met = sync.median < 10 && (sync.extra.peak_rss_increase_mb ?? 0) < 300;
  }

  const dir = resolve(process.env.EVC_BENCH_OUT ?? "bench-results");
  mkdirSync(dir, { recursive: true });
  const result = {
    at: new Date().toISOString(),
    node: process.version,
    rounds: ROUNDS,
    scale: SCALE,
    seconds: (Date.now() - t0) / 1000,
    figures,
  };
  writeFileSync(join(dir, "bench.json"), `${JSON.stringify(result, null, 2)}\n`);
  const md = markdown(figures);
  writeFileSync(join(dir, "bench.md"), md);
  process.stdout.write(
    `\n${md}\nwritten to ${join(dir, "bench.json")} and bench.md in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`,
  );
}

const USAGE = `usage: npm run bench

Measures the hub and the reference provinces on this machine against its own baselines and
writes bench-results/bench.json and bench.md (EVC_BENCH_OUT). Settings, from the environment:
  EVC_BENCH_ONLY            parts to run: baselines, migrations, doses, reads, log, reconcile, onboard, security
  EVC_BENCH_SCALE           1 = a million events and certificates (0.1 for a quick look)
  EVC_BENCH_ROUNDS          timed rounds of each figure (3)
  EVC_BENCH_OPERATIONS      migrations and doses per round (2,000 x scale)
  EVC_BENCH_CALL_MS         length of a round of calls (5000)
  EVC_BENCH_DB_CONNECTIONS  PostgreSQL connections it may open (what the server has left)
  EVC_TEST_DATABASE_URL, NATS_URL   the PostgreSQL and NATS it runs on
See bench/README.md.`;

const args = process.argv.slice(2);
if (args.includes("--help") || args.includes("-h")) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
if (args.length > 0) {
  process.stderr.write(`bench: unknown argument ${args[0]}\n${USAGE}\n`);
  process.exit(2);
}

/**
 * A bench that fails says why and exits non-zero at once: its children are killed and nothing
 * it still holds open (pools, servers, a child being waited for) keeps it running.
 */
main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    killChildren();
    process.exit(1);
  },
);
