import { randomUUID } from "node:crypto";
import { timestampFromDate, timestampNow } from "@bufbuild/protobuf/wkt";
import { ReceiptOutcome, ReceiptRejection } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import {
  DirectiveService,
  DirectiveState,
} from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import { DoseService } from "@evc-interop/gen/evc/national/v1/dose_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import {
  certificateNumber,
  newDose,
  newIdentity,
  promtoolJudges,
  startTestHub,
  type TestHubEnv,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ALERT_RULES_FILE } from "./index.js";

/**
 * #18 part 1: a dose append its owner REJECTED was stored as acknowledged and hidden from the
 * default listing — a dose could be missing at its owner with no signal (I3).
 */
let env: TestHubEnv;

beforeAll(async () => {
  env = await startTestHub();
});

afterAll(async () => {
  await env?.close();
});

describe("a rejected dose append", () => {
  it("is a visible, alarmed state with its reason", async () => {
    const identity = newIdentity();
    await env.client(RecordService, "province:110000").registerRecord({
      idempotencyKey: randomUUID(),
      identity,
      certificateNumber: certificateNumber("110000"),
    });
    await env
      .client(DoseService, "province:440000")
      .reportDose({ identity, dose: newDose("440000") });
    const [d] = await env.hub.sql<{ directive_id: string; attempt: number }[]>`
      SELECT directive_id::text, attempt FROM directives WHERE action = 'appendDose' AND province = '110000'`;
    expect(d).toBeDefined();
    await env.client(DirectiveService, "province:110000").submitReceipts({
      receipts: [
        {
          directiveId: d?.directive_id ?? "",
          attempt: d?.attempt ?? 1,
          outcome: ReceiptOutcome.REJECTED,
          rejection: ReceiptRejection.INVALID_STATE,
          detail: "the record is closed here",
          appliedAt: timestampNow(),
        },
      ],
    });
    const { directives } = await env
      .client(DirectiveService, "operator:ops")
      .listDirectives({ provinceCode: "110000" });
    const listed = directives.find((x) => x.directive?.directiveId === d?.directive_id);
    expect(listed?.state).toBe(DirectiveState.REJECTED);
    expect(listed?.receipt?.rejection).toBe(ReceiptRejection.INVALID_STATE);
    expect(listed?.receipt?.detail).toBe("the record is closed here");
    // An operator filters rejections by state and age.
    const ops = env.client(DirectiveService, "operator:ops");
    const rejected = (createdBefore: Date) =>
      ops.listDirectives({
        provinceCode: "110000",
        state: DirectiveState.REJECTED,
        createdBefore: timestampFromDate(createdBefore),
      });
    const now = await rejected(new Date(Date.now() + 1000));
    expect(now.directives.map((x) => x.directive?.directiveId)).toEqual([d?.directive_id]);
    expect((await rejected(new Date(Date.now() - 3_600_000))).directives).toEqual([]);
    const metrics = await (await fetch(`${env.hub.url}/metrics`)).text();
    expect(metrics).toMatch(/^evc_hub_directives_rejected\{province="110000"\} 1$/m);
    // And Prometheus, given what the hub exposes, raises EvcDirectivesRejected for Beijing.
    const judged = promtoolJudges(
      ALERT_RULES_FILE,
      [{ text: metrics, minutes: 3 }],
      "EvcDirectivesRejected",
      [{ province: "110000" }],
      1,
    );
    expect(judged.ok, judged.output).toBe(true);
  });
});
