import { canClone, connectionOf, openConnection, ownConnection } from "@evc-interop/runtime";
import { TEST_DATABASE_URL } from "@evc-interop/testing";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";

/**
 * Worker threads (verification, rebuild) connect from a copy of the pool's options: the copy
 * must connect the way the pool does — same TLS mode — or the pool must not be copied.
 */
const opened: postgres.Sql[] = [];
function pool(url: string, extra: postgres.Options<Record<string, postgres.PostgresType>> = {}) {
  const sql = postgres(url, { max: 1, onnotice: () => {}, ...extra });
  opened.push(sql);
  return sql;
}

afterAll(async () => {
  await Promise.all(opened.map((s) => s.end({ timeout: 1 })));
});

const withMode = (mode: string) =>
  `${TEST_DATABASE_URL}${TEST_DATABASE_URL.includes("?") ? "&" : "?"}sslmode=${mode}`;

describe("connection options for workers", () => {
  it("keeps the URL's sslmode, so a worker does not fall back to plain text", () => {
    expect(connectionOf(pool(withMode("require"))).ssl).toBe("require");
    expect(connectionOf(pool(withMode("verify-full"))).ssl).toBe("verify-full");
    expect(canClone(pool(withMode("require")))).toBe(true);
  });

  it("does not copy a pool whose password is a function or whose TLS options are an object", () => {
    expect(canClone(pool(TEST_DATABASE_URL, { pass: () => "secret" }))).toBe(false);
    expect(canClone(pool(TEST_DATABASE_URL, { ssl: { rejectUnauthorized: true } }))).toBe(false);
    expect(canClone(pool(TEST_DATABASE_URL))).toBe(true);
  });

  it("connects from the copied options, and from this thread with the pool's own", async () => {
    const sql = pool(withMode("prefer"));
    for (const own of [openConnection(connectionOf(sql)), ownConnection(sql)]) {
      opened.push(own);
      const [row] = await own<{ one: number }[]>`SELECT 1 AS one`;
      expect(row?.one).toBe(1);
    }
  });
});
