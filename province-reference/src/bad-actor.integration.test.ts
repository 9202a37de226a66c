import { type DescMessage, type DescService, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { DirectiveSchema } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import { AccessLogService } from "@evc-interop/gen/evc/province/v1/access_log_service_pb";
import { ClinicService } from "@evc-interop/gen/evc/province/v1/clinic_service_pb";
import { ProvinceService } from "@evc-interop/gen/evc/province/v1/province_service_pb";
import {
  generateReaderIssuer,
  generateSigningKey,
  issueReaderToken,
  provinceSubject,
  readerAudience,
  SIGNATURE_HEADER,
} from "@evc-interop/runtime";
import {
  activateDirective,
  closeTestProvince,
  controlTransport,
  FuzzRandom,
  fuzzMessage,
  newIdentity,
  startTestHub,
  startTestProvince,
  type TestHubEnv,
  testReaderIssuer,
  transport,
} from "@evc-interop/testing";
import { jetstream } from "@nats-io/jetstream";
import { connect, headers } from "@nats-io/transport-node";
import { importJWK, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Province } from "./province.js";

/**
 * Bad actors at every guarded RPC of the reference province and on its bus (#15, part 9, the
 * province's half): missing, garbage, expired, over-age, untrusted-key, `alg: none`,
 * other-province and wrong-scope credentials are refused (Unauthenticated or PermissionDenied)
 * with no write and no disclosure; forged directives are dead-lettered, never applied.
 */
let env: TestHubEnv;
let bj: Province;
const BJ = "110000";
const child = newIdentity("Bad Actor Target");
let target: { recordId: string; certificateNumber: string };

beforeAll(async () => {
  env = await startTestHub();
  bj = await startTestProvince(env, BJ);
  target = await createClient(ControlService, controlTransport(bj)).registerRecord({
    identity: child,
  });
});

afterAll(async () => {
  if (bj) await closeTestProvince(bj);
  await env?.close();
});

const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");

/** Authorization headers a bad actor might send, by name. */
async function badCredentials(): Promise<Record<string, string | undefined>> {
  const { privateJwk } = await testReaderIssuer();
  const key = await importJWK(privateJwk, "EdDSA");
  const now = Math.floor(Date.now() / 1000);
  const sign = (
    iat: number,
    exp: number,
    claims: Record<string, string> = { scope: "records:read" },
    aud = readerAudience(BJ),
    signer = key,
  ) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: "EdDSA", kid: privateJwk.kid ?? "" })
      .setSubject("clinic:intruder")
      .setAudience(aud)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .sign(signer);
  const intruder = await generateReaderIssuer(privateJwk.kid ?? "");
  return {
    missing: undefined,
    garbage: "Bearer not-a-token",
    "not bearer": `Basic ${Buffer.from("a:b").toString("base64")}`,
    expired: `Bearer ${await sign(now - 600, now - 60)}`,
    "over-age": `Bearer ${await sign(now - 20 * 60, now + 3600)}`,
    "untrusted key": `Bearer ${await sign(now, now + 60, undefined, undefined, await importJWK(intruder.privateJwk, "EdDSA"))}`,
    "alg none": `Bearer ${b64({ alg: "none", kid: privateJwk.kid })}.${b64({ sub: "clinic:intruder", aud: readerAudience(BJ), scope: "records:read access-log:read", iat: now, exp: now + 60 })}.`,
    "other province": `Bearer ${await sign(now, now + 60, undefined, readerAudience("440000"))}`,
    "wrong scope (holder of another record)": `Bearer ${await issueReaderToken(privateJwk, { province: BJ, caller: "app:intruder", scope: "holder:read", record: "someone-else" })}`,
    "wrong scope (none)": `Bearer ${await sign(now, now + 60, { scope: "" })}`,
  };
}

/** Counts rows a refused call must not have changed. */
async function writes(): Promise<number> {
  const [r] = await bj.sql<{ n: number }[]>`
    SELECT (SELECT count(*) FROM records) + (SELECT count(*) FROM doses)
         + (SELECT count(*) FROM certificates) + (SELECT count(*) FROM hub_intents)
         + (SELECT count(*) FROM inbox) AS n`;
  return Number(r?.n ?? 0);
}

/** A call's answer (or error), as text a disclosure would show up in. */
async function answer(
  client: Record<string, (req: unknown) => unknown>,
  method: DescService["methods"][number],
  input: unknown,
): Promise<{ code: string; text: string }> {
  try {
    const call = client[method.localName]?.(input);
    let text = "";
    if (method.methodKind === "server_streaming") {
      for await (const m of call as AsyncIterable<unknown>) {
        text += JSON.stringify(m, (_, v) => (typeof v === "bigint" ? String(v) : v));
        break;
      }
    } else text = JSON.stringify(await call, (_, v) => (typeof v === "bigint" ? String(v) : v));
    return { code: "ok", text };
  } catch (err) {
    const ce = ConnectError.from(err);
    return { code: Code[ce.code] ?? "?", text: ce.rawMessage };
  }
}

