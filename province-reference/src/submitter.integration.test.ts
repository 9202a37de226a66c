import { create } from "@bufbuild/protobuf";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import {
  DirectiveService,
  ReceiptDisposition,
  SubmitReceiptsResponseSchema,
} from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import { openDb } from "@evc-interop/national/store/db";
import { dropSchema, TEST_DATABASE_URL, uniqueName } from "@evc-interop/national/testing/pg";
import pino from "pino";
import type { Sql } from "postgres";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ReceiptSubmitter } from "./agent.js";
import { migrate } from "./store/schema.js";
import { ProvinceStore } from "./store/store.js";
import { activateDirective } from "./testing/directives.js";

/**
 * The receipt submitter sends what the store applied, in batches. A receipt applied while a
 * batch is with the hub goes in the next batch at once, not at the next tick of the timer.
 */
const CODE = "510000";
let sql: Sql;
let schema: string;
let store: ProvinceStore;

beforeAll(async () => {
  schema = uniqueName("prov_submit");
  sql = openDb({ url: TEST_DATABASE_URL, schema, max: 4 });
  await migrate(sql, schema);
  store = new ProvinceStore(sql, CODE, `evc_cert_${schema}`);
});

afterAll(async () => {
  await sql?.end();
  if (schema) await dropSchema(schema);
});

describe("receipt submitter", () => {
  it("sends a receipt applied during a submission right after it, without waiting for the tick", async () => {
    // The hub's DirectiveService, in memory: it holds the first batch until told to answer.
    const batches: string[][] = [];
    let answerFirst: () => void = () => {};
    const firstHeld = new Promise<void>((resolve) => {
      answerFirst = resolve;
    });
    const hub = createClient(
      DirectiveService,
      createRouterTransport(({ service }) => {
        service(DirectiveService, {
          async submitReceipts(req) {
            batches.push(req.receipts.map((r) => r.directiveId));
            if (batches.length === 1) await firstHeld;
            return create(SubmitReceiptsResponseSchema, {
              results: req.receipts.map((r) => ({
                directiveId: r.directiveId,
                disposition: ReceiptDisposition.RECORDED,
              })),
            });
          },
        });
      }),
    );
    const first = activateDirective(CODE);
    const second = activateDirective(CODE);
    await store.apply(first);
    // A tick far longer than the test may take: only a wake-up can send the second receipt.
    const submitter = new ReceiptSubmitter(store, hub, pino({ level: "silent" }), 600_000);
    submitter.start();
    try {
      await vi.waitFor(() => expect(batches).toHaveLength(1), { timeout: 10_000 });
      // Applied while the first batch is with the hub; the agent wakes the submitter.
      await store.apply(second);
      submitter.wake();
      answerFirst();
      await vi.waitFor(() => expect(batches).toHaveLength(2), { timeout: 10_000 });
      expect(batches).toEqual([[first.directiveId], [second.directiveId]]);
      expect(await store.unsubmitted(10)).toEqual([]);
    } finally {
      await submitter.stop(false);
    }
  });
});
