import type { PersonState } from "@evc-interop/national";
import type { Sql } from "postgres";
import type { Ledger } from "./ledger.js";
import { snapshotFindings } from "./snapshot.js";

/** A province store to check, by its own connection (search_path set to its schema). */
export interface CheckedProvince {
  code: string;
  sql: Sql;
  /**
   * When the province last started again after its store was set back (restored from an older
   * backup, or lost): a directive the hub had its answer to before then may be missing from
   * its inbox. What the directive did is back by reconciliation, and I1–I3 check that.
   */
  setBackUntil?: Date;
}

/** Which rule a finding breaks; "stuck" is work that did not finish. */
export type Rule = "I1" | "I2" | "I3" | "I4" | "stuck";

export interface Finding {
  rule: Rule;
  detail: string;
}

export interface OracleReport {
  findings: Finding[];
  /** Acknowledged doses missing at the hub or at their owner. */
  lost: number;
  /** Doses held twice where one copy is the rule. */
  doubled: number;
  /**
   * Doses acknowledged while only their province held them (the hub did not answer: the
   * client was told reported_to_hub false), gone because that province was set back to a
   * backup older than them: the recovery point of a province restore, not a breach.
   */
  forgotten: number;
  checked: { persons: number; doses: number; directives: number; provinces: number };
}

interface LocalRecord {
  code: string;
  record_id: string;
  id_number: string | null;
  status: string;
}

/**
 * The one checker the demo, the tests and the drills use. It starts from the ledger — what
 * clients were told — and proves, on a quiet system: each acknowledged registration has one
 * record at the hub and exactly one ACTIVE copy, at its owner (I1); no person has two NORMAL
 * certificates at the hub or across the stores (I2); each acknowledged dose is at the hub and
 * in its owner's store exactly once, and no "maybe" dose twice (I3); every directive the hub
 * issued was answered and is in its province's inbox once (I4); no migration or directive is
 * left open (stuck); an acknowledged closure left no certificate of the record unrevoked, at the
 * hub or at any province (a former owner's suspended copy included).
 */
