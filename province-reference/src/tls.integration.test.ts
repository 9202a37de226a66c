import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import {
  MigrationService,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import { ProvinceService } from "@evc-interop/gen/evc/province/v1/province_service_pb";
import type { ClientTls } from "@evc-interop/runtime";
import { bearer, issueReaderToken } from "@evc-interop/runtime";
import {
  certificateNumber,
  closeTestProvince,
  codeOf,
  makeTestPki,
  newIdentity,
  type PrivateNats,
  startNatsServer,
  startTestHub,
  startTestProvince,
  type TestHubEnv,
  type TestPki,
  testReaderIssuer,
  transport,
  until,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Province } from "./province.js";

/**
 * TLS on every hop (#15 part 2): the hub and two provinces serve HTTPS with mutual TLS, the bus
 * is NATS over TLS, and a migration goes end to end; the hub binds each client certificate to
 * the token presented with it.
 */
let pki: TestPki;
let nats: PrivateNats;
let env: TestHubEnv;
const provinces: Province[] = [];
let bj: Province;
let gd: Province;
let ops: ClientTls;

beforeAll(async () => {
  pki = makeTestPki();
  nats = await startNatsServer(
    `tls { cert_file: ${JSON.stringify(pki.serverCertFile)}, key_file: ${JSON.stringify(pki.serverKeyFile)}, ca_file: ${JSON.stringify(pki.caFile)}, verify: true }\n`,
  );
  const natsClient = pki.client("evc-nats-client");
  const natsTls = {
    caFile: pki.caFile,
    certFile: natsClient.certFile,
    keyFile: natsClient.keyFile,
  };
  env = await startTestHub({
    natsUrl: nats.url,
    natsTls,
    tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.ca },
  });
  const opsCert = pki.client("operator:ops");
  ops = { ca: pki.ca, cert: opsCert.cert, key: opsCert.key };
  for (const code of ["110000", "440000"]) {
    const mine = pki.client(`province:${code}`);
    const p = await startTestProvince(env, code, {
      natsUrl: nats.url,
      natsTls,
      provisionConsumer: true,
      tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.ca },
      hubTls: { ca: pki.ca, cert: mine.cert, key: mine.key },
    });
    provinces.push(p);
  }
  [bj, gd] = provinces as [Province, Province];
});

afterAll(async () => {
  for (const p of provinces) await closeTestProvince(p);
  await env?.close();
  await nats?.stop();
  pki?.remove();
});

/** A client of a province's port over mutual TLS (a clinic's or the operator's certificate). */
function atProvince(p: Province, clientCn = "clinic:tls-test") {
  const c = pki.client(clientCn);
  const tls: ClientTls = { ca: pki.ca, cert: c.cert, key: c.key };
  const reader = bearer(async () =>
    issueReaderToken((await testReaderIssuer()).privateJwk, {
      province: p.code,
      caller: clientCn,
      scope: "records:read",
    }),
  );
  return {
    control: createClient(
      ControlService,
      transport(p.controlUrl, [bearer(p.config.controlToken)], tls),
    ),
    phone: createClient(ProvinceService, transport(p.url, [reader], tls)),
  };
}

describe("TLS everywhere it crosses a network", () => {
  it("hub, provinces and bus all speak TLS, and a migration goes end to end", async () => {
    expect(env.hub.url).toMatch(/^https:/);
    expect(bj.url).toMatch(/^https:/);
    const identity = newIdentity("TLS Child");
    const reg = await atProvince(bj).control.registerRecord({ identity });
    const { migrationId } = await atProvince(gd).control.migrateIn({ identity });
    const migrations = createClient(
      MigrationService,
      transport(env.hub.url, [env.creds.auth("operator:ops")], ops),
    );
    await until("migration completed over TLS", async () => {
      const { migration } = await migrations.getMigration({ migrationId });
      return migration?.state === MigrationState.COMPLETED ? true : undefined;
    });
    const rec = await until("record at Guangdong", async () => {
      const r = await atProvince(gd)
        .phone.getRecord({ recordId: reg.recordId })
        .catch(() => undefined);
      return r?.record ? r : undefined;
    });
    expect(rec.record?.identity?.idNumber).toBe(identity.idNumber);
  });

  it("the hub binds the client certificate to the token: another province's certificate is refused", async () => {
    const bjCert = pki.client("province:110000");
    const gdCert = pki.client("province:440000");
    const asBj = (cert: { cert: Buffer; key: Buffer }) =>
      createClient(
        RecordService,
        transport(env.hub.url, [env.creds.auth("province:110000")], { ca: pki.ca, ...cert }),
      );
    const identity = newIdentity();
    expect(
      await codeOf(
        asBj(bjCert).registerRecord({
          identity,
          idempotencyKey: crypto.randomUUID(),
          certificateNumber: certificateNumber("110000"),
        }),
      ),
    ).toBe("OK");
    const stolen = await asBj(gdCert)
      .registerRecord({
        identity: newIdentity(),
        idempotencyKey: crypto.randomUUID(),
        certificateNumber: certificateNumber("110000"),
      })
      .catch((e: unknown) => ConnectError.from(e));
    expect(stolen).toBeInstanceOf(ConnectError);
    if (stolen instanceof ConnectError) {
      expect(stolen.code).toBe(Code.PermissionDenied);
      expect(stolen.rawMessage).toMatch(/certificate is province:440000's/);
    }
  });

  it("no client certificate, an untrusted CA, or cleartext: no conversation at all", async () => {
    const auth = [env.creds.auth("province:110000")];
    const call = (url: string, tls?: ClientTls) =>
      codeOf(
        createClient(RecordService, transport(url, auth, tls)).registerRecord({
          identity: newIdentity(),
          idempotencyKey: crypto.randomUUID(),
          certificateNumber: certificateNumber("110000"),
        }),
      );
    const count = async () =>
      (await env.hub.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM records`)[0]?.n;
    const before = await count();
    // Mutual TLS: the handshake itself refuses a client without a certificate.
    expect(await call(env.hub.url, { ca: pki.ca })).not.toBe("OK");
    // A client that does not trust the server's CA refuses the server.
    const other = makeTestPki("another CA");
    try {
      const c = pki.client("province:110000");
      expect(await call(env.hub.url, { ca: other.ca, cert: c.cert, key: c.key })).not.toBe("OK");
    } finally {
      other.remove();
    }
    // (connect-node reports a failed handshake as Internal or Unavailable: the client's view.)
    // Cleartext HTTP/2 to the TLS port.
    expect(await call(env.hub.url.replace("https:", "http:"))).not.toBe("OK");
    expect(await count()).toBe(before);
  });
});
