import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { ReceiptOutcome } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import { DirectiveService } from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import { DoseService } from "@evc-interop/gen/evc/national/v1/dose_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import {
  certificateNumber,
  newDose,
  newIdentity,
  promtoolJudges,
  type Scrape,
  startNatsServer,
  startTestHub,
  type TestHubEnv,
  until,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ALERT_RULES_FILE } from "./index.js";

/**
 * #18 part 4: each alert of ops/alerts.yml fired by its condition, created on a real hub. The
 * hub's /metrics is scraped and Prometheus's own evaluator (`promtool test rules`) is asked
 * whether, seeing those samples for the minutes that follow, it fires the alert — and that it
 * did not before the condition. (EvcMigrationsNeedOperator: the stuck-migration story in
 * province-reference; EvcDirectivesRejected: rejected-directive.integration.test.ts.)
 */
let env: TestHubEnv;

beforeAll(async () => {
  env = await startTestHub();
});

afterAll(async () => {
  await env?.close();
});

const scrape = async (e: TestHubEnv = env) => (await fetch(`${e.hub.url}/metrics`)).text();

function expectJudged(
  scrapes: Scrape[],
  alert: string,
  firing: Record<string, string>[],
  atMinute: number,
) {
  const { ok, output } = promtoolJudges(ALERT_RULES_FILE, scrapes, alert, firing, atMinute);
  expect(ok, output).toBe(true);
}

/** A person registered by `owner`, and a dose given in Guangdong: the hub routes it to the owner. */
async function doseRoutedTo(owner: string): Promise<{ directiveId: string; attempt: number }> {
  const identity = newIdentity();
  await env.client(RecordService, `province:${owner}`).registerRecord({
    idempotencyKey: randomUUID(),
    identity,
    certificateNumber: certificateNumber(owner),
  });
  await env
    .client(DoseService, "province:440000")
    .reportDose({ identity, dose: newDose("440000") });
  return until(`the dose routed to ${owner} and published`, async () => {
    const [d] = await env.hub.sql<{ directive_id: string; attempt: number }[]>`
      SELECT directive_id::text, attempt FROM directives
      WHERE province = ${owner} AND action = 'appendDose' AND state = 'DELIVERED'`;
    return d ? { directiveId: d.directive_id, attempt: d.attempt } : undefined;
  });
}

describe("the hub's dashboard", () => {
  it("charts only metrics the hub exposes", async () => {
    const exposed = await scrape();
    const dashboard = JSON.parse(
      readFileSync(join(dirname(ALERT_RULES_FILE), "grafana-dashboard.json"), "utf8"),
    ) as { panels: { title: string; targets: { expr: string }[] }[] };
    const charted = dashboard.panels.flatMap((p) =>
      p.targets.flatMap((t) => t.expr.match(/evc_hub_[a-z_]+/g) ?? []),
    );
    expect(charted.length).toBeGreaterThan(10);
    for (const name of charted) {
      const metric = name.replace(/_(bucket|count|sum)$/, "");
      expect(exposed, `${name} is charted`).toContain(`# TYPE ${metric} `);
    }
  });
});

