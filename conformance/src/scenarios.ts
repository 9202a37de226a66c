import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Identity } from "@evc-interop/gen/evc/common/v1/identity_pb";
import {
  CertificateStatus,
  CloseReason,
  type Dose,
  DoseSchema,
  RecordContentsSchema,
} from "@evc-interop/gen/evc/common/v1/record_pb";
import {
  type Directive,
  DirectiveSchema,
  type Receipt,
  ReceiptOutcome,
  ReceiptRejection,
  ReceiptSchema,
} from "@evc-interop/gen/evc/directive/v1/directive_pb";
import {
  MigrationService,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import { identityToJson, personKey } from "@evc-interop/national";
import { generateSigningKey, syntheticIdentity } from "@evc-interop/runtime";
import { CaseFailure, type Scenario } from "./case.js";
import { generatedHistories } from "./generated/histories.js";
import type { Kit } from "./kit.js";

function expect(ok: boolean, expected: string, seen: string): asserts ok {
  if (!ok) throw new CaseFailure(expected, seen);
}

function identity(): Identity {
  return syntheticIdentity("Conformance Child");
}

function dose(province: string, n = 1): Dose {
  return create(DoseSchema, {
    doseId: `kit-${crypto.randomUUID()}`,
    vaccineCode: "MMR",
    doseNumber: n,
    administeredAt: timestampFromDate(new Date("2022-01-01T00:00:00Z")),
    administeredProvinceCode: province,
  });
}

function show(r: Receipt | undefined): string {
  return r ? toJsonString(ReceiptSchema, r) : "no receipt";
}

/** One receipt for `d`, asserted to arrive. */
async function receiptFor(kit: Kit, d: Directive, timeoutMs = 10_000): Promise<Receipt> {
  const [r] = await kit.waitReceipts(d.directiveId, 1, timeoutMs);
  expect(r !== undefined, `a receipt for directive ${d.directiveId} (${d.action.case})`, "none");
  return r;
}

/** An activate directive for a record migrating in from the kit's province 650000. */
function activateDirective(
  kit: Kit,
  recordId: string,
  who: Identity,
  doses: Dose[],
  init: Partial<Directive> = {},
): Directive {
  return kit.directive({
    recordId,
    ...init,
    action: {
      case: "activateMigratedRecord",
      value: {
        $typeName: "evc.directive.v1.ActivateMigratedRecord",
        migrationId: crypto.randomUUID(),
        sourceProvinceCode: kit.virtual[0],
        record: create(RecordContentsSchema, { recordId, identity: who, doses }),
      },
    },
  });
}

/** Creates a record at the province with an activate directive; returns what was sent and answered. */
async function activated(kit: Kit, doses = 2) {
  const who = identity();
  const recordId = crypto.randomUUID();
  const list = Array.from({ length: doses }, (_, i) => dose(kit.virtual[0], i + 1));
  const d = activateDirective(kit, recordId, who, list);
  await kit.deliver(d);
  const r = await receiptFor(kit, d);
  expect(r.outcome === ReceiptOutcome.APPLIED, "activate answered APPLIED", show(r));
  const cert = r.result.case === "activated" ? r.result.value.certificateNumber : "";
  expect(
    cert.startsWith(`${kit.config.province.code}-`),
    "activate receipt carries the new certificate number",
    show(r),
  );
  return { identity: who, recordId, doses: list, certificate: cert, directive: d };
}

function next(kit: Kit, prev: Directive, action: Directive["action"], seq?: bigint): Directive {
  return kit.directive({
    recordId: prev.recordId,
    recordSequence: seq ?? prev.recordSequence + 1n,
    streamVersion: (seq ?? prev.recordSequence + 1n) + 1n,
    action,
  });
}

const suspendAction = (kit: Kit): Directive["action"] => ({
  case: "suspendForMigration",
  value: {
    $typeName: "evc.directive.v1.SuspendForMigration",
    migrationId: crypto.randomUUID(),
    targetProvinceCode: kit.virtual[1],
  },
});

const appendAction = (d: Dose): Directive["action"] => ({
  case: "appendDose",
  value: { $typeName: "evc.directive.v1.AppendDose", dose: d },
});

async function statusOf(kit: Kit, number: string): Promise<string> {
  const res = await kit.api.getCertificateStatus({ certificateNumber: number });
  return CertificateStatus[res.certificate?.status ?? 0] ?? "?";
}

/** The record at the province holds exactly `n` doses. */
async function expectDoseCount(
  kit: Kit,
  recordId: string,
  n: number,
  expected: string,
): Promise<void> {
  const rec = await kit.api.getRecord({ recordId });
  expect(rec.record?.doses.length === n, expected, `${rec.record?.doses.length} doses`);
}

async function noReceipt(kit: Kit, d: Directive, ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
  const got = kit.receipts(d.directiveId);
  expect(got.length === 0, `no receipt for directive ${d.directiveId}`, show(got[0]));
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (err) {
    return Code[ConnectError.from(err).code] ?? "unknown";
  }
}

function sameReceipts(rs: Receipt[]): boolean {
  const first = rs[0] ? Buffer.from(toBinary(ReceiptSchema, rs[0])).toString("hex") : "";
  return rs.every((r) => Buffer.from(toBinary(ReceiptSchema, r)).toString("hex") === first);
}

async function migrationState(kit: Kit, id: string): Promise<MigrationState> {
  const { migration } = await kit
    .asVirtual(MigrationService, kit.virtual[0])
    .getMigration({ migrationId: id });
  return migration?.state ?? MigrationState.UNSPECIFIED;
}

/** Registers a person at the kit's hub as owned by a virtual province. */
async function ownedByVirtual(kit: Kit, code = kit.virtual[0]) {
  const who = identity();
  const cert = `${code}-KIT${crypto.randomUUID().slice(0, 8).toUpperCase()}`;
  const doses = [dose(code)];
  const res = await kit.asVirtual(RecordService, code).registerRecord({
    idempotencyKey: `kit-${cert}`,
    identity: who,
    certificateNumber: cert,
    doses,
  });
  return { identity: who, recordId: res.recordId, certificate: cert, doses };
}

export const SCENARIOS: Record<string, Scenario> = {
  generated: generatedHistories,
  async activate({ kit }) {
    const a = await activated(kit);
    const status = await statusOf(kit, a.certificate);
    expect(status === "NORMAL", "the new certificate NORMAL at the province API", status);
    await expectDoseCount(kit, a.recordId, 2, "the record with the 2 carried doses");
  },

  async suspend({ kit }) {
    const a = await activated(kit);
    const d = next(kit, a.directive, suspendAction(kit));
    await kit.deliver(d);
    const r = await receiptFor(kit, d);
    expect(r.outcome === ReceiptOutcome.APPLIED, "suspend answered APPLIED", show(r));
    const contents = r.result.case === "suspended" ? r.result.value : undefined;
    expect(
      contents?.record?.doses.length === 2,
      "the suspend receipt carrying the record's 2 doses",
      show(r),
    );
    expect(
      contents?.suspendedCertificateNumber === a.certificate,
      `suspended certificate ${a.certificate}`,
      show(r),
    );
    const s = await statusOf(kit, a.certificate);
    expect(s === "SUSPENDED", "the certificate SUSPENDED at the province API", s);
  },

  async "append-dose"({ kit }) {
    const a = await activated(kit);
    const extra = dose(kit.virtual[1], 3);
    const d = next(kit, a.directive, appendAction(extra));
    await kit.deliver(d);
    const r = await receiptFor(kit, d);
    expect(r.outcome === ReceiptOutcome.APPLIED, "append answered APPLIED", show(r));
    const rec = await kit.api.getRecord({ recordId: a.recordId });
    const ids = rec.record?.doses.map((x) => x.doseId) ?? [];
    expect(
      ids.includes(extra.doseId) && ids.length === 3,
      "the record with the appended dose (3 doses)",
      ids.join(","),
    );
    const s = await statusOf(kit, a.certificate);
    expect(s === "NORMAL", "the certificate still NORMAL", s);
  },

  async "append-dose-same-id"({ kit }) {
    const a = await activated(kit);
    const extra = dose(kit.virtual[1], 3);
    const d1 = next(kit, a.directive, appendAction(extra));
    const d2 = next(kit, d1, appendAction(extra));
    await kit.deliver(d1);
    await receiptFor(kit, d1);
    await kit.deliver(d2);
    const r2 = await receiptFor(kit, d2);
    expect(
      r2.outcome === ReceiptOutcome.ALREADY_APPLIED,
      "a second directive with the same dose id answered ALREADY_APPLIED",
      show(r2),
    );
    const rec = await kit.api.getRecord({ recordId: a.recordId });
    const count = rec.record?.doses.filter((x) => x.doseId === extra.doseId).length;
    expect(count === 1, "the dose exactly once in the record (I3)", `${count} times`);
  },

  async "append-dose-unknown-record"({ kit }) {
    const d = kit.directive({ action: appendAction(dose(kit.virtual[1])) });
    await kit.deliver(d);
    const r = await receiptFor(kit, d);
    expect(
      r.outcome === ReceiptOutcome.REJECTED && r.rejection === ReceiptRejection.RECORD_NOT_FOUND,
      "REJECTED with RECEIPT_REJECTION_RECORD_NOT_FOUND",
      show(r),
    );
  },

  async restore({ kit }) {
    const a = await activated(kit);
    const s = next(kit, a.directive, suspendAction(kit));
    await kit.deliver(s);
    await receiptFor(kit, s);
    const late = dose(kit.virtual[1], 4);
    const d = next(kit, s, {
      case: "restoreRecord",
      value: {
        $typeName: "evc.directive.v1.RestoreRecord",
        migrationId: crypto.randomUUID(),
        doses: [late],
      },
    });
    await kit.deliver(d);
    const r = await receiptFor(kit, d);
    expect(r.outcome === ReceiptOutcome.APPLIED, "restore answered APPLIED", show(r));
    const st = await statusOf(kit, a.certificate);
    expect(st === "NORMAL", "the certificate NORMAL again", st);
    const rec = await kit.api.getRecord({ recordId: a.recordId });
    expect(
      rec.record?.doses.some((x) => x.doseId === late.doseId) === true,
      "the dose carried by the restore kept (I3)",
      `${rec.record?.doses.length} doses`,
    );
  },

  async revoke({ kit }) {
    const a = await activated(kit);
    const d = next(kit, a.directive, {
      case: "revokeCertificate",
      value: {
        $typeName: "evc.directive.v1.RevokeCertificate",
        reason: CloseReason.DECEASED,
        mergedIntoRecordId: "",
      },
    });
    await kit.deliver(d);
    const r = await receiptFor(kit, d);
    expect(r.outcome === ReceiptOutcome.APPLIED, "revoke answered APPLIED", show(r));
    const st = await statusOf(kit, a.certificate);
    expect(st === "REVOKED", "the certificate REVOKED", st);
  },

  async duplicate({ kit, tc }) {
    const times = tc.deliveries || 3;
    const who = identity();
    const recordId = crypto.randomUUID();
    const d = activateDirective(kit, recordId, who, [dose(kit.virtual[0])]);
    await kit.deliver(d, times);
    const rs = await kit.waitReceipts(d.directiveId, times, 8000);
    expect(rs.length >= 1, "a receipt", "none");
    expect(
      sameReceipts(rs),
      `every receipt for the ${times} deliveries identical (I4)`,
      rs.map(show).join(" | "),
    );
    expect(rs[0]?.outcome === ReceiptOutcome.APPLIED, "APPLIED", show(rs[0]));
    const byId = await kit.api.getCertificateStatusByIdentity({ identity: who });
    const cert = rs[0]?.result.case === "activated" ? rs[0].result.value.certificateNumber : "";
    expect(
      byId.certificate?.certificateNumber === cert,
      `one certificate for the person, ${cert}`,
      byId.certificate?.certificateNumber ?? "none",
    );
  },

  async redelivery({ kit }) {
    const a = await activated(kit, 1);
    const d = next(kit, a.directive, appendAction(dose(kit.virtual[1])));
    await kit.deliver(d);
    const first = await receiptFor(kit, d);
    await new Promise((r) => setTimeout(r, 1500));
    await kit.deliver(d);
    const rs = await kit.waitReceipts(d.directiveId, 2, 8000);
    expect(
      rs.length === 2,
      "the stored receipt sent again for the redelivered directive",
      `${rs.length} receipt(s)`,
    );
    expect(
      sameReceipts([first, ...rs]),
      "the same receipt as the first time",
      rs.map(show).join(" | "),
    );
    await expectDoseCount(kit, a.recordId, 2, "the dose appended once");
  },

  async "receipts-retried"({ kit }) {
    const a = await activated(kit, 1);
    const extra = dose(kit.virtual[1], 2);
    const d = next(kit, a.directive, appendAction(extra));
    kit.outage.start();
    await kit.deliver(d);
    const refused = await kit.outage.over();
    expect(
      refused > 0,
      "the province to send the receipt while the hub was unreachable (within 10 s of the directive)",
      "no SubmitReceipts call",
    );
    const r = await receiptFor(kit, d, 15_000);
    expect(
      r.outcome === ReceiptOutcome.APPLIED,
      "the receipt sent again once the hub answers, APPLIED",
      show(r),
    );
    await expectDoseCount(kit, a.recordId, 2, "the dose appended once");
  },

  async reorder({ kit }) {
    const a = await activated(kit, 1);
    const later = dose(kit.virtual[1], 2);
    const append = next(kit, a.directive, appendAction(later));
    const suspend = next(kit, append, suspendAction(kit));
    // The bus hands the province the later directive first.
    await kit.deliver(suspend);
    await new Promise((r) => setTimeout(r, 300));
    await kit.deliver(append);
    const rs = await receiptFor(kit, suspend);
    const contents =
      rs.result.case === "suspended"
        ? (rs.result.value.record?.doses.map((x) => x.doseId) ?? [])
        : [];
    expect(
      contents.includes(later.doseId),
      "per-record order kept: the suspend (sequence 3) applied after the append (sequence 2), its contents include that dose",
      show(rs),
    );
  },

  async "wrong-province"({ kit }) {
    const who = identity();
    const recordId = crypto.randomUUID();
    const foreign = activateDirective(kit, recordId, who, [], {
      targetProvinceCode: kit.virtual[1],
    });
    await kit.deliver(foreign); // on this province's subject, addressed to another (I7)
    await noReceipt(kit, foreign, 1500);
    const code = await codeOf(kit.api.getRecord({ recordId }));
    expect(
      code === "NotFound",
      "no record created from another province's directive (I7)",
      code === "ok" ? "the record exists" : code,
    );
    await activated(kit, 0); // and the province is still working
  },

  async forged({ kit }) {
    const who = identity();
    const recordId = crypto.randomUUID();
    const d = activateDirective(kit, recordId, who, []);
    const bytes = toBinary(DirectiveSchema, d);
    const code = kit.config.province.code;
    // Anyone who can publish on the bus: no signature, a key the hub does not own, and the
    // hub's real signature over other bytes (an altered directive).
    kit.trace(`→ forged copies of directive ${d.directiveId}`);
    await kit.publish(bytes, code, `${d.directiveId}/unsigned`, null);
    await kit.publish(
      bytes,
      code,
      `${d.directiveId}/foreign`,
      generateSigningKey("intruder").sign(bytes),
    );
    const altered = toBinary(DirectiveSchema, { ...d, recordId: crypto.randomUUID() });
    await kit.publish(altered, code, `${d.directiveId}/altered`, kit.directiveSigner.sign(bytes));
    await noReceipt(kit, d, 1500);
    const found = await codeOf(kit.api.getRecord({ recordId }));
    expect(
      found === "NotFound",
      "no record created from a directive the hub did not sign",
      found === "ok" ? "the record exists" : found,
    );
    await activated(kit, 0); // a genuinely signed directive is still applied
  },

  async malformed({ kit }) {
    await kit.publish(new Uint8Array([0xff, 0xff, 0xff, 0x01, 0x02]));
    const bad = kit.directive({
      directiveId: "not-a-uuid",
      action: appendAction(dose(kit.virtual[1])),
    });
    await kit.deliver(bad);
    await noReceipt(kit, bad, 1000);
    await activated(kit, 0); // the province survived and goes on
  },

  async "unknown-action"({ kit }) {
    const d = kit.directive({ action: { case: undefined } });
    // Field 99, length-delimited: an action from a newer contract this province cannot know.
    const bytes = new Uint8Array([...toBinary(DirectiveSchema, d), 0x9a, 0x06, 0x02, 0x08, 0x01]);
    kit.trace(`→ directive with unknown action field 99 ${d.directiveId}`);
    await kit.publish(bytes, kit.config.province.code, d.directiveId);
    const r = await receiptFor(kit, d);
    expect(
      r.outcome === ReceiptOutcome.REJECTED && r.rejection === ReceiptRejection.UNKNOWN_ACTION,
      "REJECTED with RECEIPT_REJECTION_UNKNOWN_ACTION",
      show(r),
    );
  },

  async "status-by-number"({ kit }) {
    const a = await activated(kit, 0);
    const res = await kit.api.getCertificateStatus({ certificateNumber: a.certificate });
    expect(
      res.certificate?.recordId === a.recordId,
      `record ${a.recordId}`,
      res.certificate?.recordId ?? "none",
    );
    expect(
      res.certificate?.status === CertificateStatus.NORMAL,
      "NORMAL",
      CertificateStatus[res.certificate?.status ?? 0] ?? "?",
    );
  },

  async "phone-access"({ kit }) {
    const a = await activated(kit, 1);
    const b = await activated(kit, 0);
    const open = await kit.phone().getCertificateStatus({ certificateNumber: a.certificate });
    expect(
      open.certificate?.status === CertificateStatus.NORMAL && open.certificate.recordId === "",
      "anyone reads status by number, with no record id",
      `status ${CertificateStatus[open.certificate?.status ?? 0]}, record id "${open.certificate?.recordId ?? ""}"`,
    );
    const elsewhere = await kit.readerToken({ province: kit.virtual[0] });
    const anonymous: [string, () => Promise<unknown>][] = [
      ["GetRecord", () => kit.phone().getRecord({ recordId: a.recordId })],
      [
        "GetCertificateStatusByIdentity",
        () => kit.phone().getCertificateStatusByIdentity({ identity: a.identity }),
      ],
      [
        "GetRecord with another province's token",
        () => kit.phone(elsewhere).getRecord({ recordId: a.recordId }),
      ],
    ];
    for (const [what, call] of anonymous) {
      const code = await codeOf(call());
      expect(
        code === "Unauthenticated",
        `${what} without a valid reader token: Unauthenticated`,
        code,
      );
    }
    const holder = kit.phone(await kit.readerToken({ scope: "holder:read", record: a.recordId }));
    const own = await holder.getRecord({ recordId: a.recordId });
    expect(
      own.record?.doses.length === 1,
      "a holder token reads its own record",
      `${own.record?.doses.length ?? "no"} doses`,
    );
    for (const [what, id] of [
      ["another person's record", b.recordId],
      ["a record that does not exist", crypto.randomUUID()],
    ] as const) {
      const code = await codeOf(holder.getRecord({ recordId: id }));
      expect(code === "PermissionDenied", `a holder asking for ${what}: PermissionDenied`, code);
    }
  },

  async "status-by-identity"({ kit }) {
    const a = await activated(kit, 0);
    const res = await kit.api.getCertificateStatusByIdentity({ identity: a.identity });
    expect(
      res.certificate?.certificateNumber === a.certificate,
      a.certificate,
      res.certificate?.certificateNumber ?? "none",
    );
  },

  async "status-not-found"({ kit, tc }) {
    const code = await codeOf(
      kit.api.getCertificateStatus({ certificateNumber: `${kit.config.province.code}-NOSUCH0001` }),
    );
    expect(code === (tc.expectCode || "NotFound"), tc.expectCode || "NotFound", code);
  },

  async "bad-input"({ kit, tc }) {
    const checks: [string, () => Promise<unknown>][] = [
      [
        "GetCertificateStatus with a malformed number",
        () => kit.api.getCertificateStatus({ certificateNumber: "nope" }),
      ],
      [
        "GetCertificateStatusByIdentity with no identity",
        () => kit.api.getCertificateStatusByIdentity({}),
      ],
      [
        "GetCertificateStatusByIdentity with a bad check character",
        () =>
          kit.api.getCertificateStatusByIdentity({
            identity: { ...identity(), idNumber: "11010519491231002Y" },
          }),
      ],
      ["GetRecord with an empty id", () => kit.api.getRecord({ recordId: "" })],
    ];
    const want = tc.expectCode || "InvalidArgument";
    for (const [what, call] of checks) {
      const code = await codeOf(call());
      expect(code === want, `${what}: ${want}`, code);
    }
  },

  async watch({ kit }) {
    const a = await activated(kit, 0);
    const abort = new AbortController();
    const pushes: { status: string; at: number }[] = [];
    const watching = (async () => {
      for await (const m of kit.api.watchCertificate(
        { certificateNumber: a.certificate },
        { signal: abort.signal },
      )) {
        pushes.push({
          status: CertificateStatus[m.certificate?.status ?? 0] ?? "?",
          at: Date.now(),
        });
      }
    })().catch(() => undefined);
    const seen = () => pushes.map((p) => p.status).join(",") || "nothing";
    const waitFor = async (n: number, ms: number) => {
      const end = Date.now() + ms;
      while (pushes.length < n && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    };
    try {
      await waitFor(1, 5000);
      expect(
        pushes[0]?.status === "NORMAL",
        "the watch to start with the current status NORMAL",
        seen(),
      );
      // Three successive changes: each pushed, in order, within a second, never a stale value.
      let prev = a.directive;
      const changes: [Directive["action"], string][] = [
        [suspendAction(kit), "SUSPENDED"],
        [
          {
            case: "restoreRecord",
            value: {
              $typeName: "evc.directive.v1.RestoreRecord",
              migrationId: crypto.randomUUID(),
              doses: [],
            },
          },
          "NORMAL",
        ],
        [
          {
            case: "revokeCertificate",
            value: {
              $typeName: "evc.directive.v1.RevokeCertificate",
              reason: CloseReason.DECEASED,
              mergedIntoRecordId: "",
            },
          },
          "REVOKED",
        ],
      ];
      for (const [i, [action, status]] of changes.entries()) {
        const d = next(kit, prev, action);
        prev = d;
        await kit.deliver(d);
        await receiptFor(kit, d);
        const answeredAt = Date.now();
        await waitFor(i + 2, 3000);
        const pushed = pushes[i + 1];
        expect(
          pushed?.status === status && pushes.length === i + 2,
          `${status} pushed on the watch stream after change ${i + 1} of 3, and nothing else`,
          seen(),
        );
        expect(
          pushed.at - answeredAt <= 1000,
          `the push of ${status} within a second of the province's receipt`,
          `${pushed.at - answeredAt} ms`,
        );
      }
    } finally {
      abort.abort();
      await watching;
    }
  },

  async register({ kit }) {
    const who = identity();
    const res = await kit.control.registerRecord({
      identity: who,
      doses: [dose(kit.config.province.code)],
    });
    const located = await kit
      .asVirtual(RecordService, kit.virtual[0])
      .locateRecord({ identity: who });
    expect(
      located.ownerProvinceCode === kit.config.province.code,
      `the hub naming ${kit.config.province.code} the owner`,
      located.ownerProvinceCode,
    );
    expect(
      located.certificate?.certificateNumber === res.certificateNumber,
      `certificate ${res.certificateNumber} at the hub`,
      located.certificate?.certificateNumber ?? "none",
    );
    const st = await statusOf(kit, res.certificateNumber);
    expect(st === "NORMAL", "the certificate NORMAL at the province", st);
    const again = await codeOf(kit.control.registerRecord({ identity: who }));
    expect(
      again === "AlreadyExists",
      "registering the same person again refused with AlreadyExists (I1)",
      again,
    );
  },

  async "migrate-in"({ kit }) {
    const person = await ownedByVirtual(kit);
    const { migrationId } = await kit.control.migrateIn({ identity: person.identity });
    const t0 = Date.now();
    let suspend: Directive | undefined;
    while (!suspend && Date.now() - t0 < 10_000) {
      suspend = kit.virtualDirectives.find(
        (d) => d.correlationId === migrationId && d.action.case === "suspendForMigration",
      );
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(suspend !== undefined, "the hub's suspend directive to the source", "none");
    // The source holds its answer: the target must not show a NORMAL certificate meanwhile (I2).
    const holdUntil = Date.now() + 1500;
    while (Date.now() < holdUntil) {
      const byId = await kit.api
        .getCertificateStatusByIdentity({ identity: person.identity })
        .catch(() => undefined);
      const st = byId?.certificate?.status;
      expect(
        st !== CertificateStatus.NORMAL,
        "no NORMAL certificate at the target before the source's suspend receipt was recorded (I2)",
        `${byId?.certificate?.certificateNumber} NORMAL while the source still holds ${person.certificate} NORMAL`,
      );
      await new Promise((r) => setTimeout(r, 100));
    }
    await kit.answerAs(kit.virtual[0], [
      create(ReceiptSchema, {
        directiveId: suspend.directiveId,
        attempt: suspend.attempt,
        outcome: ReceiptOutcome.APPLIED,
        appliedAt: timestampFromDate(new Date()),
        result: {
          case: "suspended",
          value: {
            $typeName: "evc.directive.v1.SuspendResult",
            record: create(RecordContentsSchema, {
              recordId: person.recordId,
              identity: person.identity,
              doses: person.doses,
            }),
            suspendedCertificateNumber: person.certificate,
          },
        },
      }),
    ]);
    const end = Date.now() + 10_000;
    let state = await migrationState(kit, migrationId);
    while (state !== MigrationState.COMPLETED && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
      state = await migrationState(kit, migrationId);
    }
    expect(
      state === MigrationState.COMPLETED,
      "the migration COMPLETED (activate applied, issuance reported)",
      MigrationState[state] ?? "?",
    );
    const { migration } = await kit
      .asVirtual(MigrationService, kit.virtual[0])
      .getMigration({ migrationId });
    const st = await statusOf(kit, migration?.targetCertificateNumber ?? "");
    expect(
      st === "NORMAL",
      `the reported certificate ${migration?.targetCertificateNumber} NORMAL at the province`,
      st,
    );
  },

  async "report-dose"({ kit }) {
    const person = await ownedByVirtual(kit);
    const given = dose(kit.config.province.code, 2);
    const res = await kit.control.recordDose({ identity: person.identity, dose: given });
    expect(
      res.reportedToHub,
      "the dose reported to the hub (the record is owned elsewhere)",
      "not reported",
    );
    const t0 = Date.now();
    let routed: Directive | undefined;
    while (!routed && Date.now() - t0 < 10_000) {
      routed = kit.virtualDirectives.find(
        (d) => d.action.case === "appendDose" && d.action.value.dose?.doseId === given.doseId,
      );
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(routed !== undefined, "the hub routing the dose to the owner", "nothing routed");
  },

  async reconcile({ kit }) {
    // The hub learns of a record the province never heard about (a lost directive, say).
    const code = kit.config.province.code;
    const who = identity();
    const cert = `${code}-KITREC${crypto.randomUUID().slice(0, 6).toUpperCase()}`;
    // Playing the hub: write to the kit hub's own store, as a lost directive would leave it.
    const key = personKey(kit.hub.config.personKeySecret, who);
    await kit.hub.store.execute(
      key,
      {
        kind: "register",
        caller: code,
        identity: identityToJson(who),
        certificateNumber: cert,
        doses: [],
      },
      () => null,
    );
    const missing = await codeOf(kit.api.getCertificateStatus({ certificateNumber: cert }));
    expect(missing === "NotFound", "the province not to know the certificate yet", missing);
    await kit.control.reconcile({});
    const st = await statusOf(kit, cert).catch(() => "missing");
    expect(st === "NORMAL", "reconciliation to add the missing certificate, NORMAL (I6)", st);
    // Then the hub closes it without telling the province: statuses differ until reconciliation.
    const located = await kit
      .asVirtual(RecordService, kit.virtual[0])
      .locateRecord({ identity: who });
    await kit.hub.store.execute(
      key,
      { kind: "close", caller: code, recordId: located.recordId, reason: "DELETED" },
      () => null,
    );
    await kit.control.reconcile({});
    const after = await statusOf(kit, cert);
    expect(after === "REVOKED", "reconciliation to correct the status to REVOKED (I6)", after);
  },

  async "restart-after-delivery"({ kit }) {
    const who = identity();
    const recordId = crypto.randomUUID();
    const d = activateDirective(kit, recordId, who, [dose(kit.virtual[0])]);
    // The worst moment: the province has fetched the directive and is applying it (or has just
    // answered). A province that acks only after its commit either has the effect stored or gets
    // the message again; one that acks first and applies later loses it.
    await kit.waitConsumed(await kit.deliver(d), false);
    await kit.waitReceipts(d.directiveId, 1, 100);
    await kit.restartProvince();
    const r = await receiptFor(kit, d, 15_000);
    expect(
      r.outcome === ReceiptOutcome.APPLIED,
      "the directive applied despite the restart (redelivered until acknowledged)",
      show(r),
    );
    const byId = await kit.api.getCertificateStatusByIdentity({ identity: who });
    expect(
      byId.certificate?.status === CertificateStatus.NORMAL,
      "the record and its NORMAL certificate",
      CertificateStatus[byId.certificate?.status ?? 0] ?? "none",
    );
  },

  async "restart-duplicate"({ kit }) {
    const a = await activated(kit, 1);
    const d = next(kit, a.directive, appendAction(dose(kit.virtual[1])));
    await kit.deliver(d);
    const first = await receiptFor(kit, d);
    await kit.restartProvince();
    await kit.deliver(d);
    const rs = await kit.waitReceipts(d.directiveId, 2, 15_000);
    expect(
      rs.length >= 2 && sameReceipts(rs) && sameReceipts([first, ...rs]),
      "the same receipt after a restart (I4)",
      rs.map(show).join(" | "),
    );
    await expectDoseCount(kit, a.recordId, 2, "the dose appended once");
  },
};
