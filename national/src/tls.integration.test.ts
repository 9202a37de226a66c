import { ConfigError, openDb } from "@evc-interop/runtime";
import { makeTestPki, TEST_DATABASE_URL } from "@evc-interop/testing";
import { describe, expect, it } from "vitest";
import { hubConfigFromEnv } from "./config.js";

describe("TLS settings", () => {
  it("HTTPS and mutual TLS come from EVC_TLS_*; a half-given pair is an error naming both", () => {
    const pki = makeTestPki();
    try {
      const files = { EVC_TLS_CERT: pki.serverCertFile, EVC_TLS_KEY: pki.serverKeyFile };
      expect(hubConfigFromEnv({}).tls).toBeUndefined();
      expect(hubConfigFromEnv(files).tls?.clientCa).toBeUndefined();
      expect(hubConfigFromEnv({ ...files, EVC_TLS_CLIENT_CA: pki.caFile }).tls?.clientCa).toEqual(
        pki.ca,
      );
      expect(() => hubConfigFromEnv({ EVC_TLS_CERT: pki.serverCertFile })).toThrow(
        /EVC_TLS_CERT and EVC_TLS_KEY/,
      );
      expect(() => hubConfigFromEnv({ EVC_TLS_CLIENT_CA: pki.caFile })).toThrow(ConfigError);
      expect(() => hubConfigFromEnv({ ...files, EVC_TLS_KEY: "/nonexistent" })).toThrow(
        /EVC_TLS_KEY: cannot read \/nonexistent/,
      );
      expect(hubConfigFromEnv({ EVC_NATS_CA: pki.caFile }).natsTls).toEqual({
        caFile: pki.caFile,
      });
    } finally {
      pki.remove();
    }
  });

  it("sslmode in DATABASE_URL is honoured: TLS required of a server without it fails at once", async () => {
    const url = new URL(TEST_DATABASE_URL);
    url.searchParams.set("sslmode", "require");
    const sql = openDb({ url: url.toString(), schema: "public", max: 1 });
    const plain = openDb({ url: TEST_DATABASE_URL, schema: "public", max: 1 });
    const [ssl] = await plain<{ ssl: string }[]>`SHOW ssl`;
    await plain.end({ timeout: 1 });
    try {
      if (ssl?.ssl === "on") await expect(sql`SELECT 1`).resolves.toHaveLength(1);
      else await expect(sql`SELECT 1`).rejects.toThrow(/TLS|SSL/i);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });
});
