import { createClient } from "@connectrpc/connect";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { openDb } from "@evc-interop/runtime";
import { checkOracle, Ledger } from "@evc-interop/testing";
import type { Sql } from "postgres";
import { Cluster, controlTransport } from "./cluster.js";
import { faultName, pickFault, prepare } from "./faults.js";
import { Load } from "./load.js";
import { quiesce } from "./quiesce.js";
import { Random } from "./random.js";

export interface DrillOptions {
  /** Seed of the first drill; drill i uses seed + i. */
  seed: number;
  drills: number;
  /** Operations per drill, run at once while the fault strikes. */
  opsPerDrill: number;
  /** Working directory (logs, credentials, the nats-server store). */
  dir: string;
  /** PostgreSQL server on which the drills create (and drop) a database of their own. */
  adminUrl: string;
  provinces: string[];
  /** How long a drill waits for the system to go quiet before calling what is left stuck. */
  quietTimeoutMs: number;
  print: (line: string) => void;
  /** Stops after the drill in progress (the system is stopped and its database dropped). */
  signal?: AbortSignal;
  /** Keep the drill's database after the run (its name is printed), to read what happened. */
  keepDatabase?: boolean;
}

/** A finding, with the seed of the drill after which it was first seen. */
export interface SeededFinding {
  seed: number;
  detail: string;
}

export interface DrillSummary {
  drills: number;
  operations: { attempted: number; acknowledged: number } & ReturnType<Ledger["counts"]>;
  faults: Record<string, number>;
  violations: SeededFinding[];
  stuck: SeededFinding[];
  lost: number;
  doubled: number;
  /** Doses only their province held when acknowledged, gone with its restore (OracleReport). */
  forgotten: number;
  /**
   * Hubs started on the older backup: fenced, or nothing to detect (nothing happened after the
   * backup). One that was not fenced although the hub had acted since is a violation.
   */
  hubRestores: { fenced: number; nothingToDetect: number };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs seeded fault drills against hub and provinces as separate processes: in each drill a
 * burst of mixed operations runs while a fault strikes at a random moment (faults.ts: one
 * process — the hub, a province or nats-server — killed with SIGKILL, or a province's database
 * restored from a backup taken as the drill began, or lost) and the process is restarted; then
 * the drill waits for quiescence, reconciles every province (the runbook's pass after a
 * restore) and runs the oracle over everything acknowledged so far.
 */
export async function runDrills(opts: DrillOptions): Promise<DrillSummary> {
  const cluster = await Cluster.start({
    dir: opts.dir,
    adminUrl: opts.adminUrl,
    provinces: opts.provinces,
  });
  const hub = openDb({ url: cluster.databaseUrl, schema: "evc_hub", max: 2 });
  const stores = new Map<string, Sql>(
    opts.provinces.map((code) => [
      code,
      openDb({ url: cluster.databaseUrl, schema: `evc_province_${code}`, max: 2 }),
    ]),
  );
  const ledger = new Ledger();
  const load = new Load(
    ledger,
    hub,
    new Map(opts.provinces.map((c) => [c, controlTransport(cluster, c)])),
  );
  const summary: DrillSummary = {
    drills: 0,
    operations: { attempted: 0, acknowledged: 0, ...ledger.counts() },
    faults: {},
    violations: [],
    stuck: [],
    lost: 0,
    doubled: 0,
    forgotten: 0,
    hubRestores: { fenced: 0, nothingToDetect: 0 },
  };
  const seen = new Set<string>();
  /** When each province set back (restored, lost) last started again: see CheckedProvince. */
  const setBack = new Map<string, Date>();
  try {
    for (let i = 0; i < opts.drills && !opts.signal?.aborted; i++) {
      const seed = opts.seed + i;
      const rnd = new Random(seed);
      const f = pickFault(rnd, opts.provinces);
      const fault = faultName(f);
      const at = rnd.int(0, 600);
      const downFor = rnd.int(100, 1500);
      const ready = await prepare(cluster, f, opts.dir);
      const [result, fenced] = await Promise.all([
        load.run(rnd, opts.opsPerDrill),
        (async () => {
          await sleep(at);
          const seen = await ready.strike();
          await sleep(downFor);
          await cluster.recover();
          if (f.kind === "restore" || f.kind === "lose") setBack.set(f.province, new Date());
          return seen;
        })(),
      ]);
      if (fenced === "fenced") summary.hubRestores.fenced += 1;
      if (fenced === "nothing to detect") summary.hubRestores.nothingToDetect += 1;
      if (fenced === "not fenced")
        summary.violations.push({
          seed,
          detail: "the hub started on a backup older than its pinned chain head was not fenced",
        });
      summary.faults[fault] = (summary.faults[fault] ?? 0) + 1;
      summary.operations.attempted += result.attempted;
      summary.operations.acknowledged += result.acknowledged;
      await cluster.recover();

      const pending = await quiesce(hub, stores, opts.quietTimeoutMs, setBack);
      for (const detail of pending) summary.stuck.push({ seed, detail });
      for (const code of opts.provinces) {
        const control = createClient(ControlService, controlTransport(cluster, code));
        await control.reconcile({}, { timeoutMs: 30_000 }).catch((err: unknown) => {
          summary.stuck.push({ seed, detail: `${code}: reconciliation failed: ${String(err)}` });
        });
      }
      const report = await checkOracle(
        ledger,
        hub,
        opts.provinces.map((code) => ({
          code,
          sql: stores.get(code) as Sql,
          ...(setBack.has(code) ? { setBackUntil: setBack.get(code) } : {}),
        })),
      );
      let fresh = 0;
      const details: string[] = [];
      for (const f of report.findings) {
        const key = `${f.rule}: ${f.detail}`;
        if (seen.has(key)) continue;
        seen.add(key);
        fresh += 1;
        details.push(key);
        (f.rule === "stuck" ? summary.stuck : summary.violations).push({ seed, detail: key });
      }
      summary.lost = report.lost;
      summary.doubled = report.doubled;
      summary.forgotten = report.forgotten;
      summary.drills += 1;
      opts.print(
        `drill ${i + 1}/${opts.drills} seed ${seed}: ${fault} at ${at} ms, down ${downFor} ms; ` +
          `${result.acknowledged}/${result.attempted} operations acknowledged; ` +
          (fenced ? `the hub on the older backup: ${fenced}; ` : "") +
          `${fresh} new finding(s)${pending.length ? `; still in flight: ${pending.join(", ")}` : ""}`,
      );
      // Printed at once, with the time: the processes' logs of that moment tell the story.
      for (const d of details) opts.print(`  ${new Date().toISOString()} ${d}`);
    }
  } finally {
    Object.assign(summary.operations, ledger.counts());
    await hub.end({ timeout: 5 });
    for (const s of stores.values()) await s.end({ timeout: 5 });
    await cluster.stop(opts.keepDatabase);
    if (opts.keepDatabase) opts.print(`database kept: ${cluster.databaseUrl}`);
  }
  return summary;
}