describe("bad actors at the province", () => {
  it("every guarded RPC refuses every bad credential, disclosing nothing and writing nothing", async () => {
    const before = await writes();
    const creds = await badCredentials();
    const rnd = new FuzzRandom(21);
    const secrets = [child.idNumber, child.name, target.recordId];
    // Real inputs for the reads (what an attacker wants), random ones besides.
    const realInputs: Record<string, unknown> = {
      getRecord: { recordId: target.recordId },
      getCertificateStatusByIdentity: { identity: child },
      listReads: { recordId: target.recordId },
      registerRecord: { identity: newIdentity() },
      registerBirth: { identity: newIdentity() },
      closeRecord: { recordId: target.recordId, reason: 3 },
    };
    const all = (s: DescService) => s.methods.map((m) => m.localName);
    const guarded: [DescService, string[], string][] = [
      [ProvinceService, ["getRecord", "getCertificateStatusByIdentity"], bj.url],
      [AccessLogService, all(AccessLogService), bj.url],
      [ClinicService, all(ClinicService), bj.url],
      [ControlService, all(ControlService), bj.controlUrl],
    ];
    let attempts = 0;
    const notRefused: string[] = [];
    const disclosures: string[] = [];
    for (const [name, header] of Object.entries(creds)) {
      const auth: Interceptor = (next) => async (req) => {
        if (header) req.header.set("authorization", header);
        return next(req);
      };
      for (const [service, methods, url] of guarded) {
        const client = createClient(service, transport(url, [auth])) as unknown as Record<
          string,
          (req: unknown) => unknown
        >;
        for (const method of service.methods.filter((m) => methods.includes(m.localName))) {
          // A holder token may call the reads (for its own record): only the real inputs,
          // someone else's record, are a bad actor's; a malformed request is InvalidArgument.
          const holder = name.startsWith("wrong scope (holder");
          for (const input of [
            realInputs[method.localName],
            holder ? undefined : fuzzMessage(method.input as DescMessage, rnd),
          ]) {
            if (input === undefined) continue;
            attempts += 1;
            const { code, text } = await answer(client, method, input);
            const where = `${name} → ${service.typeName}/${method.name}`;
            if (code !== "Unauthenticated" && code !== "PermissionDenied")
              notRefused.push(`${where}: ${code}`);
            if (secrets.some((s) => text.includes(s))) disclosures.push(where);
          }
        }
      }
    }
    const written = (await writes()) - before;
    console.log(
      `bad actors at the province: ${attempts} attempts, ${attempts - notRefused.length} refused, ${disclosures.length} disclosures, ${written} writes`,
    );
    expect(notRefused).toEqual([]);
    expect(disclosures).toEqual([]);
    expect(written).toBe(0);
  });

  it("forged directives on the bus are dead-lettered and alarmed, never applied", async () => {
    const nc = await connect({ servers: env.config.natsUrl });
    try {
      const js = jetstream(nc);
      const subject = provinceSubject(
        { ...env.config, duplicateWindowMs: env.config.duplicateWindowMs },
        BJ,
      );
      const intruder = generateSigningKey("intruder");
      const forged: [string, Uint8Array, string | undefined][] = [];
      for (const what of ["unsigned", "foreign key", "altered", "hub key id, foreign key"]) {
        const d = activateDirective(BJ, "Forged Child");
        const bytes = toBinary(DirectiveSchema, d);
        const other = toBinary(DirectiveSchema, { ...d, recordId: crypto.randomUUID() });
        const sig =
          what === "unsigned"
            ? undefined
            : what === "foreign key"
              ? intruder.sign(bytes)
              : what === "altered"
                ? env.signer.sign(other)
                : generateSigningKey(env.signer.jwk.kid).sign(bytes); // the hub's key id, not its key
        forged.push([d.recordId, bytes, sig]);
      }
      const forgedBefore = await forgedCount();
      for (const [, bytes, sig] of forged) {
        const h = headers();
        if (sig) h.set(SIGNATURE_HEADER, sig);
        await js.publish(subject, bytes, { headers: h });
      }
      const deadLettered = async () => {
        const [r] = await bj.sql<{ n: number }[]>`
          SELECT count(*)::int AS n FROM poison WHERE reason LIKE 'not signed by the hub%'`;
        return r?.n ?? 0;
      };
      // The alarm (metric) is raised before the dead letter is stored: wait for both.
      const deadline = Date.now() + 10_000;
      while (
        ((await forgedCount()) - forgedBefore < forged.length ||
          (await deadLettered()) < forged.length) &&
        Date.now() < deadline
      )
        await new Promise((r) => setTimeout(r, 100));
      const applied = await bj.sql`
        SELECT record_id FROM records WHERE record_id IN ${bj.sql(forged.map(([id]) => id))}`;
      console.log(
        `forged directives on the bus: ${forged.length} published, ${(await forgedCount()) - forgedBefore} refused, ${applied.length} applied`,
      );
      expect(applied).toHaveLength(0);
      expect((await forgedCount()) - forgedBefore).toBe(forged.length);
      expect(await deadLettered()).toBe(forged.length);
    } finally {
      await nc.close();
    }
  });
});

async function forgedCount(): Promise<number> {
  const m = await bj.metrics.registry
    .getSingleMetric("evc_province_directives_forged_total")
    ?.get();
  return m?.values[0]?.value ?? 0;
}
