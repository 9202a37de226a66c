import { startTestHub } from "@evc-interop/testing";
import { cpuPerOp, cpuSnapshot, type Figure, figure, median, rssOf } from "./measure.js";

import { progress, RECONCILE_CERTS, ROUNDS, rounds } from "./settings.js";
import { type BenchProvince, spawnProvinces, stopSystem } from "./system.js";

/** At scale: one reconciliation pass over a million certificates, 1% diverged. */

export async function reconcileFigures(): Promise<Figure[]> {
  const env = await startTestHub({}, { workers: false });
  // The province in a process of its own, as deployed: its seconds and memory are its own,
  // and the hub streaming the snapshot has the other core.
  const system = { env, ...(await spawnProvinces(env, ["110000"], {})) };
  const p = system.provinces[0] as BenchProvince;
  const pid = system.child.pid ?? 0;
  try {
    progress(`generating ${RECONCILE_CERTS} certificates at the hub and the province`);
    // The hub's side and the province's side are written at the same time (two backends).
    await Promise.all([
      (async () => {
        await env.hub.sql`
          INSERT INTO certificates (certificate_number, record_id, person_key, province, owner_province, status, record_status,
            issued_at, status_changed_at, version, position)
          SELECT '110000-R' || lpad(i::text, 9, '0'), 'r' || i, 'p' || i, '110000', '110000', 'NORMAL', 'ACTIVE', now(), now(), 1, i
          FROM generate_series(1, ${RECONCILE_CERTS}::int) AS i`;
        await env.hub.sql`ANALYZE certificates`;
      })(),
      (async () => {
        await p.sql`INSERT INTO records (record_id, status, hub_version)
          SELECT 'r' || i, 'ACTIVE', 1 FROM generate_series(1, ${RECONCILE_CERTS}::int) AS i`;
        await p.sql`INSERT INTO certificates (certificate_number, record_id, status, owner_province, issued_at, status_changed_at, hub_version)
          SELECT '110000-R' || lpad(i::text, 9, '0'), 'r' || i, 'NORMAL', '110000', now(), now(), 1
          FROM generate_series(1, ${RECONCILE_CERTS}::int) AS i`;
        await p.sql`ANALYZE certificates`;
      })(),
    ]);
    const measure = async (diverge: boolean) => {
      if (diverge) {
        await p.sql`UPDATE certificates SET status = 'SUSPENDED'
          WHERE certificate_number IN (SELECT certificate_number FROM certificates ORDER BY random() LIMIT ${Math.round(RECONCILE_CERTS / 100)})`;
      }
      const cpuBefore = cpuSnapshot({ hub: process.pid, province: pid });
      const base = rssOf(pid) ?? 0;
      let peak = base;
      const sampler = setInterval(() => {
        peak = Math.max(peak, rssOf(pid) ?? 0);
      }, 20);
      const start = performance.now();
      const r = await p.control.reconcile({});
      const seconds = (performance.now() - start) / 1000;
      clearInterval(sampler);
      peak = Math.max(peak, rssOf(pid) ?? 0);
      if (r.compared < RECONCILE_CERTS) throw new Error(`compared only ${r.compared}`);
      if (diverge && r.statusRepaired < RECONCILE_CERTS / 100)
        throw new Error(`repaired only ${r.statusRepaired}`);
      // CPU seconds of the pass by process (cpu_ms per "operation" with the pass as 1,000).
      const cpu = Object.fromEntries(
        Object.entries(
          cpuPerOp(cpuBefore, cpuSnapshot({ hub: process.pid, province: pid }), 1000),
        ).map(([k, v]) => [k.replace("cpu_ms_", "cpu_s_"), v]),
      );
      return { seconds, peakMb: (peak - base) / 1e6, cpu };
    };
    type Pass = Awaited<ReturnType<typeof measure>>;
    const inSync: Pass[] = [];
    const diverged: Pass[] = [];
    const medianPass = (xs: Pass[]) =>
      xs.find((x) => x.seconds === median(xs.map((y) => y.seconds)))?.cpu ?? {};
    // The first pass reads every row cold (the province's and the hub's caches, code not yet
    // optimised) and came out 1.4-1.7x the others: not counted, like every warm-up here.
    const warm = await measure(false);
    progress(`reconciliation warm-up: ${warm.seconds.toPrecision(3)} s (not counted)`);
    await rounds("reconciliation in sync, seconds", ROUNDS, async () => {
      const m = await measure(false);
      inSync.push(m);
      return m.seconds;
    });
    await rounds("reconciliation with 1% diverged, seconds", ROUNDS, async () => {
      const m = await measure(true);
      diverged.push(m);
      return m.seconds;
    });
    const peak = (xs: { peakMb: number }[]) => Math.max(...xs.map((x) => x.peakMb));
    return [
      figure(
        "reconcile_sync",
        `Reconciliation of ${RECONCILE_CERTS.toLocaleString("en")} certificates, in sync`,
        "s",
        inSync.map((x) => x.seconds),
        {
          peak_rss_increase_mb: peak(inSync),
          certs_per_s: RECONCILE_CERTS / Math.min(...inSync.map((x) => x.seconds)),
          ...medianPass(inSync),
        },
      ),
      figure(
        "reconcile_diverged",
        `Reconciliation of ${RECONCILE_CERTS.toLocaleString("en")} certificates, 1% diverged`,
        "s",
        diverged.map((x) => x.seconds),
        {
          peak_rss_increase_mb: peak(diverged),
          ...medianPass(diverged),
        },
      ),
    ];
  } finally {
    await stopSystem(system);
  }
}
