import type { Sql } from "postgres";
import type { Finding } from "./check.js";

/**
 * I1 and I2 over the hub's whole snapshot, whoever the persons are (no ledger needed): no person
 * with two records that are not closed, none with two NORMAL certificates. Person keys only:
 * nothing personal in a finding.
 */
export async function snapshotFindings(hub: Sql): Promise<Finding[]> {
  const [open, normal] = await Promise.all([
    hub<{ person_key: string; n: number }[]>`
      SELECT person_key, count(*)::int AS n FROM records WHERE status <> 'CLOSED'
      GROUP BY person_key HAVING count(*) > 1`,
    hub<{ person_key: string; n: number }[]>`
      SELECT person_key, count(*)::int AS n FROM certificates WHERE status = 'NORMAL'
      GROUP BY person_key HAVING count(*) > 1`,
  ]);
  return [
    ...open.map(
      (r): Finding => ({
        rule: "I1",
        detail: `person ${r.person_key.slice(0, 12)}…: ${r.n} open records in the hub snapshot`,
      }),
    ),
    ...normal.map(
      (r): Finding => ({
        rule: "I2",
        detail: `person ${r.person_key.slice(0, 12)}…: ${r.n} NORMAL certificates in the hub snapshot`,
      }),
    ),
  ];
}
