import { openDb } from "@evc-interop/runtime";
import type { Sql } from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dropSchema, TEST_DATABASE_URL, uniqueName } from "../pg.js";
import { snapshotFindings } from "./snapshot.js";

// The hub's constraints keep its snapshot from ever breaking I1 or I2; a copy of its two
// tables without them shows that the check sees a break when there is one.
describe("snapshotFindings", () => {
  const schema = uniqueName("oracle_snap");
  let sql: Sql;
  beforeAll(async () => {
    sql = openDb({ url: TEST_DATABASE_URL, schema, max: 2 });
    await sql`CREATE SCHEMA ${sql(schema)}`;
    await sql`CREATE TABLE records (person_key text, status text)`;
    await sql`CREATE TABLE certificates (person_key text, status text)`;
  });
  afterAll(async () => {
    await sql.end();
    await dropSchema(schema);
  });

  it("finds nothing in a snapshot that keeps I1 and I2, and names each break", async () => {
    await sql`INSERT INTO records VALUES ('p-one', 'ACTIVE'), ('p-one', 'CLOSED'), ('p-two', 'MIGRATED_OUT')`;
    await sql`INSERT INTO certificates VALUES ('p-one', 'NORMAL'), ('p-one', 'REVOKED')`;
    expect(await snapshotFindings(sql)).toEqual([]);

    await sql`INSERT INTO records VALUES ('p-two', 'ACTIVE')`;
    await sql`INSERT INTO certificates VALUES ('p-one', 'NORMAL')`;
    expect(await snapshotFindings(sql)).toEqual([
      { rule: "I1", detail: "person p-two…: 2 open records in the hub snapshot" },
      { rule: "I2", detail: "person p-one…: 2 NORMAL certificates in the hub snapshot" },
    ]);
  });
});
