import { createClient } from "@connectrpc/connect";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { ProvinceService } from "@evc-interop/gen/evc/province/v1/province_service_pb";
import {
  natsAccountsConfig,
  natsCredentials,
  newNkeyUser,
  provinceConsumer,
  provinceSubject,
} from "@evc-interop/runtime";
import {
  closeTestProvince,
  controlTransport,
  newDose,
  newIdentity,
  type PrivateNats,
  readerTransport,
  startNatsServer,
  startTestHub,
  startTestProvince,
  type TestHubEnv,
  uniqueName,
} from "@evc-interop/testing";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Province } from "./province.js";

/** I7 on the bus: a NATS server with one user per province, as an operator would run it. */
let nats: PrivateNats;
let env: TestHubEnv;
let bj: Province;
let sc: Province;
const id = uniqueName("perm");
const layout = { stream: id.toUpperCase(), subjectPrefix: `t.${id}`, duplicateWindowMs: 120_000 };
// NKey users, as `npm run credentials` makes them: the server holds only the public keys.
const keys = {
  hub: newNkeyUser(),
  bj: newNkeyUser(),
  sc: newNkeyUser(),
  gd: newNkeyUser(),
};
const users = [
  { user: "hub", nkey: keys.hub.nkey },
  { user: "p110000", nkey: keys.bj.nkey, province: "110000" },
  { user: "p510000", nkey: keys.sc.nkey, province: "510000" },
  { user: "p440000", nkey: keys.gd.nkey, province: "440000" },
];
/** Connect options of one of those users. */
const as = (k: { seed: string }) =>
  natsCredentials({ natsUser: "", natsPassword: "", natsNkeySeed: k.seed });

beforeAll(async () => {
  nats = await startNatsServer(natsAccountsConfig(layout, users));
  env = await startTestHub({
    natsUrl: nats.url,
    natsNkeySeed: keys.hub.seed,
    stream: layout.stream,
    subjectPrefix: layout.subjectPrefix,
  });
  const bus = (seed: string) => ({ natsUrl: nats.url, natsNkeySeed: seed });
  bj = await startTestProvince(env, "110000", bus(keys.bj.seed));
  sc = await startTestProvince(env, "510000", bus(keys.sc.seed));
});

afterAll(async () => {
  for (const p of [bj, sc]) if (p) await closeTestProvince(p);
  await env?.close();
  await nats?.stop();
});

describe("a province on the bus acts only for itself (I7)", () => {
  it("consumes its own directives with its own credential", async () => {
    const identity = newIdentity();
    const reg = await createClient(ControlService, controlTransport(sc)).registerRecord({
      identity,
    });
    await createClient(ControlService, controlTransport(bj)).recordDose({
      identity,
      dose: newDose("110000"),
    });
    const phone = createClient(ProvinceService, readerTransport(sc));
    for (let i = 0; i < 200; i++) {
      const r = await phone.getRecord({ recordId: reg.recordId });
      if (r.record?.doses.length === 1) return;
      await new Promise((res) => setTimeout(res, 25));
    }
    throw new Error("the dose never reached the owner province");
  });

  it("neither another province's credential nor an anonymous client receives anything of Beijing's, by any subject", async () => {
    await expect(connect({ servers: nats.url })).rejects.toThrow(/authoriz|authentic/i);
    // An NKey the server does not know is refused like no credential at all.
    await expect(connect({ servers: nats.url, ...as(newNkeyUser()) })).rejects.toThrow(
      /authoriz|authentic/i,
    );
    // One connection per pattern: a permission error is then known to be that pattern's.
    const patterns = [">", "_INBOX.>", "_INBOX_110000.>", `${layout.subjectPrefix}.>`, "$JS.>"];
    const conns = await Promise.all(
      patterns.map(() => connect({ servers: nats.url, ...as(keys.gd) })),
    );
    const seen: string[] = [];
    const denied: string[] = [];
    try {
      patterns.forEach((pattern, i) => {
        conns[i]?.subscribe(pattern, {
          callback: (err, m) => {
            if (err) denied.push(pattern);
            else seen.push(m.subject);
          },
        });
      });
      await Promise.all(conns.map((c) => c.flush()));
      // Beijing pulls a directive meanwhile (a dose given in Sichuan to Beijing's person).
      const identity = newIdentity();
      const reg = await createClient(ControlService, controlTransport(bj)).registerRecord({
        identity,
      });
      await createClient(ControlService, controlTransport(sc)).recordDose({
        identity,
        dose: newDose("510000"),
      });
      const phone = createClient(ProvinceService, readerTransport(bj));
      for (let i = 0; i < 200; i++) {
        const r = await phone.getRecord({ recordId: reg.recordId });
        if (r.record?.doses.length === 1) break;
        await new Promise((res) => setTimeout(res, 25));
      }
      await new Promise((r) => setTimeout(r, 300));
      expect(seen).toEqual([]);
      expect(denied.sort()).toEqual([...patterns].sort());
    } finally {
      await Promise.all(conns.map((c) => c.close().catch(() => undefined)));
    }
  });

  it("cannot read another province's consumer, subscribe to its subject, or create a consumer", async () => {
    const nc = await connect({ servers: nats.url, ...as(keys.gd) });
    try {
      const js = jetstream(nc);
      await expect(js.consumers.get(layout.stream, provinceConsumer("110000"))).rejects.toThrow(
        /permission|timeout/i,
      );
      const jsm = await jetstreamManager(nc, { checkAPI: false });
      await expect(
        jsm.consumers.add(layout.stream, {
          durable_name: "sneaky",
          ack_policy: AckPolicy.Explicit,
          filter_subject: provinceSubject(layout, "110000"),
        }),
      ).rejects.toThrow(/permission|timeout/i);
      const errors: Error[] = [];
      const sub = nc.subscribe(provinceSubject(layout, "110000"), {
        callback: (err) => {
          if (err) errors.push(err);
        },
      });
      await nc.flush();
      await new Promise((r) => setTimeout(r, 200));
      expect(errors.map((e) => e.message).join()).toMatch(
        /permissions violation for subscription/i,
      );
      expect(sub.isClosed()).toBe(true);
    } finally {
      await nc.close().catch(() => undefined);
    }
  });
});
