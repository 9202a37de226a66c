import { CertificateStatus, CloseReason } from "@evc-interop/gen/evc/common/v1/record_pb";
import type { Directive } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import type { Scenario } from "../case.js";
import { activated, codeOf, expect, identity, next, receiptFor, suspendAction } from "./support.js";

/** The province API phones and clinics use (suite status, profile core). */
export const STATUS_SCENARIOS: Record<string, Scenario> = {
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
};
