import { rebuildSnapshot, sealAll, verifyChain } from "@evc-interop/national";
import { startTestHub } from "@evc-interop/testing";
import type { Sql } from "postgres";
import { type Figure, figure, pool } from "./measure.js";

import { LOG_EVENTS, progress, ROUNDS, rounds } from "./settings.js";

/** At scale: hash-chain verification and snapshot rebuilds over a generated log. */

/**
 * Writes a log straight into the events table: `persons` persons, each with a registration
 * and `perPerson - 1` doses. The snapshot is left empty.
 */
async function generateLog(sql: Sql, persons: number, perPerson: number): Promise<void> {
  progress(`generating ${persons} persons with ${perPerson} event(s) each`);
  const batch = Math.ceil(100_000 / perPerson);
  const starts = Array.from({ length: Math.ceil(persons / batch) }, (_, i) => i * batch);
  // Untimed set-up, CPU-bound in PostgreSQL: two backends at a time (one per core) take it
  // from 35 to 22 s for the million registrations (the rebuild figures did not change).
  await pool(starts, 2, async (from) => {
    const to = Math.min(persons, from + batch) - 1;
    await sql`
      INSERT INTO events (event_id, stream_id, stream_version, type, data, recorded_at)
      SELECT gen_random_uuid(), 'p' || i, v,
        CASE WHEN v = 1 THEN 'RecordRegistered' ELSE 'DoseReported' END,
        CASE WHEN v = 1 THEN
          jsonb_build_object('recordId', 'r' || i, 'owner', '110000',
            'identity', jsonb_build_object('idType', 'ID_TYPE_RESIDENT_ID', 'idNumber', lpad(i::text, 18, '0'),
              'name', 'Bench', 'birthDate', '2020-01-01T00:00:00Z', 'sex', 'SEX_MALE'),
            'certificateNumber', '110000-B' || lpad(i::text, 9, '0'), 'doses', '[]'::jsonb,
            'at', '2026-01-01T00:00:00.000Z')
        ELSE
          jsonb_build_object('recordId', 'r' || i, 'reportedBy', '110000',
            'dose', jsonb_build_object('doseId', 'd' || i || '-' || v, 'vaccineCode', 'HepB',
              'doseNumber', v - 1, 'administeredAt', '2026-0' || v || '-01T00:00:00Z',
              'administeredProvinceCode', '110000'),
            'at', '2026-01-01T00:00:00.000Z')
        END,
        now()
      FROM generate_series(${from}::int, ${to}::int) AS i, generate_series(1, ${perPerson}::int) AS v`;
  });
}

export async function logFigures(): Promise<Figure[]> {
  const env = await startTestHub({}, { workers: false });
  const sql = env.hub.sql;
  try {
    await generateLog(sql, LOG_EVENTS, 1);
    const seal0 = performance.now();
    await sealAll(sql);
    const sealRate = LOG_EVENTS / ((performance.now() - seal0) / 1000);
    progress(`sealed the chain at ${sealRate.toFixed(0)} events/s`);
    const verify = await rounds("hash-chain verification events/s", ROUNDS, async () => {
      const start = performance.now();
      const r = await verifyChain(sql);
      if (!r.ok || r.eventsVerified !== LOG_EVENTS)
        throw new Error(`verification failed: ${JSON.stringify(r)}`);
      return LOG_EVENTS / ((performance.now() - start) / 1000);
    });
    return [
      figure(
        "verify",
        `Hash-chain verification over ${LOG_EVENTS.toLocaleString("en")} events`,
        "events/s",
        verify,
        { seal_events_per_s: sealRate },
      ),
      ...(await rebuildFigures(sql, LOG_EVENTS, "rebuild", "one registration per person")),
    ];
  } finally {
    await env.close();
  }
}

/**
 * Rebuild over a log of persons with several events each (a registration and three doses),
 * the shape of a real log: the snapshot written per event is a quarter of the one above.
 */
export async function mixedRebuildFigures(): Promise<Figure[]> {
  const env = await startTestHub({}, { workers: false });
  const sql = env.hub.sql;
  const persons = Math.round(LOG_EVENTS / 4);
  try {
    await generateLog(sql, persons, 4);
    return await rebuildFigures(
      sql,
      persons * 4,
      "rebuild_mixed",
      "a registration and three doses per person",
    );
  } finally {
    await env.close();
  }
}

/**
 * The rebuild over a log whose snapshot is empty: refilled in rounds (the snapshot emptied
 * again before each but the first), then replayed and compared with the snapshot it wrote
 * (the I5 check an operator runs), in rounds. The seconds of each phase of the last round
 * are the figures' extra numbers.
 */
async function rebuildFigures(
  sql: Sql,
  events: number,
  id: string,
  shape: string,
): Promise<Figure[]> {
  let phases: Record<string, number> = {};
  const run = async (mode: "compare" | "replace") => {
    const r = await rebuildSnapshot(sql, mode);
    if (r.events !== events) throw new Error(`rebuild replayed ${r.events} of ${events} events`);
    if (mode === "compare" && !r.equal)
      throw new Error("rebuild found a refilled snapshot unequal");
    phases = {
      replay_s: r.phases.replay,
      compare_s: r.phases.compare,
      replace_s: r.phases.replace,
    };
    return r.events / r.seconds;
  };
  let refilled = false;
  const refill = await rounds(`snapshot refill events/s, ${shape}`, ROUNDS, async () => {
    // Untimed: the snapshot the previous round wrote goes, the log stays.
    if (refilled) await sql`TRUNCATE records, certificates, migrations, persons`;
    refilled = true;
    return run("replace");
  });
  const refillPhases = phases;
  const compare = await rounds(`snapshot rebuild events/s, ${shape}`, ROUNDS, () => run("compare"));
  const name = `Snapshot rebuild from the log, ${events.toLocaleString("en")} events, ${shape}`;
  return [
    figure(id, `${name}: replay and compare`, "events/s", compare, phases),
    figure(
      `${id}_refill`,
      `${name}: refilling an empty snapshot`,
      "events/s",
      refill,
      refillPhases,
    ),
  ];
}
