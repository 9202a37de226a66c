import type { Sql } from "postgres";
import type { Province } from "../province.js";

/** One invariant's verdict, checked against the hub and every province store. */
export interface InvariantResult {
  id: "I1" | "I2" | "I3" | "I6";
  name: string;
  ok: boolean;
  detail: string;
}

interface Cert {
  certificate_number: string;
  status: string;
  owner_province: string;
}

/**
 * Checks I1, I2, I3 and I6 over the hub's snapshot and the given provinces' stores. Meant for
 * a quiet system (directives delivered and answered), as at the end of the demo.
 */
export async function checkInvariants(hub: Sql, provinces: Province[]): Promise<InvariantResult[]> {
  const results: InvariantResult[] = [];

  // I1: the hub never holds two open records for a person; a record is ACTIVE in one store at most.
  const [hubI1] = await hub<{ n: number }[]>`
    SELECT count(*)::int AS n FROM (SELECT person_key FROM records WHERE status <> 'CLOSED'
      GROUP BY person_key HAVING count(*) > 1) x`;
  const activeAt = new Map<string, string[]>();
  for (const p of provinces) {
    for (const r of await p.sql<
      { record_id: string }[]
    >`SELECT record_id FROM records WHERE status = 'ACTIVE'`) {
      activeAt.set(r.record_id, [...(activeAt.get(r.record_id) ?? []), p.code]);
    }
  }
  const twice = [...activeAt].filter(([, at]) => at.length > 1);
  results.push({
    id: "I1",
    name: "one person, one record",
    ok: hubI1?.n === 0 && twice.length === 0,
    detail:
      hubI1?.n === 0 && twice.length === 0
        ? `hub: no person with two open records; provinces: ${activeAt.size} active record(s), each in one store only`
        : `hub persons with two open records: ${hubI1?.n}; records active in two stores: ${twice.map(([r, at]) => `${r}@${at.join("+")}`).join(", ")}`,
  });

  // I2: at most one NORMAL certificate per person, at the hub and across the province caches.
  const [hubI2] = await hub<{ n: number }[]>`
    SELECT count(*)::int AS n FROM (SELECT person_key FROM certificates WHERE status = 'NORMAL'
      GROUP BY person_key HAVING count(*) > 1) x`;
  const normalFor = new Map<string, number>();
  for (const p of provinces) {
    for (const r of await p.sql<
      { record_id: string }[]
    >`SELECT record_id FROM certificates WHERE status = 'NORMAL'`) {
      normalFor.set(r.record_id, (normalFor.get(r.record_id) ?? 0) + 1);
    }
  }
  const doubled = [...normalFor].filter(([, n]) => n > 1).map(([r]) => r);
  results.push({
    id: "I2",
    name: "one valid certificate",
    ok: hubI2?.n === 0 && doubled.length === 0,
    detail:
      hubI2?.n === 0 && doubled.length === 0
        ? `hub and the union of ${provinces.length} province caches: at most one NORMAL certificate per person`
        : `hub persons with two NORMAL: ${hubI2?.n}; records NORMAL in two caches: ${doubled.join(", ")}`,
  });

  // I3: every dose the hub knows for an open record is in the owner's store, exactly once.
  const known = await hub<{ record_id: string; owner: string; dose_id: string }[]>`
    SELECT r.key AS record_id, r.value->>'owner' AS owner, d->>'doseId' AS dose_id
    FROM persons, jsonb_each(state->'records') r, jsonb_array_elements(r.value->'doses') d
    WHERE r.value->>'status' = 'ACTIVE'`;
  const byProvince = new Map(provinces.map((p) => [p.code, p]));
  let checked = 0;
  const lost: string[] = [];
  for (const k of known) {
    const p = byProvince.get(k.owner);
    if (!p) continue;
    checked += 1;
    const rows = await p.sql<
      { record_id: string }[]
    >`SELECT record_id FROM doses WHERE dose_id = ${k.dose_id}`;
    if (rows.length !== 1 || rows[0]?.record_id !== k.record_id)
      lost.push(`${k.dose_id}@${k.owner}`);
  }
  results.push({
    id: "I3",
    name: "no lost or doubled dose",
    ok: lost.length === 0,
    detail:
      lost.length === 0
        ? `${checked} doses, each exactly once in its owner's store`
        : `missing or misplaced: ${lost.join(", ")}`,
  });

  // I6: after one reconciliation pass, every province cache equals the hub snapshot for it.
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
  results.push({
    id: "I6",
    name: "caches converge",
    ok: diverged.length === 0,
    detail:
      diverged.length === 0
        ? `after one reconciliation pass (${repairs} repairs) every province cache equals the hub snapshot`
        : `diverged: ${diverged.join(", ")}`,
  });
  return results;
}
