import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { databaseUnavailable } from "./database-unavailable.js";

/** A Node.js system error as a socket raises it. */
function systemError(message: string, fields: Record<string, unknown>): Error {
  return Object.assign(new Error(message), fields);
}

describe("databaseUnavailable", () => {
  it("takes a pooled connection reset under a query for the database being unavailable", () => {
    // Seen in the hub: the server terminated a pooled connection; its next query failed so.
    const reset = systemError("read ECONNRESET", {
      errno: -104,
      code: "ECONNRESET",
      syscall: "read",
    });
    const down = databaseUnavailable(reset);
    expect([down?.code, down?.rawMessage]).toEqual([
      Code.Unavailable,
      "the database is unavailable (ECONNRESET); try again later",
    ]);
  });

  it("names a refused connection and the server's limit, and leaves other errors alone", () => {
    const refused = systemError("connect ECONNREFUSED", {
      code: "ECONNREFUSED",
      address: "127.0.0.1",
      port: 5432,
    });
    expect(databaseUnavailable(refused)?.rawMessage).toMatch(/\(ECONNREFUSED\)/);
    const limit = Object.assign(new Error("too many connections"), {
      name: "PostgresError",
      code: "53300",
    });
    expect(databaseUnavailable(new Error("wrapped", { cause: limit }))?.code).toBe(
      Code.Unavailable,
    );
    // A code alone, from nowhere in particular, is not the database's.
    expect(databaseUnavailable(systemError("reset", { code: "ECONNRESET" }))).toBeUndefined();
    expect(
      databaseUnavailable(
        Object.assign(new Error("dup"), { name: "PostgresError", code: "23505" }),
      ),
    ).toBeUndefined();
  });
});
