import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { ProvinceService } from "@evc-interop/gen/evc/province/v1/province_service_pb";
import { fuzzServices } from "@evc-interop/national/testing/fuzz-rpc";
import { startTestHub, type TestHubEnv } from "@evc-interop/national/testing/harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Province } from "./province.js";
import { closeTestProvince, controlTransport, startTestProvince } from "./testing/provinces.js";

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
  it("every RPC of ProvinceService and ControlService: fuzzed messages and malformed bodies are never Internal", async () => {
    const result = await fuzzServices({
      services: [ProvinceService, ControlService],
      transport: controlTransport(bj),
      baseUrl: bj.url,
      authHeaders: { authorization: `Bearer ${bj.config.controlToken}` },
      perMethod: 40,
      seed: 7,
    });
    expect(result.calls).toBeGreaterThan(300);
    expect(result.faults).toEqual([]);
  }, 120_000);
});
