import {
  fuzzServices,
  HUB_SERVICES,
  startTestHub,
  type TestHubEnv,
  transport,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/** Bad input to every RPC of the hub is the caller's fault, never the server's (#14). */
let env: TestHubEnv;

beforeAll(async () => {
  env = await startTestHub({ readMaxBytes: 4 * 1024 * 1024 });
});

afterAll(async () => {
  await env?.close();
});

describe("bad input to the hub", () => {
  for (const subject of ["province:110000", "operator:ops"]) {
    it(`every RPC, as ${subject}: fuzzed messages and malformed bodies are never Internal`, async () => {
      const result = await fuzzServices({
        services: HUB_SERVICES,
        transport: transport(env.hub.url, [env.creds.auth(subject)]),
        baseUrl: env.hub.url,
        authHeaders: { authorization: `Bearer ${await env.creds.token(subject)}` },
        perMethod: 40,
        seed: subject.length,
      });
      expect(result.calls).toBeGreaterThan(500);
      expect(result.faults).toEqual([]);
    }, 120_000);
  }
});
