import { fromBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { CloseReason } from "@evc-interop/gen/evc/common/v1/record_pb";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { DirectiveSchema } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import {
  MigrationService,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { provinceSubject, SIGNATURE_HEADER } from "@evc-interop/runtime";
import {
  closeTestProvince,
  controlTransport,
  newIdentity,
  startTestHub,
  startTestProvince,
  type TestHubEnv,
  until,
} from "@evc-interop/testing";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Province } from "./province.js";

/**
 * Drill seed 60058, as found: a child died while moving 110000 → 510000, before 510000 took
 * the activation (it was down). The death ended the migration — the activation SUPERSEDED, the
 * hub no longer waiting for it — and sent 510000 a revoke. The revoke came first; the province
 * took "the hub gave up on it" for "it will never come", applied the revoke over the gap (no
 * record: RECORD_NOT_FOUND), and when the activation came again it issued a NORMAL certificate
 * to the dead child. A directive the hub holds no receipt for is applied in its order.
 */
let env: TestHubEnv;
let bj: Province;
let cd: Province;
let nc: NatsConnection;

beforeAll(async () => {
  env = await startTestHub({ activateDeadlineMs: 30_000 });
  bj = await startTestProvince(env, "110000");
  cd = await startTestProvince(env, "510000", { gapResyncMs: 300 });
  nc = await connect({ servers: env.config.natsUrl });
});

afterAll(async () => {
  await nc?.close();
  for (const p of [bj, cd]) if (p) await closeTestProvince(p);
  await env?.close();
});

const control = (p: Province) => createClient(ControlService, controlTransport(p));
const subject = () =>
  provinceSubject({ ...env.config, duplicateWindowMs: env.config.duplicateWindowMs }, "510000");

describe("a directive the hub gave up on, still on its way", () => {
  it("is applied before the one after it: a child who died mid-move gets no certificate at the target", async () => {
    const child = newIdentity("Died Moving");
    const { recordId } = await control(bj).registerRecord({ identity: child });
    await cd.agent.stop();
    const { migrationId } = await control(cd).migrateIn({ identity: child });
    await until("the activation issued", async () =>
      (await env.client(MigrationService, "operator:ops").getMigration({ migrationId })).migration
        ?.state === MigrationState.SOURCE_SUSPENDED
        ? true
        : undefined,
    );
    // The activation is taken off the bus, to come again later (as a killed province's
    // unacknowledged copy does, after ack_wait).
    const jsm = await jetstreamManager(nc);
    const activation = await jsm.streams.getMessage(env.config.stream, {
      last_by_subj: subject(),
    });
    if (!activation) throw new Error("no activation on the bus");
    expect(fromBinary(DirectiveSchema, activation.data).action.case).toBe("activateMigratedRecord");
    await jsm.streams.deleteMessage(env.config.stream, activation.seq);

    await control(bj).closeRecord({ recordId, reason: CloseReason.DECEASED });
    await until("the migration ended by the death", async () =>
      (await env.client(MigrationService, "operator:ops").getMigration({ migrationId })).migration
        ?.state === MigrationState.CANCELLED
        ? true
        : undefined,
    );
    // 510000 comes back: the revoke arrives, the activation not yet.
    const schema = cd.config.schema;
    await cd.stop();
    cd = await startTestProvince(env, "510000", { schema, gapResyncMs: 300 });
    await until(
      "the revoke answered",
      async () => {
        const [r] = await env.hub.sql<{ receipt: boolean }[]>`
          SELECT receipt IS NOT NULL AS receipt FROM directives
          WHERE record_id = ${recordId} AND province = '510000' AND action = 'revokeCertificate'`;
        return r?.receipt ? true : undefined;
      },
      15_000,
    );
    // Now the activation's copy comes again (signed as it was; not the hub's Nats-Msg-Id, which
    // the bus would drop as a duplicate inside its window).
    const again = headers();
    again.set(SIGNATURE_HEADER, activation.header.get(SIGNATURE_HEADER));
    await jetstream(nc).publish(subject(), activation.data, { headers: again });
    await until("the copy taken", async () => {
      const seen =
        await cd.sql`SELECT 1 FROM inbox WHERE directive_id = ${fromBinary(DirectiveSchema, activation.data).directiveId}`;
      return seen.length === 1 ? true : undefined;
    });
    const normal = await cd.sql`
      SELECT certificate_number FROM certificates WHERE record_id = ${recordId} AND status = 'NORMAL'`;
    expect(normal).toEqual([]);
    const [rec] = await cd.sql<{ status: string }[]>`
      SELECT status FROM records WHERE record_id = ${recordId}`;
    expect(rec?.status).toBe("CLOSED");
  });
});
