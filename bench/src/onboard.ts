import { rmSync } from "node:fs";
import { insertLegacyRecords, migrateProvinceStore } from "@evc-interop/province-reference";
import { openDb } from "@evc-interop/runtime";
import {
  certificateNumber,
  dropSchema,
  newDose,
  newIdentity,
  startTestHub,
  TEST_DATABASE_URL,
  uniqueName,
} from "@evc-interop/testing";
import { exitOf, spawnChild } from "./children.js";
import { cpuPerOp, cpuSnapshot, type Figure, figure, quiet } from "./measure.js";
import { ONBOARD_RECORDS, progress, provinceProgram } from "./settings.js";
import { credentialsDir } from "./system.js";

/** Records written into the province's schema per transaction while generating. */
const WRITE_BATCH = 5000;

/**
 * Onboarding (#28 story 4): a province's schema holding ONBOARD_RECORDS records from before the
 * hub (three doses each, given in two provinces), loaded into an empty hub by the real command
 * (`evc-province onboard`, a process of its own: its CPU is its own, the hub's is this
 * process's). One run: each record can be loaded once.
 */
export async function onboardFigures(): Promise<Figure[]> {
  const env = await startTestHub({}, { workers: false });
  const dir = credentialsDir(env, ["110000"]);
  const prefix = `${uniqueName("bench_o")}_`;
  const schema = `${prefix}110000`;
  const sql = openDb({ url: TEST_DATABASE_URL, schema, max: 2, applicationName: "evc-bench" });
  try {
    await migrateProvinceStore(sql, schema);
    progress(`generating ${ONBOARD_RECORDS.toLocaleString("en")} records at the province`);
    for (let done = 0; done < ONBOARD_RECORDS; done += WRITE_BATCH) {
      const n = Math.min(WRITE_BATCH, ONBOARD_RECORDS - done);
      await insertLegacyRecords(
        sql,
        "110000",
        Array.from({ length: n }, () => ({
          recordId: crypto.randomUUID(),
          identity: newIdentity("Onboarded Child"),
          certificateNumber: certificateNumber("110000"),
          doses: [
            newDose("110000"),
            newDose("110000", { doseNumber: 2, vaccineCode: "DTaP" }),
            newDose("440000", { doseNumber: 3, vaccineCode: "MMR" }),
          ],
        })),
      );
    }
    await sql`ANALYZE`;
    await quiet({ hub: process.pid });
    progress("onboarding them into the hub (evc-province onboard)");
    const child = spawnChild(process.execPath, [provinceProgram(), "onboard"], {
      env: {
        ...process.env,
        EVC_PROVINCE_CODE: "110000",
        EVC_PROVINCE_SCHEMA_PREFIX: prefix,
        DATABASE_URL: TEST_DATABASE_URL,
        EVC_HUB_URL: env.hub.url,
        EVC_CREDENTIALS_DIR: dir,
        EVC_LOG_LEVEL: "warn",
      },
      stdio: ["ignore", "inherit", "inherit"],
    });
    const pid = child.pid ?? 0;
    const before = cpuSnapshot({ hub: process.pid, onboard: pid });
    const start = performance.now();
    let last = before;
    // The child's CPU is read while it lives (once it exits, /proc forgets it).
    const sampler = setInterval(() => {
      last = { ...cpuSnapshot({ hub: process.pid, onboard: pid }) };
    }, 250);
    try {
      await exitOf(child);
    } finally {
      clearInterval(sampler);
    }
    const seconds = (performance.now() - start) / 1000;
    if (child.exitCode !== 0) throw new Error(`evc-province onboard exited ${child.exitCode}`);
    const after = { ...cpuSnapshot({ hub: process.pid }), onboard: last.onboard ?? 0 };
    const [counts] = await sql<{ loaded: number; conflicts: number }[]>`
      SELECT count(*) FILTER (WHERE onboarding IS NULL)::int AS loaded,
        count(*) FILTER (WHERE onboarding IS NOT NULL)::int AS conflicts FROM records`;
    const [hub] = await env.hub.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM records WHERE owner_province = '110000'`;
    if (!counts || counts.loaded + counts.conflicts !== ONBOARD_RECORDS || hub?.n !== counts.loaded)
      throw new Error(
        `onboarding: the province has ${counts?.loaded} loaded and ${counts?.conflicts} left, the hub ${hub?.n} records`,
      );
    progress(`onboarding: ${seconds.toFixed(1)} s, ${counts.conflicts} conflicts`);
    // CPU seconds per 1,000 records, by process.
    const cpu = cpuPerOp(before, after, ONBOARD_RECORDS / 1000);
    return [
      figure(
        "onboard",
        `Onboarding ${ONBOARD_RECORDS.toLocaleString("en")} existing records (3 doses each) from a province's schema into an empty hub, one run (cpu_ms_* per 1,000 records)`,
        "records/s",
        [ONBOARD_RECORDS / seconds],
        { seconds, conflicts: counts.conflicts, ...cpu },
      ),
    ];
  } finally {
    await sql.end();
    await dropSchema(schema);
    await env.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
