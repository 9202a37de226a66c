import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { CertificateStatus } from "@evc-interop/gen/evc/common/v1/record_pb";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { AccessLogService } from "@evc-interop/gen/evc/province/v1/access_log_service_pb";
import { ProvinceService } from "@evc-interop/gen/evc/province/v1/province_service_pb";
import { bearer, issueReaderToken } from "@evc-interop/runtime";
import {
  closeTestProvince,
  codeOf,
  controlTransport,
  newIdentity,
  readerTransport,
  startTestHub,
  startTestProvince,
  type TestHubEnv,
  testReaderIssuer,
  transport,
} from "@evc-interop/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Province } from "./province.js";

let env: TestHubEnv;
let bj: Province;
let limited: Province;
let record: { recordId: string; certificateNumber: string };
let other: { recordId: string };
const child = newIdentity("Phone Tier Child");
const otherChild = newIdentity("Other Child");

beforeAll(async () => {
  env = await startTestHub();
  bj = await startTestProvince(env, "110000");
  limited = await startTestProvince(env, "440000", { readerRatePerMinute: 5 });
  const control = createClient(ControlService, controlTransport(bj));
  record = await control.registerRecord({ identity: child });
  other = await control.registerRecord({ identity: otherChild });
});

afterAll(async () => {
  for (const p of [bj, limited]) if (p) await closeTestProvince(p);
  await env?.close();
});

const anonymous = (p: Province) => createClient(ProvinceService, transport(p.url));
const holder = (p: Province, rec: string) =>
  createClient(ProvinceService, readerTransport(p, { record: rec, caller: "app:guardian-1" }));
const clinic = (p: Province, caller = "clinic:110105-01") =>
  createClient(ProvinceService, readerTransport(p, { caller }));
const auditor = (p: Province) =>
  createClient(
    AccessLogService,
    readerTransport(p, { scope: "access-log:read", caller: "auditor:1" }),
  );