export async function checkOracle(
  ledger: Ledger,
  hub: Sql,
  provinces: CheckedProvince[],
): Promise<OracleReport> {
  const findings: Finding[] = [];
  const find = (rule: Rule, detail: string) => findings.push({ rule, detail });
  // A person is found under any document the ledger knows them by (the hub's identity is the
  // newest linked one); two persons at the hub for one person of the ledger break I1.
  const ids = [...ledger.persons.keys(), ...ledger.aliases.keys()];
  const states = new Map<string, PersonState>();
  for (const row of await hub<{ state: PersonState }[]>`
    SELECT state FROM persons WHERE state->'identity'->>'idNumber' = ANY(${ids}::text[])`) {
    const number = row.state.identity?.idNumber;
    if (!number) continue;
    const id = ledger.personOf(number);
    if (states.has(id)) find("I1", `${id} is two persons at the hub (under ${number} too)`);
    states.set(id, row.state);
  }
  const recordIds = [...states.values()].flatMap((s) => Object.keys(s.records));
  const local: LocalRecord[] = [];
  const localDoses = new Map<string, Map<string, number>>();
  const localNormal = new Map<string, string[]>();
  /** Certificates not REVOKED, with their status, by record. */
  const localLive = new Map<string, string[]>();
  const checked = new Map(provinces.map((p) => [p.code, p]));
  for (const p of provinces) {
    const rows = await p.sql<Omit<LocalRecord, "code">[]>`
      SELECT record_id, id_number, status FROM records
      WHERE record_id = ANY(${recordIds}::text[]) OR id_number = ANY(${ids}::text[])`;
    for (const r of rows) local.push({ code: p.code, ...r });
    const held = rows.map((r) => r.record_id);
    for (const d of await p.sql<{ record_id: string; dose_id: string; n: number }[]>`
      SELECT record_id, dose_id, count(*)::int AS n FROM doses
      WHERE record_id = ANY(${held}::text[]) GROUP BY 1, 2`) {
      const key = `${p.code}|${d.record_id}`;
      const m = localDoses.get(key) ?? new Map<string, number>();
      m.set(d.dose_id, d.n);
      localDoses.set(key, m);
    }
    for (const c of await p.sql<
      { record_id: string; certificate_number: string; status: string }[]
    >`
      SELECT record_id, certificate_number, status FROM certificates
      WHERE status <> 'REVOKED' AND record_id = ANY(${held}::text[])`) {
      const where = `${c.certificate_number}@${p.code}`;
      localLive.set(c.record_id, [...(localLive.get(c.record_id) ?? []), `${c.status} ${where}`]);
      if (c.status === "NORMAL")
        localNormal.set(c.record_id, [...(localNormal.get(c.record_id) ?? []), where]);
    }
  }

  for (const person of ledger.persons.values()) {
    const state = states.get(person.idNumber);
    if (!state) {
      if (person.acknowledged)
        find("I1", `registration of ${person.idNumber} at ${person.registeredAt} lost at the hub`);
      continue;
    }
    const records = Object.values(state.records);
    const open = records.filter((r) => r.status !== "CLOSED");
    if (open.length > 1) find("I1", `${person.idNumber}: ${open.length} open records at the hub`);
    const mine = new Set(records.map((r) => r.recordId));
    const activeCopies = local.filter((l) => mine.has(l.record_id) && l.status === "ACTIVE");
    if (activeCopies.length > 1) {
      find(
        "I1",
        `${person.idNumber}: ACTIVE in ${activeCopies.map((l) => `${l.record_id}@${l.code}`).join(", ")}`,
      );
    }
    const current = state.currentRecordId ? state.records[state.currentRecordId] : undefined;
    if (current && !state.openMigrationId && checked.has(current.owner)) {
      const atOwner = activeCopies.filter(
        (l) => l.code === current.owner && l.record_id === current.recordId,
      );
      if (atOwner.length !== 1)
        find(
          "I1",
          `${person.idNumber}: record ${current.recordId} not ACTIVE at its owner ${current.owner}`,
        );
    }
    const hubNormal = Object.values(state.certificates).filter((c) => c.status === "NORMAL");
    if (hubNormal.length > 1)
      find("I2", `${person.idNumber}: ${hubNormal.length} NORMAL certificates at the hub`);
    const normalHere = [...mine].flatMap((r) => localNormal.get(r) ?? []);
    if (normalHere.length > 1) find("I2", `${person.idNumber}: NORMAL in ${normalHere.join(", ")}`);
    if (state.openMigrationId)
      find("stuck", `${person.idNumber}: migration ${state.openMigrationId} still open`);
  }

  let lost = 0;
  let doubled = 0;
  let forgotten = 0;
  const setBack = new Map(provinces.map((p) => [p.code, p.setBackUntil]));
  let dosesChecked = 0;
  for (const d of ledger.doses) {
    const state = states.get(d.idNumber);
    const holders = state
      ? Object.values(state.records).filter((r) => r.doses.some((x) => x.doseId === d.doseId))
      : [];
    const atHub = holders.reduce(
      (n, r) => n + r.doses.filter((x) => x.doseId === d.doseId).length,
      0,
    );
    if (!d.acknowledged && atHub === 0) continue;
    dosesChecked += 1;
    const until = setBack.get(d.province);
    if (atHub === 0 && d.heldOnly && until && d.heldOnly <= until) {
      forgotten += 1;
      continue;
    }
    if (atHub === 0) {
      lost += 1;
      find("I3", `dose ${d.doseId} of ${d.idNumber} (given at ${d.province}) missing at the hub`);
      continue;
    }
    if (atHub > 1) {
      doubled += 1;
      find("I3", `dose ${d.doseId} of ${d.idNumber} held ${atHub} times at the hub`);
    }
    const record = holders[holders.length - 1];
    if (!record || !checked.has(record.owner) || state?.openMigrationId) continue;
    const n = localDoses.get(`${record.owner}|${record.recordId}`)?.get(d.doseId) ?? 0;
    if (n === 0) {
      lost += 1;
      find("I3", `dose ${d.doseId} of ${d.idNumber} missing at its owner ${record.owner}`);
    } else if (n > 1) {
      doubled += 1;
      find("I3", `dose ${d.doseId} of ${d.idNumber} held ${n} times at ${record.owner}`);
    }
  }

  for (const c of ledger.closures.filter((x) => x.acknowledged)) {
    const r = states.get(c.idNumber)?.records[c.recordId];
    if (r?.status !== "CLOSED")
      find("I1", `closure of ${c.recordId} acknowledged, hub says ${r?.status}`);
    // Revoked everywhere (已注销): a former owner's suspended copy included.
    if ((localLive.get(c.recordId) ?? []).length > 0)
      find("I2", `closed record ${c.recordId} still ${localLive.get(c.recordId)?.join(", ")}`);
    const hubLive = Object.values(states.get(c.idNumber)?.certificates ?? {}).filter(
      (x) => x.recordId === c.recordId && x.status !== "REVOKED",
    );
    if (hubLive.length > 0)
      find(
        "I2",
        `closed record ${c.recordId} still ${hubLive.map((x) => `${x.status} ${x.number}`).join(", ")} at the hub`,
      );
  }

  // Every directive the hub issued for these persons was answered, and applied once (I4).
  const directives = await hub<
    {
      directive_id: string;
      province: string;
      state: string;
      action: string;
      acknowledged_at: Date | null;
      last_published_at: Date | null;
    }[]
  >`
    SELECT directive_id::text, province, state, action, acknowledged_at, last_published_at
    FROM directives
    WHERE record_id = ANY(${recordIds}::text[])`;
  // REJECTED is an answer too (a dose it concerned is checked by I3 above).
  const answered = (d: { state: string }) =>
    d.state === "ACKNOWLEDGED" || d.state === "SUPERSEDED" || d.state === "REJECTED";
  for (const d of directives.filter((x) => !answered(x))) {
    find("stuck", `directive ${d.action} ${d.directive_id} to ${d.province} is ${d.state}`);
  }
  for (const p of provinces) {
    const sent = directives.filter((d) => d.province === p.code && answered(d));
    const inbox = new Map(
      (
        await p.sql<{ directive_id: string; n: number }[]>`
          SELECT directive_id::text, count(*)::int AS n FROM inbox
          WHERE directive_id = ANY(${sent.map((d) => d.directive_id)}::uuid[]) GROUP BY 1`
      ).map((r) => [r.directive_id, r.n]),
    );
    // Answered before the set-back; or given up on (SUPERSEDED, no receipt) after it was on
    // the bus before the set-back: applied and lost with the store, the bus's copy taken.
    const forgotten = (d: (typeof sent)[number]) => {
      const until = p.setBackUntil;
      if (until === undefined) return false;
      if (d.acknowledged_at !== null) return d.acknowledged_at <= until;
      return (
        d.state === "SUPERSEDED" && d.last_published_at !== null && d.last_published_at <= until
      );
    };
    for (const d of sent) {
      const n = inbox.get(d.directive_id) ?? 0;
      if (n === 0 && forgotten(d)) continue;
      if (n !== 1)
        find("I4", `directive ${d.action} ${d.directive_id} in ${p.code}'s inbox ${n} times`);
    }
  }
  // Beyond the ledger's persons: nobody in the whole snapshot has two open records or two
  // NORMAL certificates.
  findings.push(...(await snapshotFindings(hub)));
  return {
    findings,
    lost,
    doubled,
    forgotten,
    checked: {
      persons: ledger.persons.size,
      doses: dosesChecked,
      directives: directives.length,
      provinces: provinces.length,
    },
  };
}
