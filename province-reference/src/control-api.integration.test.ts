import { createClient } from "@connectrpc/connect";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import {
  closeTestProvince,
  codeOf,
  controlTransport,
  newIdentity,
  startTestHub,
  startTestProvince,
  type TestHubEnv,
  transport,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Province } from "./province.js";

/** The province's write surface is closed by default (#15, part 5). */
let env: TestHubEnv;
const running: Province[] = [];

beforeAll(async () => {
  env = await startTestHub();
});

afterAll(async () => {
  for (const p of running) await closeTestProvince(p);
  await env?.close();
});

describe("the control API", () => {
  it("is not served at all without EVC_CONTROL_TOKEN", async () => {
    const p = await startTestProvince(env, "110000", { controlToken: "" });
    running.push(p);
    const control = createClient(ControlService, transport(p.url));
    expect(await codeOf(control.registerRecord({ identity: newIdentity() }))).toBe("Unimplemented");
    expect(await codeOf(control.getFeatures({}))).toBe("Unimplemented");
    expect(() => p.controlUrl).toThrow(/control API is off/);
  });

  it("with a token, listens on a port of its own, never beside the public API", async () => {
    const p = await startTestProvince(env, "510000");
    running.push(p);
    expect(p.controlUrl).not.toBe(p.url);
    const atPublicPort = createClient(
      ControlService,
      transport(p.url, [
        (next) => async (req) => {
          req.header.set("authorization", `Bearer ${p.config.controlToken}`);
          return next(req);
        },
      ]),
    );
    expect(await codeOf(atPublicPort.getFeatures({}))).toBe("Unimplemented");
  });

  it("with a token, answers only callers presenting it", async () => {
    const p = await startTestProvince(env, "440000");
    running.push(p);
    const bare = createClient(ControlService, transport(p.controlUrl));
    expect(await codeOf(bare.registerRecord({ identity: newIdentity() }))).toBe("Unauthenticated");
    const wrong = createClient(
      ControlService,
      transport(p.controlUrl, [
        (next) => async (req) => {
          req.header.set("authorization", "Bearer not-the-token");
          return next(req);
        },
      ]),
    );
    expect(await codeOf(wrong.closeRecord({ recordId: "x", reason: 3 }))).toBe("Unauthenticated");
    const rows = await p.sql`SELECT 1 FROM records`;
    expect(rows.length).toBe(0);
    const right = createClient(ControlService, controlTransport(p));
    expect(await codeOf(right.getFeatures({}))).toBe("OK");
  });
});