describe("the phone tier reveals no one", () => {
  it("anyone reads a certificate by number: status and issuing province, no record id", async () => {
    const res = await anonymous(bj).getCertificateStatus({
      certificateNumber: record.certificateNumber,
    });
    expect(res.certificate?.status).toBe(CertificateStatus.NORMAL);
    expect(res.certificate?.provinceCode).toBe("110000");
    expect(res.certificate?.recordId).toBe("");
    const abort = new AbortController();
    for await (const m of anonymous(bj).watchCertificate(
      { certificateNumber: record.certificateNumber },
      { signal: abort.signal },
    )) {
      expect(m.certificate?.status).toBe(CertificateStatus.NORMAL);
      expect(m.certificate?.recordId).toBe("");
      break;
    }
    abort.abort();
    // A clinic may link the certificate to its record.
    const linked = await clinic(bj).getCertificateStatus({
      certificateNumber: record.certificateNumber,
    });
    expect(linked.certificate?.recordId).toBe(record.recordId);
  });

  it("without a reader token, lookups by identity and full records are Unauthenticated", async () => {
    expect(await codeOf(anonymous(bj).getRecord({ recordId: record.recordId }))).toBe(
      "Unauthenticated",
    );
    expect(await codeOf(anonymous(bj).getCertificateStatusByIdentity({ identity: child }))).toBe(
      "Unauthenticated",
    );
    // Another province's token, and a token from an issuer the province does not trust.
    const { privateJwk } = await testReaderIssuer();
    const elsewhere = await issueReaderToken(privateJwk, {
      province: "440000",
      caller: "clinic:x",
      scope: "records:read",
    });
    const wrongAudience = createClient(ProvinceService, transport(bj.url, [bearer(elsewhere)]));
    expect(await codeOf(wrongAudience.getRecord({ recordId: record.recordId }))).toBe(
      "Unauthenticated",
    );
  });

  it("a holder reads only their own record, and cannot tell whether another exists", async () => {
    const own = await holder(bj, record.recordId).getRecord({ recordId: record.recordId });
    expect(own.record?.identity?.idNumber).toBe(child.idNumber);
    const byId = await holder(bj, record.recordId).getCertificateStatusByIdentity({
      identity: child,
    });
    expect(byId.certificate?.certificateNumber).toBe(record.certificateNumber);

    const someoneElse = await holder(bj, record.recordId)
      .getRecord({ recordId: other.recordId })
      .catch((e: unknown) => ConnectError.from(e));
    const nobody = await holder(bj, record.recordId)
      .getRecord({ recordId: "no-such-record" })
      .catch((e: unknown) => ConnectError.from(e));
    expect(someoneElse).toBeInstanceOf(ConnectError);
    expect(nobody).toBeInstanceOf(ConnectError);
    if (!(someoneElse instanceof ConnectError) || !(nobody instanceof ConnectError)) return;
    expect(someoneElse.code).toBe(Code.PermissionDenied);
    expect(nobody.code).toBe(someoneElse.code);
    expect(nobody.rawMessage).toBe(someoneElse.rawMessage);

    const known = await codeOf(
      holder(bj, record.recordId).getCertificateStatusByIdentity({ identity: otherChild }),
    );
    const unknown = await codeOf(
      holder(bj, record.recordId).getCertificateStatusByIdentity({ identity: newIdentity() }),
    );
    expect([known, unknown]).toEqual(["PermissionDenied", "PermissionDenied"]);
  });

  it("a clinic reads any record; an unknown person is NotFound to it", async () => {
    const r = await clinic(bj).getRecord({ recordId: other.recordId });
    expect(r.record?.identity?.idNumber).toBe(otherChild.idNumber);
    expect(
      await codeOf(clinic(bj).getCertificateStatusByIdentity({ identity: newIdentity() })),
    ).toBe("NotFound");
  });

  it("every read of person-level data is in the access log, which only an auditor may query", async () => {
    const caller = "clinic:audited-1";
    await clinic(bj, caller).getRecord({ recordId: record.recordId });
    await clinic(bj, caller).getRecord(
      { recordId: record.recordId },
      {
        headers: { "evc-purpose": "school-entry" },
      },
    );
    await codeOf(clinic(bj, caller).getRecord({ recordId: "no-such-record" }));
    const { reads } = await auditor(bj).listReads({ caller });
    expect(reads.map((r) => [r.method, r.recordId, r.outcome, r.purpose, r.scope])).toEqual([
      ["GetRecord", "no-such-record", "NOT_FOUND", "records:read", "records:read"],
      ["GetRecord", record.recordId, "OK", "school-entry", "records:read"],
      ["GetRecord", record.recordId, "OK", "records:read", "records:read"],
    ]);
    const denied = await auditor(bj).listReads({ caller: "app:guardian-1" });
    expect(denied.reads.some((r) => r.outcome === "PERMISSION_DENIED")).toBe(true);

    expect(
      await codeOf(createClient(AccessLogService, readerTransport(bj)).listReads({ caller })),
    ).toBe("PermissionDenied");
    expect(
      await codeOf(createClient(AccessLogService, transport(bj.url)).listReads({ caller })),
    ).toBe("Unauthenticated");
    await expect(bj.sql`DELETE FROM record_reads`).rejects.toThrow(/append-only/);
  });

  it("a bad purpose header is InvalidArgument naming it", async () => {
    const err = await clinic(bj)
      .getRecord({ recordId: record.recordId }, { headers: { "evc-purpose": "Not A Purpose!" } })
      .catch((e: unknown) => ConnectError.from(e));
    expect(err).toBeInstanceOf(ConnectError);
    if (err instanceof ConnectError) {
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.rawMessage).toMatch(/evc-purpose/);
    }
  });

  it("each caller is rate-limited on its own", async () => {
    const codes: string[] = [];
    for (let i = 0; i < 6; i++)
      codes.push(await codeOf(clinic(limited, "clinic:busy").getRecord({ recordId: "r-none" })));
    expect(codes.slice(0, 5)).toEqual(Array(5).fill("NotFound"));
    expect(codes[5]).toBe("ResourceExhausted");
    expect(await codeOf(clinic(limited, "clinic:calm").getRecord({ recordId: "r-none" }))).toBe(
      "NotFound",
    );
  });
});
