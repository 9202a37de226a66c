import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { RecordContentsSchema } from "@evc-interop/gen/evc/common/v1/record_pb";
import {
  type Directive,
  DirectiveSchema,
  ReceiptOutcome,
} from "@evc-interop/gen/evc/directive/v1/directive_pb";
import { openDb } from "@evc-interop/national/store/db";
import { newDose, newIdentity } from "@evc-interop/national/testing/harness";
import { dropSchema, TEST_DATABASE_URL, uniqueName } from "@evc-interop/national/testing/pg";
import type { Sql } from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrate } from "./schema.js";
import { ProvinceStore } from "./store.js";

/**
 * Group commit of directive applies: concurrent directives of different records share a
 * transaction, yet each is applied exactly once and a failing one fails alone (I4).
 */
const CODE = "440000";
let sql: Sql;
let schema: string;
let store: ProvinceStore;

beforeAll(async () => {
  schema = uniqueName("prov_store");
  sql = openDb({ url: TEST_DATABASE_URL, schema, max: 4 });
  await migrate(sql, schema);
  store = new ProvinceStore(sql, CODE, `evc_cert_${schema}`);
});

afterAll(async () => {
  await sql?.end();
  if (schema) await dropSchema(schema);
});

function activate(name = "Test Child"): Directive {
  const recordId = randomUUID();
  return create(DirectiveSchema, {
    directiveId: randomUUID(),
    targetProvinceCode: CODE,
    correlationId: randomUUID(),
    causationEventId: randomUUID(),
    issuedAt: timestampNow(),
    recordId,
    recordSequence: 1n,
    attempt: 1,
    streamVersion: 3n,
    action: {
      case: "activateMigratedRecord",
      value: {
        migrationId: randomUUID(),
        sourceProvinceCode: "110000",
        record: create(RecordContentsSchema, {
          recordId,
          identity: newIdentity(name),
          doses: [newDose("110000")],
        }),
      },
    },
  });
}

describe("province store group commit", () => {
  it("applies concurrent directives in shared transactions, each exactly once", async () => {
    const directives = Array.from({ length: 30 }, () => activate());
    // Every directive twice, at once: the copy is a duplicate, never a second application.
    const results = await Promise.all([...directives, ...directives].map((d) => store.apply(d)));
    const applied = results.filter((r) => r.kind === "applied" && !r.duplicate);
    const duplicates = results.filter((r) => r.kind === "applied" && r.duplicate);
    expect(applied).toHaveLength(30);
    expect(duplicates).toHaveLength(30);
    for (const r of applied) {
      if (r.kind === "applied") expect(r.receipt.outcome).toBe(ReceiptOutcome.APPLIED);
    }
    const ids = directives.map((d) => d.directiveId);
    const [counts] = await sql<{ inbox: number; transactions: number; certificates: number }[]>`
      SELECT count(*)::int AS inbox, count(DISTINCT xmin::text)::int AS transactions,
        (SELECT count(*)::int FROM certificates
         WHERE record_id = ANY(${directives.map((d) => d.recordId)}::text[])) AS certificates
      FROM inbox WHERE directive_id = ANY(${ids}::uuid[])`;
    expect(counts?.inbox).toBe(30);
    expect(counts?.certificates).toBe(30);
    expect(counts?.transactions).toBeLessThan(30);
  });

  it("a directive the database refuses fails alone; the others of its batch are applied", async () => {
    const good = Array.from({ length: 10 }, () => activate());
    // PostgreSQL's jsonb cannot hold U+0000: the insert of this record fails.
    const bad = activate("Bad\u0000Name");
    const results = await Promise.allSettled([...good, bad].map((d) => store.apply(d)));
    expect(results.slice(0, 10).map((r) => r.status)).toEqual(good.map(() => "fulfilled"));
    expect(results[10]?.status).toBe("rejected");
    const [inbox] = await sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM inbox
      WHERE directive_id = ANY(${[...good, bad].map((d) => d.directiveId)}::uuid[])`;
    expect(inbox?.n).toBe(10);
  });
});
