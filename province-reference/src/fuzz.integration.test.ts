import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { AccessLogService } from "@evc-interop/gen/evc/province/v1/access_log_service_pb";
import { ClinicService } from "@evc-interop/gen/evc/province/v1/clinic_service_pb";
import { ProvinceService } from "@evc-interop/gen/evc/province/v1/province_service_pb";
import { bearer, issueReaderToken } from "@evc-interop/runtime";
import {
  closeTestProvince,
  controlTransport,
  fuzzServices,
  startTestHub,
  startTestProvince,
  type TestHubEnv,
  testReaderIssuer,
  transport,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Province } from "./province.js";

/** Bad input to every RPC of a province is the caller's fault, never the province's (#14). */
let env: TestHubEnv;
let bj: Province;

beforeAll(async () => {
  env = await startTestHub();
  bj = await startTestProvince(env, "110000", { readMaxBytes: 4 * 1024 * 1024 });
});

afterAll(async () => {
  if (bj) await closeTestProvince(bj);
  await env?.close();
});

describe("bad input to a province", () => {
  it("every RPC of the public port and of the control port: fuzzed messages and malformed bodies are never Internal", async () => {
    // A caller with every scope, so that each method gets past authorization to the input.
    const token = await issueReaderToken((await testReaderIssuer()).privateJwk, {
      province: bj.code,
      caller: "clinic:fuzz",
      scope: "records:read records:write access-log:read",
      lifetimeS: 600,
    });
    const publicPort = await fuzzServices({
      services: [ProvinceService, ClinicService, AccessLogService],
      transport: transport(bj.url, [bearer(token)]),
      baseUrl: bj.url,
      authHeaders: { authorization: `Bearer ${token}` },
      perMethod: 40,
      seed: 7,
    });
    const controlPort = await fuzzServices({
      services: [ControlService],
      transport: controlTransport(bj),
      baseUrl: bj.controlUrl,
      authHeaders: { authorization: `Bearer ${bj.config.controlToken}` },
      perMethod: 40,
      seed: 8,
    });
    expect(publicPort.calls + controlPort.calls).toBeGreaterThan(500);
    expect([...publicPort.faults, ...controlPort.faults]).toEqual([]);
  }, 120_000);
});
