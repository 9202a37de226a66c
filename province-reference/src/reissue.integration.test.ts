import { createClient } from "@connectrpc/connect";
import { CertificateStatus, CloseReason } from "@evc-interop/gen/evc/common/v1/record_pb";
import { CertificateService } from "@evc-interop/gen/evc/national/v1/certificate_service_pb";
import { ClinicService } from "@evc-interop/gen/evc/province/v1/clinic_service_pb";
import { ProvinceService } from "@evc-interop/gen/evc/province/v1/province_service_pb";
import {
  closeTestProvince,
  codeOf,
  newIdentity,
  readerTransport,
  startTestHub,
  startTestProvince,
  type TestHubEnv,
  transport,
  until,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Province } from "./province.js";

/**
 * #27 story 5: a lost phone, a compromised number. Before, a certificate could not be replaced:
 * the old number stayed NORMAL for whoever held it.
 */
let env: TestHubEnv;
let bj: Province;

beforeAll(async () => {
  env = await startTestHub();
  bj = await startTestProvince(env, "110000");
});

afterAll(async () => {
  if (bj) await closeTestProvince(bj);
  await env?.close();
});

const clinic = () =>
  createClient(
    ClinicService,
    readerTransport(bj, { scope: "records:write", caller: "clinic:110000-01" }),
  );
const phone = () => createClient(ProvinceService, transport(bj.url));

describe("reissuing a certificate", () => {
  it("replaces it in one step: the old number REVOKED naming the new one, here and at the hub, and its watchers told", async () => {
    const child = newIdentity("Lost Phone Child");
    const born = await clinic().registerBirth({ identity: child });
    const seen: CertificateStatus[] = [];
    const abort = new AbortController();
    const watching = (async () => {
      for await (const m of phone().watchCertificate(
        { certificateNumber: born.certificateNumber },
        { signal: abort.signal },
      ))
        seen.push(m.certificate?.status ?? CertificateStatus.UNSPECIFIED);
    })().catch(() => undefined);

    const res = await clinic().reissueCertificate({
      recordId: born.recordId,
      reason: "lost phone",
    });
    expect(res.replaced).toBe(born.certificateNumber);
    expect(res.certificateNumber).toMatch(/^110000-/);
    expect(res.certificateNumber).not.toBe(born.certificateNumber);

    const old = (await phone().getCertificateStatus({ certificateNumber: born.certificateNumber }))
      .certificate;
    expect([old?.status, old?.revocationReason, old?.replacedBy]).toEqual([
      CertificateStatus.REVOKED,
      CloseReason.REISSUED,
      res.certificateNumber,
    ]);
    const fresh = await phone().getCertificateStatus({ certificateNumber: res.certificateNumber });
    expect(fresh.certificate?.status).toBe(CertificateStatus.NORMAL);
    const atHub = (
      await env
        .client(CertificateService, "province:440000")
        .getCertificateStatus({ certificateNumber: born.certificateNumber })
    ).certificate;
    expect([atHub?.status, atHub?.replacedBy]).toEqual([
      CertificateStatus.REVOKED,
      res.certificateNumber,
    ]);
    await until(
      "the watching phone told",
      async () => (seen.includes(CertificateStatus.REVOKED) ? true : undefined),
      5_000,
    );
    abort.abort();
    await watching;
    const [normal] = await env.hub.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM certificates WHERE status = 'NORMAL' AND record_id = ${born.recordId}`;
    expect(normal?.n).toBe(1);
  });

  it("is refused for a record this province does not hold", async () => {
    expect(
      await codeOf(clinic().reissueCertificate({ recordId: "no-such-record", reason: "x" })),
    ).toBe("NotFound");
  });
});