describe("the hub's alerts, each fired by its condition", () => {
  it("EvcDirectivesDeadLettered: a directive the bus cannot take", async () => {
    const before = await scrape();
    const huge = new Uint8Array(2 * 1024 * 1024);
    const id = randomUUID();
    // The hub wrote a directive larger than the bus's max_payload (a record over its bound).
    await env.hub.sql`
      INSERT INTO directives (directive_id, province, person_key, record_id, record_sequence,
        action, attempt, payload, created_at, next_publish_at)
      VALUES (${id}, '310000', 'alert-oversized', ${randomUUID()}, 1, 'appendDose', 1, ${huge}, now(), now())`;
    await until("the directive dead-lettered", async () => {
      const [r] = await env.hub
        .sql`SELECT 1 FROM directives WHERE directive_id = ${id} AND state = 'FAILED'`;
      return r;
    });
    const after = await scrape();
    expectJudged([{ text: before, minutes: 5 }], "EvcDirectivesDeadLettered", [], 3);
    expectJudged(
      [{ text: after, minutes: 5 }],
      "EvcDirectivesDeadLettered",
      [{ province: "310000" }],
      1,
    );
  });

  it("EvcProvinceNotAnswering: a province that leaves a directive unanswered", async () => {
    // Sichuan (510000) runs no system in this test: the dose routed to it is never answered.
    await doseRoutedTo("510000");
    // Its age keeps growing a second a second while nothing answers.
    const unanswered: Scrape = {
      text: await scrape(),
      minutes: 40,
      growPerMinute: { evc_hub_oldest_unanswered_directive_seconds: 60 },
    };
    // Over 900 s from about minute 15, for 5 minutes: firing by minute 21, not at minute 12.
    expectJudged([unanswered], "EvcProvinceNotAnswering", [], 12);
    expectJudged([unanswered], "EvcProvinceNotAnswering", [{ province: "510000" }], 22);
  });

  it("EvcReceiptsSlow: receipts that take more than five minutes", async () => {
    const answer = (d: { directiveId: string; attempt: number }) =>
      env.client(DirectiveService, "province:110000").submitReceipts({
        receipts: [
          {
            directiveId: d.directiveId,
            attempt: d.attempt,
            outcome: ReceiptOutcome.APPLIED,
            appliedAt: timestampNow(),
          },
        ],
      });
    // Beijing answers at once, then (its system slowed down) twenty minutes late: the directive
    // is written as if committed twenty minutes before its receipt.
    await answer(await doseRoutedTo("110000"));
    const before = await scrape();
    const late = await doseRoutedTo("110000");
    await env.hub.sql`
      UPDATE directives SET created_at = now() - interval '20 minutes'
      WHERE directive_id = ${late.directiveId}`;
    await answer(late);
    const after = await scrape();
    expect(after).toMatch(/^evc_hub_receipt_latency_seconds_count\{province="110000"\} 2$/m);
    const slow = [
      { text: before, minutes: 5 },
      { text: after, minutes: 20 },
    ];
    expectJudged(slow, "EvcReceiptsSlow", [], 4);
    expectJudged(slow, "EvcReceiptsSlow", [{ province: "110000" }], 12);
  });

  it("EvcOutboxNotPublishing: a hub that cannot reach the bus", async () => {
    const bus = await startNatsServer();
    const cut = await startTestHub({ natsUrl: bus.url });
    try {
      await bus.stop();
      // A dose for a person Beijing owns: its directive waits in the outbox, unpublished.
      const identity = newIdentity();
      await cut.client(RecordService, "province:110000").registerRecord({
        idempotencyKey: randomUUID(),
        identity,
        certificateNumber: certificateNumber("110000"),
      });
      await cut
        .client(DoseService, "province:440000")
        .reportDose({ identity, dose: newDose("440000") });
      const text = await scrape(cut);
      expect(text).toMatch(/^evc_hub_outbox_backlog\{province="110000"\} 1$/m);
      const stuck = [{ text, minutes: 20 }];
      expectJudged(stuck, "EvcOutboxNotPublishing", [], 8);
      expectJudged(stuck, "EvcOutboxNotPublishing", [{ province: "110000" }], 11);
    } finally {
      await cut.close();
      await bus.stop().catch(() => undefined);
    }
  });

  it("EvcHubDown: a replica that does not answer its scrape", async () => {
    const replica = await env.startReplica();
    const instance = new URL(replica.url).host;
    const up = async () => {
      const ok = await fetch(`${replica.url}/metrics`).then(
        (r) => r.ok,
        () => false,
      );
      return `up{job="evc-hub",instance="${instance}"} ${ok ? 1 : 0}\n`;
    };
    const answering = await up();
    await replica.stop();
    const down = await up();
    expect(down).toMatch(/ 0\n$/);
    expectJudged([{ text: answering, minutes: 10 }], "EvcHubDown", [], 5);
    expectJudged(
      [
        { text: answering, minutes: 2 },
        { text: down, minutes: 10 },
      ],
      "EvcHubDown",
      [{ job: "evc-hub", instance }],
      6,
    );
  });
});
