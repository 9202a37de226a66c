import { Writable } from "node:stream";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { IdentitySchema, IdType, Sex } from "@evc-interop/gen/evc/common/v1/identity_pb";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { ProvinceService } from "@evc-interop/gen/evc/province/v1/province_service_pb";
import type { Province } from "@evc-interop/province-reference";
import { residentId } from "@evc-interop/runtime";
import {
  closeTestProvince,
  controlTransport,
  newDose,
  readerTransport,
  startTestHub,
  startTestProvince,
  type TestHubEnv,
} from "@evc-interop/testing";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runDemo } from "./demo.js";

/**
 * No child's name or ID number in any log line (#15, part 6): the hub's and the provinces'
 * logs at debug level, through a full demo run and a run of bad inputs, are searched for them.
 */
const lines: string[] = [];
const sink = new Writable({
  write(chunk: Buffer, _enc, done) {
    lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
    done();
  },
});
const logger = pino({ level: "debug" }, sink);
let env: TestHubEnv;
const provinces: Province[] = [];

beforeAll(async () => {
  env = await startTestHub({}, { logger });
  for (const code of ["110000", "440000", "510000"])
    provinces.push(await startTestProvince(env, code, {}, { logger }));
});

afterAll(async () => {
  for (const p of provinces) await closeTestProvince(p);
  await env?.close();
});

describe("personal data in logs", () => {
  it("a demo run and bad inputs leave no child's name or ID number in any log line", async () => {
    const printed: string[] = [];
    await runDemo(env.hub, provinces, (l) => printed.push(l));
    const demoId = /resident ID (\d{17}[\dX])/.exec(printed.join("\n"))?.[1];
    expect(demoId).toBeDefined();

    const [bj, gd] = provinces as [Province, Province];
    const child = create(IdentitySchema, {
      idType: IdType.RESIDENT_ID,
      idNumber: residentId("11010120200101234"),
      name: "Zhao Xiaohong",
      birthDate: timestampFromDate(new Date("2020-01-01T00:00:00Z")),
      sex: Sex.FEMALE,
    });
    const control = (p: Province) => createClient(ControlService, controlTransport(p));
    const attempts = [
      control(bj).registerRecord({ identity: child, doses: [newDose("110000")] }),
      control(bj).registerRecord({ identity: child }), // again: AlreadyExists
      control(gd).registerRecord({ identity: child }), // elsewhere: AlreadyExists
      control(gd).registerRecord({ identity: { ...child, idNumber: "110101202001012340" } }), // bad check character
      control(gd).registerRecord({ identity: { ...child, name: "Zhao\u0000Xiaohong" } }),
      control(gd).recordDose({
        identity: { ...child, idNumber: residentId("11010120200101999") },
        dose: newDose("440000"),
      }),
      control(gd).migrateIn({ identity: child }),
      control(gd).migrateIn({ identity: child }), // while one is open
      createClient(ProvinceService, readerTransport(bj)).getCertificateStatusByIdentity({
        identity: child,
      }),
    ];
    await Promise.allSettled(attempts);
    await new Promise((r) => setTimeout(r, 500));

    // The refusals of the bad inputs reached the logs (so the search below had material).
    expect(lines.filter((l) => l.includes('"request refused"')).length).toBeGreaterThan(1);
    const secrets = [
      demoId ?? "",
      "Wang Xiaoming",
      child.idNumber,
      "Zhao Xiaohong",
      "Xiaohong",
      "110101202001012340",
    ];
    const leaks = lines.filter((l) => secrets.some((s) => s && l.includes(s)));
    expect(leaks).toEqual([]);
  });
});
