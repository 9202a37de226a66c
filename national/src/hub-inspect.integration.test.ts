import { create } from "@bufbuild/protobuf";
import { createClient, type Interceptor } from "@connectrpc/connect";
import {
  ReceiptOutcome,
  ReceiptRejection,
  ReceiptSchema,
} from "@evc-interop/gen/evc/directive/v1/directive_pb";
import {
  DirectiveService,
  type SubmitReceiptsRequest,
} from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import { codeOf, startTestHub, type TestHubEnv, transport } from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * HubOptions.inspect sees what an authenticated caller sent before the contract's rules refuse
 * it: the conformance kit records a receipt for a malformed directive this way, so its
 * `directive/malformed` case can fail (the recorder used to run after validation and never
 * saw a receipt the hub refused).
 */
let env: TestHubEnv;
const seen: string[] = [];
const recorder: Interceptor = (next) => async (req) => {
  if (req.method.name === "SubmitReceipts" && !req.stream) {
    for (const r of (req.message as SubmitReceiptsRequest).receipts) seen.push(r.directiveId);
  }
  return next(req);
};

beforeAll(async () => {
  env = await startTestHub({}, { inspect: [recorder] });
});

afterAll(async () => {
  await env?.close();
});

const malformed = create(ReceiptSchema, {
  directiveId: "not-a-uuid",
  attempt: 1,
  outcome: ReceiptOutcome.REJECTED,
  rejection: ReceiptRejection.MALFORMED,
});

describe("inspecting requests before validation", () => {
  it("sees a receipt the hub refuses as InvalidArgument", async () => {
    const code = await codeOf(
      env.client(DirectiveService, "province:110000").submitReceipts({ receipts: [malformed] }),
    );
    expect(code).toBe("InvalidArgument");
    expect(seen).toContain("not-a-uuid");
  });

  it("sees nothing of a caller who is not authenticated", async () => {
    seen.length = 0;
    const anonymous = createClient(DirectiveService, transport(env.hub.url));
    expect(await codeOf(anonymous.submitReceipts({ receipts: [malformed] }))).toBe(
      "Unauthenticated",
    );
    expect(seen).toEqual([]);
  });
});
