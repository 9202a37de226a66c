import { MigrationService } from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import {
  cpuPerOp,
  cpuSnapshot,
  type Figure,
  figure,
  median,
  pool,
  quantile,
  quiet,
  until,
} from "./measure.js";
import {
  type NaiveOptions,
  type NaivePipeline,
  naiveFigure,
  startNaivePipeline,
} from "./naive-pipeline.js";

import { MIGRATIONS, NATS_URL, PROVINCES, progress, ROUNDS } from "./settings.js";
import { completedCount, registerPersons, type System } from "./system.js";

/**
 * Migrations (and cross-province doses) requested at once in the throughput rounds. A migration
 * takes ≈ 120–200 ms end to end under load, so by Little's law 64 at a time cap the rate near
 * 64 / 0.13 s ≈ 500/s with the machine not quite busy (≈ 8% idle); with 128 (or 256, measured
 * alike) it is. Doses gained ≈ 20% the same way.
 */
export const IN_FLIGHT = 128;

/**
 * Migrations through the hub and reference provinces, and through the naive pipeline the target
 * is stated against (its own yardstick, so this part has its ratio): each warmed up untimed,
 * then their timed rounds taking turns, so that both see the machine alike (measured one after
 * the other, the ratio moved with the machine's drift between them).
 */
export async function migrationFigures(s: System): Promise<Figure[]> {
  const o = {
    migrations: MIGRATIONS,
    inFlight: IN_FLIGHT,
    provinces: PROVINCES,
    natsUrl: NATS_URL,
    dbPool: s.plan.naiveHub,
    provincesDbPool: s.plan.naiveProvinces,
  };
  const naive = await startNaivePipeline(o);
  try {
    return await migrationRounds(s, naive, o);
  } finally {
    await naive.stop();
  }
}

async function migrationRounds(
  s: System,
  naive: NaivePipeline,
  o: NaiveOptions,
): Promise<Figure[]> {
  const clients = PROVINCES.map((code) => s.env.client(MigrationService, `province:${code}`));
  const processes = { hub: process.pid, provinces: s.child.pid };
  // The naive pipeline's and this system's rounds take turns: each starts on a quiet machine.
  const everything = { ...processes, naive: naive.pid };
  const settle = () => quiet(everything);
  const cpu: Record<string, number>[] = [];
  /** Registers MIGRATIONS persons, moves each to another province; returns migrations/s. */
  const round = async (): Promise<number> => {
    const people = await registerPersons(s, MIGRATIONS);
    const cpuBefore = cpuSnapshot(processes);
    const start = new Date();
    await pool(people, IN_FLIGHT, async (person, i) => {
      const target = (person.owner + 1 + (i % (PROVINCES.length - 1))) % PROVINCES.length;
      await (clients[target] as (typeof clients)[number]).requestMigration({
        idempotencyKey: `bench-${person.identity.idNumber}`,
        identity: person.identity,
      });
    });
    // Polled gently (the count is not free for the database under test); the end is the
    // hub's own time of the last completion, not the time the poll noticed it.
    await until(
      "migrations completed",
      async () => (await completedCount(s, start)) >= MIGRATIONS,
      300_000,
      200,
    );
    cpu.push(cpuPerOp(cpuBefore, cpuSnapshot(processes), MIGRATIONS));
    // The round's tail (sealing its events, autovacuum) must not slow the next round. Its CPU
    // is not counted: the other pipeline's idle timers and polls would be counted with it.
    await settle();
    const [last] = await s.env.hub.sql<{ at: Date }[]>`
      SELECT max(updated_at) AS at FROM migrations
      WHERE state = 'COMPLETED' AND requested_at >= ${start}`;
    return MIGRATIONS / (((last?.at ?? new Date()).getTime() - start.getTime()) / 1000);
  };
  // Untimed: a fresh Node.js process spends a fifth of its CPU compiling hot code for its
  // first tens of seconds; the timed rounds should see the hub and provinces as they run.
  const naiveWarm = await naive.round(0, settle);
  progress(`naive pipeline warm-up: ${naiveWarm.rate.toFixed(0)} migrations/s (not counted)`);
  progress(`warm-up: ${(await round()).toFixed(0)} migrations/s (not counted)`);
  cpu.length = 0;
  const naiveRounds: Awaited<ReturnType<NaivePipeline["round"]>>[] = [];
  const throughput: number[] = [];
  for (let r = 1; r <= ROUNDS; r++) {
    const n = await naive.round(r, settle);
    naiveRounds.push(n);
    progress(`naive pipeline migrations/s: round ${r}/${ROUNDS}: ${n.rate.toFixed(0)}`);
    throughput.push(await round());
    progress(
      `completed migrations/s (${MIGRATIONS} persons, ${IN_FLIGHT} in flight): round ${r}/${ROUNDS}: ${throughput.at(-1)?.toFixed(0)}`,
    );
  }
  const rate = Math.max(
    10,
    Math.round(
      quantile(
        [...throughput].sort((a, b) => a - b),
        0.5,
      ) / 2,
    ),
  );
  progress(`latency at 50% load: ${rate} migrations/s open loop`);
  const n = Math.min(MIGRATIONS, rate * 4);
  const people = await registerPersons(s, n);
  const since = new Date();
  const interval = 1000 / rate;
  const start = performance.now();
  const sends: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) {
    const wait = start + i * interval - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const person = people[i];
    if (!person) continue;
    const target = (person.owner + 1) % PROVINCES.length;
    sends.push(
      (clients[target] as (typeof clients)[number]).requestMigration({
        idempotencyKey: `lat-${person.identity.idNumber}`,
        identity: person.identity,
      }),
    );
  }
  await Promise.all(sends);
  await until(
    "latency migrations completed",
    async () => (await completedCount(s, since)) >= n,
    300_000,
  );
  const lat = await s.env.hub.sql<{ ms: number }[]>`
    SELECT extract(epoch FROM updated_at - requested_at)::float8 * 1000 AS ms FROM migrations
    WHERE state = 'COMPLETED' AND requested_at >= ${since} ORDER BY 1`;
  const ms = lat.map((r) => r.ms);
  const f = figure(
    "migrations",
    `Completed migrations/s end to end (request → suspended → issued → completed), ${IN_FLIGHT} in flight`,
    "migrations/s",
    throughput,
    {
      load_per_s: rate,
      p50_ms: quantile(ms, 0.5),
      p99_ms: quantile(ms, 0.99),
      // CPU per migration by process (the hub process also runs the load generator).
      ...(cpu[throughput.indexOf(median(throughput))] ?? {}),
    },
  );
  return [naiveFigure(o, naiveRounds), f];
}
