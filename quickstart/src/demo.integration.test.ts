import type { Province } from "@evc-interop/province-reference";
import {
  closeTestProvince,
  startTestHub,
  startTestProvince,
  type TestHubEnv,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runDemo } from "./demo.js";

let env: TestHubEnv;
const provinces: Province[] = [];

beforeAll(async () => {
  env = await startTestHub();
  for (const code of ["110000", "440000", "510000"])
    provinces.push(await startTestProvince(env, code));
});

afterAll(async () => {
  for (const p of provinces) await closeTestProvince(p);
  await env?.close();
});

describe("the quick-start demo", () => {
  it("plays both scenarios and ends with every invariant holding", async () => {
    const lines: string[] = [];
    const results = await runDemo(env.hub, provinces, (l) => lines.push(l));
    expect(results.map((r) => [r.id, r.ok])).toEqual([
      ["I1", true],
      ["I2", true],
      ["I3", true],
      ["I4", true],
      ["I6", true],
    ]);
    const text = lines.join("\n");
    // The resident ID after the birth certificate: one person, the same record and certificate.
    expect(text).toMatch(/linked to the same person; record the same, certificate the same/);
    expect(text).toMatch(/→ directive appendDose to 110000/);
    expect(text).toMatch(/→ directive suspendForMigration to 110000/);
    expect(text).toMatch(/→ directive activateMigratedRecord to 510000/);
    expect(text).toMatch(/\[phone\] 110000-\S+ is SUSPENDED/);
    expect(text).toMatch(/migration COMPLETED; owner now 510000/);
    // The death after the migration revokes the former owner's certificate too, and the phone
    // still watching it is told.
    expect(text).toMatch(/→ directive revokeCertificate to 110000/);
    expect(text).toMatch(/\[phone\] 110000-\S+ is REVOKED/);
    expect(text).toMatch(/certificate 510000-\S+ is REVOKED; .*certificate 110000-\S+ is REVOKED/);
    expect(text).toMatch(/after one reconciliation pass \(0 repairs\)/);
  });
});
