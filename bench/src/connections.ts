import { TEST_DATABASE_URL } from "@evc-interop/testing";
import postgres from "postgres";

/**
 * The PostgreSQL connections the bench may open at once, and how its pools share them. The
 * migrations part runs the hub, four reference provinces and the naive pipeline side by side:
 * with each pool at its own default they opened more than the shared server's 100 connections,
 * and PostgreSQL refused the rest ("too many clients already").
 */
export interface ConnectionPlan {
  /** Connections the bench may hold at once. */
  budget: number;
  /** How the budget was found, for the report. */
  source: string;
  /** The hub's pool (it also keeps one connection listening for wake-ups). */
  hub: number;
  /** Each reference province's pool (each also keeps one listening for changes). */
  province: number;
  /** The naive pipeline's hub pool, and its provinces' pool (one, in their process). */
  naiveHub: number;
  naiveProvinces: number;
  /** The bench's own reads of each province's store. */
  benchPerProvince: number;
}

/** Pool sizes at which the system and its yardstick are not starved (what the bench used). */
const FULL = { hub: 20, province: 10, naiveHub: 20, naiveProvinces: 16 };
/** Pool sizes below which the measured figures would be the pools' starvation. */
const LEAST = { hub: 4, province: 2, naiveHub: 4, naiveProvinces: 4 };
/** Connections other PostgreSQL clients (psql, monitoring) may want meanwhile. */
const SPARE = 5;

/** Connections held at once by the pools of `plan` for `provinces` reference provinces. */
export function connectionsUsed(plan: ConnectionPlan, provinces: number): number {
  return (
    plan.hub +
    1 +
    provinces * (plan.province + 1 + plan.benchPerProvince) +
    plan.naiveHub +
    plan.naiveProvinces
  );
}

/**
 * Sizes every pool from one budget: EVC_BENCH_DB_CONNECTIONS, or what the server has left
 * (max_connections, less the connections reserved for superusers, those already open and a
 * few spare). Pools keep their full size when the budget allows and shrink together when it
 * does not; a budget too small for a working system is refused with what it needs.
 */
export async function connectionPlan(provinces: number): Promise<ConnectionPlan> {
  const given = process.env.EVC_BENCH_DB_CONNECTIONS;
  let budget: number;
  let source: string;
  if (given !== undefined) {
    budget = Number(given);
    if (!Number.isInteger(budget) || budget <= 0)
      throw new Error(`EVC_BENCH_DB_CONNECTIONS: ${given} is not a positive whole number`);
    source = "EVC_BENCH_DB_CONNECTIONS";
  } else {
    const sql = postgres(TEST_DATABASE_URL, { max: 1, onnotice: () => {} });
    try {
      const [row] = await sql<{ max: number; reserved: number; open: number }[]>`
        SELECT current_setting('max_connections')::int AS max,
          current_setting('superuser_reserved_connections')::int AS reserved,
          (SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'client backend') AS open`;
      if (!row) throw new Error("bench: PostgreSQL did not report max_connections");
      budget = row.max - row.reserved - row.open - SPARE;
      source = `max_connections ${row.max} - ${row.reserved} reserved - ${row.open} open - ${SPARE} spare`;
    } finally {
      await sql.end();
    }
  }
  return planFor(budget, source, provinces);
}

/** The pools' sizes for a budget of `budget` connections (see connectionPlan). */
export function planFor(budget: number, source: string, provinces: number): ConnectionPlan {
  const full: ConnectionPlan = { budget, source, ...FULL, benchPerProvince: 1 };
  const fixed = 1 + provinces * (1 + full.benchPerProvince);
  const flexible = FULL.hub + provinces * FULL.province + FULL.naiveHub + FULL.naiveProvinces;
  const share = Math.min(1, (budget - fixed) / flexible);
  const plan: ConnectionPlan = {
    ...full,
    hub: Math.floor(FULL.hub * share),
    province: Math.floor(FULL.province * share),
    naiveHub: Math.floor(FULL.naiveHub * share),
    naiveProvinces: Math.floor(FULL.naiveProvinces * share),
  };
  if (
    plan.hub < LEAST.hub ||
    plan.province < LEAST.province ||
    plan.naiveHub < LEAST.naiveHub ||
    plan.naiveProvinces < LEAST.naiveProvinces
  ) {
    // The smallest share at which every pool keeps its least size.
    const least = Math.max(
      ...(Object.keys(LEAST) as (keyof typeof LEAST)[]).map((k) => LEAST[k] / FULL[k]),
    );
    throw new Error(
      `bench: a budget of ${budget} PostgreSQL connections (${source}) is too small: the system and its yardstick need ${fixed + Math.ceil(flexible * least)} at least; close other clients or raise max_connections`,
    );
  }
  return plan;
}

/** One line for the report: the budget and what each pool got. */
export function describePlan(plan: ConnectionPlan, provinces: number): string {
  return `PostgreSQL connections: budget ${plan.budget} (${plan.source}); at most ${connectionsUsed(plan, provinces)} open: hub ${plan.hub}+1, provinces ${provinces}x(${plan.province}+1), naive pipeline ${plan.naiveHub}+${plan.naiveProvinces}, bench ${provinces}x${plan.benchPerProvince}`;
}
