import type { Province } from "@evc-interop/province-reference";
import type { Ledger } from "@evc-interop/testing";
import { checkConvergence, checkOracle, type Rule } from "@evc-interop/testing";
import type { Sql } from "postgres";

/** One invariant's verdict, checked against the hub and every province store. */
export interface InvariantResult {
  id: "I1" | "I2" | "I3" | "I4" | "I6";
  name: string;
  ok: boolean;
  detail: string;
}

/**
 * Checks I1-I4 with the oracle (against what the ledger says clients were told) and I6 after a
 * reconciliation pass, over the hub and the given provinces' stores. Meant for a quiet system
 * (directives delivered and answered), as at the end of the demo.
 */
export async function checkInvariants(
  hub: Sql,
  provinces: Province[],
  ledger: Ledger,
): Promise<InvariantResult[]> {
  const results: InvariantResult[] = [];

  // I1-I4: the oracle compares what the demo was told with the hub and every store.
  const report = await checkOracle(
    ledger,
    hub,
    provinces.map((p) => ({ code: p.code, sql: p.sql })),
  );
  const of = (...rules: Rule[]) =>
    report.findings.filter((f) => rules.includes(f.rule)).map((f) => f.detail);
  const verdict = (
    id: InvariantResult["id"],
    name: string,
    broken: string[],
    held: string,
  ): InvariantResult => ({
    id,
    name,
    ok: broken.length === 0,
    detail: broken.length === 0 ? held : broken.join("; "),
  });
  const { persons, doses, directives } = report.checked;
  results.push(
    verdict(
      "I1",
      "one person, one record",
      of("I1"),
      `${persons} person(s): one record at the hub, ACTIVE only at its owner`,
    ),
    verdict(
      "I2",
      "one valid certificate",
      of("I2"),
      `hub and the union of ${provinces.length} province caches: at most one NORMAL certificate per person`,
    ),
    verdict(
      "I3",
      "no lost or doubled dose",
      of("I3"),
      `${doses} acknowledged dose(s), each at the hub and exactly once in its owner's store`,
    ),
    verdict(
      "I4",
      "exactly-once effect",
      of("I4", "stuck"),
      `${directives} directive(s), each answered and in its province's inbox once; nothing open`,
    ),
  );

  // I6: after one reconciliation pass, every province cache equals the hub snapshot for it.
  const { diverged, repairs } = await checkConvergence(hub, provinces);
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
