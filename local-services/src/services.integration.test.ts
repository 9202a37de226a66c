import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DEFAULT_LAYOUT,
  freePort,
  natsAccountsConfig,
  natsCredentials,
  newNkeyUser,
} from "@evc-interop/runtime";
import { connect } from "@nats-io/transport-node";
import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { ensureNats, ensurePostgres } from "./services.js";

const TEST_DATABASE_URL =
  process.env.EVC_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

describe("ensurePostgres", () => {
  it("uses the configured PostgreSQL when it answers, and starts nothing", async () => {
    const pg = await ensurePostgres(TEST_DATABASE_URL, "/nonexistent");
    expect(pg.url).toBe(TEST_DATABASE_URL);
    expect(pg.note).toMatch(/^PostgreSQL: using /);
    await pg.stop();
  });

  it("starts an embedded PostgreSQL where nothing answers, and removes it on stop", async () => {
    const nothing = `postgres://postgres:secret@127.0.0.1:${await freePort()}/postgres`;
    const pg = await ensurePostgres(nothing, "/tmp");
    try {
      expect(pg.url).not.toBe(nothing);
      expect(pg.note).toMatch(/nothing answered at .*started an embedded PostgreSQL/);
      expect(pg.note).not.toContain("secret");
      const sql = postgres(pg.url, { max: 1, onnotice: () => {} });
      const [row] = await sql<{ one: number }[]>`SELECT 1 AS one`;
      expect(row?.one).toBe(1);
      await sql.end();
    } finally {
      await pg.stop();
    }
    const dir = /data in (\S+)/.exec(pg.note)?.[1] ?? "";
    expect(dir).not.toBe("");
    expect(existsSync(dir)).toBe(false);
  }, 120_000);

  it("run as root, names the folder the user postgres cannot enter instead of crashing", async () => {
    const closed = mkdtempSync(join(tmpdir(), "evc-closed-")); // mode 0700
    const nothing = `postgres://postgres@127.0.0.1:${await freePort()}/postgres`;
    try {
      if (process.getuid?.() === 0) {
        await expect(ensurePostgres(nothing, join(closed, "data"))).rejects.toThrow(
          new RegExp(`runs as the user postgres, which cannot enter ${closed} \\(mode 700\\)`),
        );
      } else {
        // Not root: PostgreSQL runs as this user, who may enter its own folder.
        const pg = await ensurePostgres(nothing, join(closed, "data"));
        await pg.stop();
      }
    } finally {
      rmSync(closed, { recursive: true, force: true });
    }
  }, 120_000);
});

describe("ensureNats", () => {
  it("starts a nats-server that lets in its users only, with the rights their accounts give", async () => {
    const hub = newNkeyUser();
    const province = newNkeyUser();
    const layout = { ...DEFAULT_LAYOUT, stream: "EVC_LOCAL_T", subjectPrefix: "evc.local.t" };
    const accounts = natsAccountsConfig(layout, [
      { user: "hub", nkey: hub.nkey },
      { user: "province-110000", nkey: province.nkey, province: "110000" },
    ]);
    const nats = await ensureNats(undefined, accounts, "kit.nats_url");
    try {
      await expect(connect({ servers: nats.url, reconnect: false })).rejects.toThrow(
        /Authorization/i,
      );
      const stranger = newNkeyUser();
      await expect(
        connect({
          servers: nats.url,
          reconnect: false,
          ...natsCredentials({ natsUser: "", natsPassword: "", natsNkeySeed: stranger.seed }),
        }),
      ).rejects.toThrow(/Authorization/i);
      const nc = await connect({
        servers: nats.url,
        ...natsCredentials({ natsUser: "", natsPassword: "", natsNkeySeed: hub.seed }),
      });
      await nc.flush();
      await nc.close();
    } finally {
      await nats.stop();
    }
  });

  it("uses the bus the user named, naming the setting", async () => {
    const nats = await ensureNats("nats://example.invalid:4222", "", "kit.nats_url");
    expect(nats.url).toBe("nats://example.invalid:4222");
    expect(nats.note).toBe("NATS: using nats://example.invalid:4222 (kit.nats_url)");
  });
});
