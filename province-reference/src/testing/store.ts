import { openDb } from "@evc-interop/runtime";
import { dropSchema, TEST_DATABASE_URL, uniqueName } from "@evc-interop/testing";
import type { Sql } from "postgres";
import { migrate } from "../store/schema.js";
import { ProvinceStore } from "../store/store.js";

/** Tests only: a province store in a schema of its own, and how to drop it. */
export interface TestStore {
  sql: Sql;
  schema: string;
  store: ProvinceStore;
  close(): Promise<void>;
}

export async function openTestStore(code: string, prefix = "prov_test"): Promise<TestStore> {
  const schema = uniqueName(prefix);
  const sql = openDb({ url: TEST_DATABASE_URL, schema, max: 4 });
  await migrate(sql, schema);
  return {
    sql,
    schema,
    store: new ProvinceStore(sql, code, `evc_cert_${schema}`),
    async close() {
      await sql.end();
      await dropSchema(schema);
    },
  };
}
