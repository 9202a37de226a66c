import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { CertificateStatus, RecordContentsSchema } from "@evc-interop/gen/evc/common/v1/record_pb";
import {
  type Directive,
  ReceiptOutcome,
  ReceiptSchema,
} from "@evc-interop/gen/evc/directive/v1/directive_pb";
import {
  MigrationService,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import type { Scenario } from "../case.js";
import {
  activateDirective,
  activated,
  appendAction,
  codeOf,
  dose,
  expect,
  expectDoseCount,
  identity,
  migrationState,
  next,
  ownedByVirtual,
  receiptFor,
  sameReceipts,
  show,
  statusOf,
} from "./support.js";

/** Flows the province starts, and restarts (profiles initiator, resilience). */
export const FLOW_SCENARIOS: Record<string, Scenario> = {
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
