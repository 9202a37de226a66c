import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { CertificateService } from "@evc-interop/gen/evc/national/v1/certificate_service_pb";
import { startTestHub, TestCredentials, type TestHubEnv } from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/** Keys that can change: the hub reloads its trust file without a restart (#15, part 8). */
let env: TestHubEnv;
let dir: string;
let trustFile: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "evc-trust-"));
  trustFile = join(dir, "trust.json");
  // The hub reads (and watches) the file instead of being handed the keys. It starts with keys
  // of no caller; the harness's own credentials arrive by the reload this test is about.
  const bootstrap = await TestCredentials.create(["operator:bootstrap"]);
  writeFileSync(trustFile, JSON.stringify(bootstrap.trust));
  env = await startTestHub({ trustFile, trustReloadMs: 100 }, { trust: undefined });
  writeFileSync(trustFile, JSON.stringify(env.creds.trust));
});

afterAll(async () => {
  await env?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function codeAs(subject: string): Promise<string> {
  try {
    await env
      .client(CertificateService, subject)
      .getCertificateStatus({ certificateNumber: "110000-ABCDEF123456" });
    return "ok";
  } catch (err) {
    return Code[ConnectError.from(err).code];
  }
}

async function eventually(subject: string, code: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await codeAs(subject)) === code) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(await codeAs(subject)).toBe(code);
}

describe("the hub's trust file", () => {
  it("is reloaded: a revoked province key is refused without a restart, and can come back", async () => {
    await eventually("province:440000", "NotFound");
    const revoked = {
      keys: env.creds.trust.keys.filter((k) => k.kid !== "province:440000"),
    };
    writeFileSync(trustFile, JSON.stringify(revoked));
    await eventually("province:440000", "Unauthenticated");
    expect(await codeAs("province:110000")).toBe("NotFound");
    writeFileSync(trustFile, JSON.stringify(env.creds.trust));
    await eventually("province:440000", "NotFound");
  });

  it("keeps the keys in force when the file does not parse", async () => {
    writeFileSync(trustFile, "{ not json");
    await new Promise((r) => setTimeout(r, 300));
    expect(await codeAs("province:110000")).toBe("NotFound");
    writeFileSync(trustFile, JSON.stringify(env.creds.trust));
  });
});
