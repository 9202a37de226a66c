import { create } from "@bufbuild/protobuf";
import { createClient, createRouterTransport } from "@connectrpc/connect";
import {
  DirectiveService,
  ReceiptDisposition,
  SubmitReceiptsResponseSchema,
} from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import { activateDirective } from "@evc-interop/testing";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ProvinceMetrics } from "./metrics.js";
import { ReceiptSubmitter } from "./receipt-submitter.js";
import type { ProvinceStore } from "./store/store.js";
import { openTestStore, type TestStore } from "./testing/store.js";

/**
 * The receipt submitter sends what the store applied, in batches. A receipt applied while a
 * batch is with the hub goes in the next batch at once, not at the next tick of the timer.
 */
const CODE = "510000";
let t: TestStore;
let store: ProvinceStore;

beforeAll(async () => {
  t = await openTestStore(CODE, "prov_submit");
  store = t.store;
});

afterAll(async () => {
  await t?.close();
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
    const submitter = new ReceiptSubmitter(
      store,
      hub,
      pino({ level: "silent" }),
      new ProvinceMetrics(CODE),
      600_000,
    );
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
