import type { Sql } from "postgres";

/** A province whose cache is checked: its store's connection and one reconciliation pass. */
export interface ReconcilingProvince {
  code: string;
  sql: Sql;
  reconcile(): Promise<{ missing: number; extra: number; status: number; owner: number }>;
}

export interface ConvergenceReport {
  /** Certificates whose row differs from the hub's after the pass, as `number@province`. */
  diverged: string[];
  /** Repairs the passes made. */
  repairs: number;
}

interface Cert {
  certificate_number: string;
  status: string;
  owner_province: string;
}

/**
 * I6: runs one reconciliation pass at each province, then compares every province's
 * certificates with the hub snapshot's for that province (status and owner; nothing missing,
 * nothing unknown to the hub).
 */
export async function checkConvergence(
  hub: Sql,
  provinces: readonly ReconcilingProvince[],
): Promise<ConvergenceReport> {
  const diverged: string[] = [];
  let repairs = 0;
  for (const p of provinces) {
    const r = await p.reconcile();
    repairs += r.missing + r.extra + r.status + r.owner;
    const hubRows = await hub<Cert[]>`
      SELECT certificate_number, status, owner_province FROM certificates WHERE province = ${p.code}`;
    const local = new Map(
      (
        await p.sql<Cert[]>`SELECT certificate_number, status, owner_province FROM certificates`
      ).map((c) => [c.certificate_number, c]),
    );
    for (const h of hubRows) {
      const l = local.get(h.certificate_number);
      if (!l || l.status !== h.status || l.owner_province !== h.owner_province)
        diverged.push(`${h.certificate_number}@${p.code}`);
      local.delete(h.certificate_number);
    }
    for (const extra of local.keys()) diverged.push(`${extra}@${p.code} (unknown to the hub)`);
  }
  return { diverged, repairs };
}
