import { create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import type { Identity } from "@evc-interop/gen/evc/common/v1/identity_pb";
import {
  CertificateStatus,
  type Dose,
  DoseSchema,
  RecordStatus,
} from "@evc-interop/gen/evc/common/v1/record_pb";
import {
  DirectiveSchema,
  ReceiptOutcome,
  ReceiptSchema,
} from "@evc-interop/gen/evc/directive/v1/directive_pb";
import { DoseService } from "@evc-interop/gen/evc/national/v1/dose_service_pb";
import {
  MigrationService,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import { doseToJson, identityToJson, personKey } from "@evc-interop/national";
import { provinceSubject } from "@evc-interop/runtime";
import { jetstreamManager } from "@nats-io/jetstream";
import type { Scenario } from "../case.js";
import type { Kit } from "../kit.js";
import { activated, codeOf, dose, expect, identity, migrationState, statusOf } from "./support.js";

/**
 * Plays the hub: records a person the province owns in the kit hub's own store, as a directive
 * lost on its way would leave it (the province never hears of it but through reconciliation).
 */
async function knownOnlyToHub(kit: Kit, doses: Dose[]) {
  const code = kit.config.province.code;
  const who = identity();
  const certificate = `${code}-KITREC${crypto.randomUUID().slice(0, 6).toUpperCase()}`;
  const key = personKey(kit.hub.config.personKeySecret, who);
  await kit.hub.store.execute(
    key,
    {
      kind: "register",
      caller: code,
      identity: identityToJson(who),
      certificateNumber: certificate,
      doses: doses.map(doseToJson),
    },
    () => null,
  );
  const { recordId } = await kit
    .asVirtual(RecordService, kit.virtual[0])
    .locateRecord({ identity: who });
  return { identity: who, key, certificate, recordId };
}

/** Polls `f` every 50 ms until it gives a value (at most 10 s). */
async function poll<T>(what: string, f: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const end = Date.now() + 10_000;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    expect(Date.now() < end, what, "not within 10 s");
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The suspend directive of a migration, once the kit's hub has published it. */
function suspendOf(kit: Kit, migrationId: string) {
  return poll("the hub publishing the suspend", async () => {
    const [row] = await kit.hub.sql<{ directive_id: string }[]>`
      SELECT directive_id::text FROM directives
      WHERE migration_id = ${migrationId} AND action = 'suspendForMigration' AND state = 'DELIVERED'`;
    return row;
  });
}

/** Removes a migration's suspend from the bus before the (stopped) province can take it. */
async function lose(kit: Kit, migrationId: string): Promise<void> {
  const { directive_id: id } = await suspendOf(kit, migrationId);
  await loseFromBus(kit, id, "the suspend");
}

/** Removes a published directive, the last on the province's subject, from the bus. */
async function loseFromBus(kit: Kit, id: string, what: string): Promise<void> {
  const jsm = await jetstreamManager(kit.nc);
  const subject = provinceSubject(kit.layout, kit.config.province.code);
  const last = await jsm.streams.getMessage(kit.layout.stream, { last_by_subj: subject });
  const d = last ? fromBinary(DirectiveSchema, last.data) : undefined;
  expect(
    d?.directiveId === id,
    `the suspend ${id} the last message on ${subject}`,
    d?.directiveId ?? "none",
  );
  await jsm.streams.deleteMessage(kit.layout.stream, last?.seq ?? 0);
  kit.trace(`! ${what} ${id} removed from the bus while the province is away`);
}

/**
 * A dose given in a virtual province to a person the kit's province owns: the hub routes it
 * there as the record's next directive (after sequence `after`).
 */
async function doseRouted(kit: Kit, who: Identity, recordId: string, n: number, after: number) {
  const given = dose(kit.virtual[0], n);
  await kit.asVirtual(DoseService, kit.virtual[0]).reportDose({ identity: who, dose: given });
  const published = await poll("the hub publishing the dose to the province", async () => {
    const [row] = await kit.hub.sql<{ directive_id: string; record_sequence: number }[]>`
      SELECT directive_id::text, record_sequence::int FROM directives
      WHERE province = ${kit.config.province.code} AND record_id = ${recordId}
        AND action = 'appendDose' AND record_sequence > ${after} AND state <> 'PENDING'
      ORDER BY record_sequence LIMIT 1`;
    return row;
  });
  return { dose: given, directiveId: published.directive_id, sequence: published.record_sequence };
}

/** The record as the province shows it: every dose the kit expects, field by field. */
async function expectRecord(kit: Kit, recordId: string, doses: Dose[], rule: string) {
  const got = await kit.api.getRecord({ recordId });
  const held = new Map((got.record?.doses ?? []).map((d) => [d.doseId, d]));
  const wrong = doses.filter((d) => {
    const h = held.get(d.doseId);
    return !h || !equals(DoseSchema, h, d);
  });
  expect(
    wrong.length === 0 && held.size === doses.length,
    `${rule}: the record holding exactly ${doses.map((d) => d.doseId).join(", ")}, every field as the hub has it`,
    `${held.size} doses; ${wrong.length ? `missing or different: ${wrong.map((d) => d.doseId).join(", ")}` : "others"}`,
  );
  return got;
}

/** Reconciliation against the hub snapshot (profile reconciliation, I6). */
export const RECONCILIATION_SCENARIOS: Record<string, Scenario> = {
  async "reconcile-resyncs-after-restore"({ kit }) {
    // A province restored from an older backup has forgotten directives it applied and
    // answered: the kit plays that by answering one in the province's place, unseen by it.
    // The next directive of the record then waits on a gap only the hub can close: the
    // province must resync the record (StreamSnapshot with record_ids, record_sequence) and
    // apply it — within seconds, without a full pass (#28).
    const code = kit.config.province.code;
    const first = dose(code, 1);
    const { identity: who, recordId } = await knownOnlyToHub(kit, [first]);
    await kit.control.reconcile({});
    await expectRecord(kit, recordId, [first], "the record added by a pass");
    await kit.stopProvince();
    const forgotten = await doseRouted(kit, who, recordId, 2, 0);
    await loseFromBus(kit, forgotten.directiveId, "the dose append");
    const answered = create(ReceiptSchema, {
      directiveId: forgotten.directiveId,
      attempt: 1,
      outcome: ReceiptOutcome.APPLIED,
      appliedAt: timestampNow(),
    });
    await kit.hub.sql`UPDATE directives SET state = 'ACKNOWLEDGED', receipt_outcome = 'APPLIED',
        receipt = ${toBinary(ReceiptSchema, answered)}
      WHERE directive_id = ${forgotten.directiveId}::uuid`;
    kit.trace(
      `! ${forgotten.directiveId} (sequence ${forgotten.sequence}) answered in the province's place`,
    );
    await kit.startProvince();
    const next = await doseRouted(kit, who, recordId, 3, forgotten.sequence);
    const end = Date.now() + 30_000;
    for (;;) {
      const [row] = await kit.hub.sql<{ state: string }[]>`
        SELECT state FROM directives WHERE directive_id = ${next.directiveId}::uuid`;
      if (row?.state === "ACKNOWLEDGED") break;
      expect(
        Date.now() < end,
        `the directive after the gap (sequence ${next.sequence}) applied and answered within 30 s, the record resynced from the hub`,
        `still ${row?.state ?? "unknown"}`,
      );
      await new Promise((r) => setTimeout(r, 200));
    }
    await expectRecord(
      kit,
      recordId,
      [first, forgotten.dose, next.dose],
      "the resynced record holding the forgotten dose and the next (I3)",
    );
  },

  async reconcile({ kit }) {
    const code = kit.config.province.code;
    const { key, certificate, recordId } = await knownOnlyToHub(kit, []);
    const missing = await codeOf(kit.api.getCertificateStatus({ certificateNumber: certificate }));
    expect(missing === "NotFound", "the province not to know the certificate yet", missing);
    const first = await kit.control.reconcile({});
    expect(
      first.missingRepaired >= 1n,
      "the pass to report a certificate added",
      `${first.missingRepaired}`,
    );
    const st = await statusOf(kit, certificate).catch(() => "missing");
    expect(st === "NORMAL", "reconciliation to add the missing certificate, NORMAL (I6)", st);
    // Then the hub closes it without telling the province: statuses differ until reconciliation.
    await kit.hub.store.execute(
      key,
      { kind: "close", caller: code, recordId, reason: "DELETED" },
      () => null,
    );
    await kit.control.reconcile({});
    const after = await statusOf(kit, certificate);
    expect(after === "REVOKED", "reconciliation to correct the status to REVOKED (I6)", after);
    const rec = await kit.api.getRecord({ recordId });
    expect(
      rec.status === RecordStatus.CLOSED,
      "reconciliation to correct the record's status to CLOSED (I6)",
      RecordStatus[rec.status] ?? String(rec.status),
    );
  },

  async "reconcile-removes-unknown"({ kit }) {
    // A certificate the hub never issued (the kit published the activation as the hub, and the
    // hub's own store knows nothing of it): the snapshot is the truth, the row must go.
    const { certificate } = await activated(kit, 1);
    const before = await statusOf(kit, certificate);
    expect(before === "NORMAL", "the activated certificate NORMAL before reconciliation", before);
    const pass = await kit.control.reconcile({});
    expect(
      pass.extraRepaired >= 1n,
      "the pass to report a certificate removed",
      `${pass.extraRepaired}`,
    );
    const gone = await codeOf(kit.api.getCertificateStatus({ certificateNumber: certificate }));
    expect(
      gone === "NotFound",
      "reconciliation to remove a certificate the hub does not know (I6)",
      gone === "ok" ? "still served" : gone,
    );
  },

  async "reconcile-repairs-owner"({ kit }) {
    const code = kit.config.province.code;
    const held = dose(code, 1);
    const { identity: who, key, certificate, recordId } = await knownOnlyToHub(kit, [held]);
    await kit.control.reconcile({});
    const before = await statusOf(kit, certificate).catch(() => "missing");
    expect(
      before === "NORMAL",
      "the record added by reconciliation, its certificate NORMAL",
      before,
    );
    // The province is away while the person migrates to another province, and the suspend the
    // hub sent it is lost: when it comes back, only the snapshot can tell it who owns the record.
    await kit.stopProvince();
    const target = kit.virtual[0];
    const { migration } = await kit
      .asVirtual(MigrationService, target)
      .requestMigration({ identity: who, idempotencyKey: crypto.randomUUID() });
    const migrationId = migration?.migrationId ?? "";
    await lose(kit, migrationId);
    await kit.hub.store.execute(
      key,
      {
        kind: "receipt",
        caller: code,
        migrationId,
        directiveId: (await suspendOf(kit, migrationId)).directive_id,
        attempt: 1,
        outcome: "APPLIED",
        detail: "",
        sourceDoses: [doseToJson(held)],
      },
      () => null,
    );
    const activate = await poll("the hub activating the record at the kit's province", () =>
      kit.virtualDirectives.find(
        (d) =>
          d.action.case === "activateMigratedRecord" && d.action.value.migrationId === migrationId,
      ),
    );
    await kit.answerAs(target, [
      create(ReceiptSchema, {
        directiveId: activate.directiveId,
        attempt: activate.attempt,
        outcome: ReceiptOutcome.APPLIED,
        appliedAt: timestampNow(),
        result: {
          case: "activated",
          value: {
            certificateNumber: `${target}-KITOWN${crypto.randomUUID().slice(0, 6).toUpperCase()}`,
          },
        },
      }),
    ]);
    await poll("the migration completed at the hub", async () =>
      (await migrationState(kit, migrationId)) === MigrationState.COMPLETED ? true : undefined,
    );
    await kit.startProvince();
    const pass = await kit.control.reconcile({});
    expect(
      pass.ownerRepaired >= 1n,
      "the pass to report an owner corrected",
      `${pass.ownerRepaired}`,
    );
    const after = await statusOf(kit, certificate);
    expect(
      after === "SUSPENDED",
      "reconciliation to suspend the certificate of a record that moved away (I1, I6)",
      after,
    );
    const rec = await kit.api.getRecord({ recordId });
    expect(
      rec.status === RecordStatus.MIGRATED_OUT,
      "reconciliation to mark the record MIGRATED_OUT: another province owns it now (I1, I6)",
      RecordStatus[rec.status] ?? String(rec.status),
    );
  },

  async "reconcile-repairs-contents"({ kit }) {
    const code = kit.config.province.code;
    const first = dose(code, 1);
    const { identity: who, certificate, recordId } = await knownOnlyToHub(kit, [first]);
    await kit.control.reconcile({});
    const added = await expectRecord(kit, recordId, [first], "a record added by reconciliation");
    expect(
      added.record?.identity?.idNumber === who.idNumber,
      "the added record carrying the person's identity as the hub has it",
      added.record?.identity?.idNumber ? "another identity" : "no identity",
    );
    expect(
      added.certificate?.certificateNumber === certificate &&
        added.certificate.status === CertificateStatus.NORMAL,
      `the added record's certificate ${certificate}, NORMAL`,
      `${added.certificate?.certificateNumber ?? "none"} ${CertificateStatus[added.certificate?.status ?? 0]}`,
    );
    // The hub learns of a second dose the province never received (its directive lost).
    const second = dose(kit.virtual[0], 2);
    await kit.hub.store.execute(
      personKey(kit.hub.config.personKeySecret, who),
      {
        kind: "reportDose",
        caller: code,
        identity: identityToJson(who),
        dose: doseToJson(second),
        heldByReporter: true,
      },
      () => null,
    );
    const pass = await kit.control.reconcile({});
    expect(
      pass.contentsRepaired >= 1n,
      "the pass to report a record's contents repaired",
      `${pass.contentsRepaired}`,
    );
    await expectRecord(
      kit,
      recordId,
      [first, second],
      "reconciliation adding the dose only the hub held (I3, I6)",
    );
  },
};
