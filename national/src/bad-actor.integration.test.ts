import type { DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { AUDIENCE, generateCredential } from "@evc-interop/runtime";
import {
  FuzzRandom,
  fuzzMessage,
  HUB_SERVICES,
  startTestHub,
  type TestHubEnv,
  transport,
} from "@evc-interop/testing";
import { importJWK, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * Bad actors at every RPC of the hub (#15, part 9, the hub's half): missing, garbage, expired,
 * over-age, untrusted-key, `alg: none` and other-audience credentials are all Unauthenticated,
 * and nothing is written.
 */
let env: TestHubEnv;

beforeAll(async () => {
  env = await startTestHub();
});

afterAll(async () => {
  await env?.close();
});

const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");

/** Authorization headers a bad actor might send, by name. */
async function badCredentials(): Promise<Record<string, string | undefined>> {
  const own = env.creds.credential("province:110000");
  const key = await importJWK(own.privateJwk, "EdDSA");
  const now = Math.floor(Date.now() / 1000);
  const sign = (iat: number, exp: number, aud = AUDIENCE, signer = key) =>
    new SignJWT({})
      .setProtectedHeader({ alg: "EdDSA", kid: "province:110000" })
      .setSubject("province:110000")
      .setAudience(aud)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .sign(signer);
  const intruder = await generateCredential("province:110000");
  return {
    missing: undefined,
    garbage: "Bearer not-a-token",
    "not bearer": `Basic ${Buffer.from("a:b").toString("base64")}`,
    expired: `Bearer ${await sign(now - 600, now - 60)}`,
    "over-age": `Bearer ${await sign(now - 20 * 60, now + 3600)}`,
    "untrusted key": `Bearer ${await sign(now, now + 60, AUDIENCE, await importJWK(intruder.credential.privateJwk, "EdDSA"))}`,
    "alg none": `Bearer ${b64({ alg: "none", kid: "province:110000" })}.${b64({ sub: "province:110000", aud: AUDIENCE, iat: now, exp: now + 60 })}.`,
    "other audience": `Bearer ${await sign(now, now + 60, "another-service")}`,
  };
}

describe("bad actors at the hub", () => {
  it("every RPC refuses every bad credential with Unauthenticated, and nothing is written", async () => {
    const [before] = await env.hub.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM events`;
    const creds = await badCredentials();
    const rnd = new FuzzRandom(11);
    let attempts = 0;
    const accepted: string[] = [];
    // An answer to a bad credential is a disclosure, whatever it holds.
    const disclosures: string[] = [];
    for (const [name, header] of Object.entries(creds)) {
      const auth: Interceptor = (next) => async (req) => {
        if (header) req.header.set("authorization", header);
        return next(req);
      };
      for (const service of HUB_SERVICES) {
        const client = createClient(service, transport(env.hub.url, [auth])) as unknown as Record<
          string,
          (req: unknown) => unknown
        >;
        for (const method of service.methods) {
          attempts += 1;
          const input = fuzzMessage(method.input as DescMessage, rnd);
          const code = await (async () => {
            try {
              const call = client[method.localName]?.(input);
              if (method.methodKind === "server_streaming") {
                for await (const _ of call as AsyncIterable<unknown>) break;
              } else await call;
              return "ok";
            } catch (err) {
              return Code[ConnectError.from(err).code];
            }
          })();
          if (code !== "Unauthenticated")
            accepted.push(`${name} → ${service.typeName}/${method.name}: ${code}`);
          if (code === "ok") disclosures.push(`${name} → ${service.typeName}/${method.name}`);
        }
      }
    }
    const [after] = await env.hub.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM events`;
    console.log(
      `bad actors at the hub: ${attempts} attempts, ${attempts - accepted.length} refused, ${disclosures.length} disclosures, ${(after?.n ?? 0) - (before?.n ?? 0)} writes`,
    );
    expect(accepted).toEqual([]);
    expect(disclosures).toEqual([]);
    expect(after?.n).toBe(before?.n);
  });
});
