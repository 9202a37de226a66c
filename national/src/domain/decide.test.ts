import { describe, expect, it } from "vitest";
import {
  ctx,
  dose,
  given,
  identity,
  migrateToGD,
  receipt,
  refused,
  register,
  when,
} from "../testing/decide-given.js";
import { type Command, decide, MAX_DOSES_PER_RECORD, type OutboxDirective } from "./decide.js";
import { evolve, sequenceKey } from "./person.js";
import { type HubEvent, initialState } from "./types.js";

describe("records", () => {
  it("registers a record with a NORMAL certificate", () => {
    const [e] = when(initialState(), register);
    expect(e?.type).toBe("RecordRegistered");
    const s = given([register]);
    expect(Object.values(s.certificates).map((c) => c.status)).toEqual(["NORMAL"]);
  });

  it("refuses a second record for the same person, naming the owner (I1)", () => {
    const r = refused(() =>
      when(given([register]), { ...register, caller: "440000", certificateNumber: "440000-C2" }),
    );
    expect(r.code).toBe("already_exists");
    expect(r.detail.ownerProvinceCode).toBe("110000");
  });

  it("closing revokes the certificate and frees the person for a new record, except the deceased", () => {
    const s = given(
      [register],
      [{ kind: "close", caller: "110000", recordId: "id-1", reason: "DELETED" }],
    );
    expect(s.certificates["110000-C1"]?.status).toBe("REVOKED");
    expect(when(s, { ...register, certificateNumber: "110000-C3" })[0]?.type).toBe(
      "RecordRegistered",
    );
    const dead = given(
      [register],
      [{ kind: "close", caller: "110000", recordId: "id-1", reason: "DECEASED" }],
    );
    expect(refused(() => when(dead, { ...register, certificateNumber: "110000-C3" })).code).toBe(
      "failed_precondition",
    );
  });

  it("only the owner closes a record", () => {
    expect(
      refused(() =>
        when(given([register]), {
          kind: "close",
          caller: "440000",
          recordId: "id-1",
          reason: "DELETED",
        }),
      ).code,
    ).toBe("permission_denied");
  });
});

describe("migration saga", () => {
  it("requested -> source suspended -> completed, with doses merged by id", () => {
    let s = given([register], [migrateToGD]);
    expect(s.openMigrationId).toBeDefined();
    const [suspended] = when(s, receipt(s, "110000", { sourceDoses: [dose("d1"), dose("d2")] }));
    expect(suspended?.type).toBe("SourceSuspended");
    const activate = suspended?.type === "SourceSuspended" ? suspended.data.directive : undefined;
    expect(activate?.province).toBe("440000");
    expect(
      activate?.action.kind === "activateMigratedRecord" &&
        activate.action.doses.map((d) => d.doseId),
    ).toEqual(["d1", "d2"]);
    s = evolve(s, suspended as HubEvent, { version: s.version + 1, position: 99 });
    expect(s.certificates["110000-C1"]?.status).toBe("SUSPENDED");
    const [completed] = when(s, receipt(s, "440000", { certificateNumber: "440000-N1" }));
    s = evolve(s, completed as HubEvent, { version: s.version + 1, position: 100 });
    expect(s.records["id-1"]?.owner).toBe("440000");
    expect(s.certificates["440000-N1"]?.status).toBe("NORMAL");
    expect(s.openMigrationId).toBeUndefined();
    expect(Object.values(s.certificates).filter((c) => c.status === "NORMAL")).toHaveLength(1);
  });

  it("a dose reported while the source had not answered is the record's when the source rejects the suspension, and goes to it (I3; drill seed 70127)", () => {
    const report: Command = {
      kind: "reportDose",
      caller: "510000",
      identity,
      dose: dose("d9", "510000"),
    };
    let s = given([register], [migrateToGD], [report]);
    expect(s.migrations[s.openMigrationId ?? ""]?.heldDoses.map((d) => d.doseId)).toEqual(["d9"]);
    const [rejected] = when(s, receipt(s, "110000", { outcome: "REJECTED", detail: "no record" }));
    expect(rejected?.type).toBe("MigrationRejected");
    const restore = rejected?.type === "MigrationRejected" ? rejected.data.directive : undefined;
    expect(restore?.province).toBe("110000");
    expect(
      restore?.action.kind === "restoreRecord" && restore.action.doses.map((d) => d.doseId),
    ).toContain("d9");
    s = evolve(s, rejected as HubEvent, { version: s.version + 1, position: 99 });
    expect(s.records["id-1"]?.doses.map((d) => d.doseId)).toContain("d9");
    expect(s.records["id-1"]?.version).toBe(s.version);
    // Its sequence is taken: the next directive to the source follows it.
    expect(s.sequences[sequenceKey("id-1", "110000")]).toBe(restore?.recordSequence);
  });

  it("never tells the target to issue before the source's receipt (I2)", () => {
    const s = given([register], [migrateToGD]);
    // The target answering first is a stale answer, not an issuance.
    expect(
      refused(() => when(s, receipt(s, "440000", { certificateNumber: "440000-N1" }))).reason,
    ).toBe("STALE_ATTEMPT");
  });

  it("is refused to a caller who knows only the document number, before anything is told", () => {
    const s = given([register]);
    const wrongName = refused(() =>
      when(s, { ...migrateToGD, identity: { ...identity, name: "Wang" } }),
    );
    expect([wrongName.code, wrongName.reason, wrongName.detail.field]).toEqual([
      "failed_precondition",
      "IDENTITY_MISMATCH",
      "identity.name",
    ]);
    const all = refused(() =>
      when(s, {
        ...migrateToGD,
        identity: { ...identity, birthDate: "2020-01-16T00:00:00Z", sex: "SEX_FEMALE" },
      }),
    );
    expect(all.message).toMatch(/identity\.birth_date, identity\.sex differ/);
    // With a migration open, a stranger learns nothing about it (no migration id, no owner).
    const open = given([register], [migrateToGD]);
    const stranger = refused(() =>
      when(open, { ...migrateToGD, caller: "510000", identity: { ...identity, name: "Wang" } }),
    );
    expect([stranger.reason, stranger.detail.migrationId]).toEqual([
      "IDENTITY_MISMATCH",
      undefined,
    ]);
    // The same person written another way is the same person.
    expect(when(s, { ...migrateToGD, identity: { ...identity, name: "  li " } })[0]?.type).toBe(
      "MigrationRequested",
    );
  });

  it("one open migration per person; the owner cannot migrate to itself", () => {
    const s = given([register], [migrateToGD]);
    expect(refused(() => when(s, { ...migrateToGD, caller: "510000" })).reason).toBe(
      "MIGRATION_IN_PROGRESS",
    );
    expect(
      refused(() => when(given([register]), { ...migrateToGD, caller: "110000" })).reason,
    ).toBe("ALREADY_OWNER");
  });

  it("a dose reported while the source has not answered is held, then travels with the record (I3)", () => {
    let s = given(
      [register],
      [migrateToGD],
      [{ kind: "reportDose", caller: "510000", identity, dose: dose("d9", "510000") }],
    );
    expect(s.migrations[s.openMigrationId ?? ""]?.heldDoses.map((d) => d.doseId)).toEqual(["d9"]);
    const [suspended] = when(s, receipt(s, "110000", { sourceDoses: [dose("d1")] }));
    const a = suspended?.type === "SourceSuspended" ? suspended.data.directive.action : undefined;
    expect(a?.kind === "activateMigratedRecord" && a.doses.map((d) => d.doseId)).toEqual([
      "d1",
      "d9",
    ]);
    s = evolve(s, suspended as HubEvent, { version: s.version + 1, position: 50 });
    // After the activate directive left, a new dose is routed to the target.
    const [late] = when(s, {
      kind: "reportDose",
      caller: "510000",
      identity,
      dose: dose("d10", "510000"),
    });
    expect(late?.type === "DoseReported" && late.data.directive?.province).toBe("440000");
    // A duplicate dose id changes nothing.
    expect(
      when(s, { kind: "reportDose", caller: "510000", identity, dose: dose("d9", "510000") }),
    ).toEqual([]);
  });

  it("a dose the owner stored is only learned; one the owner did not store is routed back to it", () => {
    const s = given([register]);
    const held = when(s, {
      kind: "reportDose",
      caller: "110000",
      identity,
      dose: dose("d2"),
      heldByReporter: true,
    });
    expect(held).toEqual([
      {
        type: "DoseReported",
        data: {
          dose: dose("d2"),
          reportedBy: "110000",
          recordId: "id-1",
          at: "2026-01-01T00:00:00.000Z",
        },
      },
    ]);
    // The owner lost its local copy (or never had one): the hub sends the dose to it all the same.
    const [notHeld] = when(s, { kind: "reportDose", caller: "110000", identity, dose: dose("d3") });
    expect(notHeld?.type === "DoseReported" && notHeld.data.directive).toMatchObject({
      province: "110000",
      recordId: "id-1",
      action: { kind: "appendDose", dose: dose("d3") },
    });
    // A province that claims to hold a record it does not own is routed to the owner anyway.
    const [claimed] = when(s, {
      kind: "reportDose",
      caller: "440000",
      identity,
      dose: dose("d4", "440000"),
      heldByReporter: true,
    });
    expect(claimed?.type === "DoseReported" && claimed.data.directive?.province).toBe("110000");
  });

  it("closing a closed record again is a no-op for its owner and not found for anyone else", () => {
    const close: Command = {
      kind: "close",
      caller: "110000",
      recordId: "id-1",
      reason: "DECEASED",
    };
    const s = given([register], [close]);
    expect(s.records["id-1"]?.status).toBe("CLOSED");
    expect(when(s, close)).toEqual([]);
    expect(refused(() => when(s, { ...close, caller: "440000" })).reason).toBe("RECORD_NOT_FOUND");
  });

  it("a record holding the most doses a record may hold refuses one more (RECORD_FULL)", () => {
    const full = Array.from({ length: MAX_DOSES_PER_RECORD }, (_, i) => dose(`f${i}`));
    const s = given([{ ...register, doses: full }]);
    const refusal = refused(() =>
      when(s, { kind: "reportDose", caller: "440000", identity, dose: dose("one-more", "440000") }),
    );
    expect([refusal.code, refusal.reason]).toEqual(["resource_exhausted", "RECORD_FULL"]);
    // A dose it already holds is still answered as a duplicate.
    expect(when(s, { kind: "reportDose", caller: "440000", identity, dose: dose("f7") })).toEqual(
      [],
    );
  });

  it("deadline before the source answered compensates and restores at once", () => {
    const s = given([register], [migrateToGD, "2026-01-01T00:00:00Z"]);
    expect(
      when(
        s,
        { kind: "deadline", migrationId: s.openMigrationId ?? "" },
        "2026-01-01T00:00:00.500Z",
      ),
    ).toEqual([]);
    const [e] = when(
      s,
      { kind: "deadline", migrationId: s.openMigrationId ?? "" },
      "2026-01-01T00:00:02Z",
    );
    expect(e?.type).toBe("MigrationCompensated");
    expect(e?.type === "MigrationCompensated" && e.data.directive.action.kind).toBe(
      "restoreRecord",
    );
    expect(e?.type === "MigrationCompensated" && e.data.directive.attempt).toBe(2);
  });

  it("deadline after the source suspended revokes at the target before restoring (I2)", () => {
    let s = given([register], [migrateToGD, "2026-01-01T00:00:00Z"]);
    s = evolve(s, when(s, receipt(s, "110000"))[0] as HubEvent, {
      version: s.version + 1,
      position: 10,
    });
    const [started] = when(
      s,
      { kind: "deadline", migrationId: s.openMigrationId ?? "" },
      "2026-01-01T00:00:05Z",
    );
    expect(started?.type).toBe("MigrationCompensationStarted");
    s = evolve(s, started as HubEvent, { version: s.version + 1, position: 11 });
    expect(s.certificates["110000-C1"]?.status).toBe("SUSPENDED");
    // Still waiting for the target: a further deadline re-drives the revoke, never restores.
    const [again] = when(
      s,
      { kind: "deadline", migrationId: s.openMigrationId ?? "" },
      "2026-01-01T01:00:00Z",
    );
    expect(again?.type).toBe("CompensationRetried");
    const [done] = when(s, receipt(s, "440000"));
    expect(done?.type).toBe("MigrationCompensated");
    s = evolve(s, done as HubEvent, { version: s.version + 1, position: 12 });
    expect(s.certificates["110000-C1"]?.status).toBe("NORMAL");
    expect(s.openMigrationId).toBeUndefined();
  });

  it("a revoke the target never answers is re-driven with growing waits, then NEEDS_OPERATOR holding the lock", () => {
    let s = given([register], [migrateToGD, "2026-01-01T00:00:00Z"]);
    const step = (e: HubEvent | undefined) => {
      s = evolve(s, e as HubEvent, { version: s.version + 1, position: s.version + 1 });
    };
    step(when(s, receipt(s, "110000"))[0]);
    step(
      when(
        s,
        { kind: "deadline", migrationId: s.openMigrationId ?? "" },
        "2026-01-01T00:00:05Z",
      )[0],
    );
    const id = s.openMigrationId ?? "";
    const deadlines: string[] = [];
    let now = new Date("2026-01-01T00:00:05Z");
    for (let round = 1; round <= 2; round++) {
      now = new Date(new Date(s.migrations[id]?.deadline ?? "").getTime() + 1);
      const [e] = when(s, { kind: "deadline", migrationId: id }, now.toISOString());
      expect(e?.type).toBe("CompensationRetried");
      step(e);
      deadlines.push(s.migrations[id]?.deadline ?? "");
    }
    // Each round waits twice as long as the one before (compensateMs 1000: 2 s, then 4 s).
    const waits = deadlines.map((d, i) =>
      i === 0 ? 0 : new Date(d).getTime() - new Date(deadlines[i - 1] ?? "").getTime(),
    );
    expect(waits[1]).toBeGreaterThan(4000 - 1);
    now = new Date(new Date(s.migrations[id]?.deadline ?? "").getTime() + 1);
    const [gaveUp] = when(s, { kind: "deadline", migrationId: id }, now.toISOString());
    expect(gaveUp?.type).toBe("MigrationNeedsOperator");
    step(gaveUp);
    expect(s.migrations[id]?.state).toBe("NEEDS_OPERATOR");
    // The lock is held: no other migration of the person, no restore of the source.
    expect(s.openMigrationId).toBe(id);
    expect(s.certificates["110000-C1"]?.status).toBe("SUSPENDED");
    expect(refused(() => when(s, { ...migrateToGD, caller: "510000" })).code).toBe(
      "failed_precondition",
    );
    // Nothing more happens by itself; a late revoke receipt still compensates.
    expect(when(s, { kind: "deadline", migrationId: id }, "2027-01-01T00:00:00Z")).toEqual([]);
    const [done] = when(s, receipt(s, "440000"));
    expect(done?.type).toBe("MigrationCompensated");
    step(done);
    expect(s.certificates["110000-C1"]?.status).toBe("NORMAL");
    expect(s.openMigrationId).toBeUndefined();
  });

  it("an operator force-aborts only a migration waiting on its target's revoke, naming themselves", () => {
    let s = given([register], [migrateToGD, "2026-01-01T00:00:00Z"]);
    const id = s.openMigrationId ?? "";
    const force: Command = {
      kind: "forceAbort",
      operator: "operator:ops",
      migrationId: id,
      reason: "t1",
    };
    expect(refused(() => when(s, force)).code).toBe("failed_precondition");
    s = evolve(s, when(s, receipt(s, "110000"))[0] as HubEvent, {
      version: s.version + 1,
      position: 10,
    });
    s = evolve(
      s,
      when(s, { kind: "deadline", migrationId: id }, "2026-01-01T00:00:05Z")[0] as HubEvent,
      { version: s.version + 1, position: 11 },
    );
    const [e] = when(s, force);
    expect(e?.type === "MigrationCompensated" && e.data.by).toBe("operator:ops");
    s = evolve(s, e as HubEvent, { version: s.version + 1, position: 12 });
    expect(s.openMigrationId).toBeUndefined();
    expect(s.certificates["110000-C1"]?.status).toBe("NORMAL");
  });

  it("an operator force-completes only a migration waiting for its target's activation; a late receipt is stale", () => {
    let s = given([register], [migrateToGD, "2026-01-01T00:00:00Z"]);
    const id = s.openMigrationId ?? "";
    const force = (certificateNumber: string): Command => ({
      kind: "forceComplete",
      operator: "operator:ops",
      migrationId: id,
      certificateNumber,
      reason: "t3: Guangdong confirmed",
    });
    const step = (e: HubEvent | undefined) => {
      s = evolve(s, e as HubEvent, { version: s.version + 1, position: s.version + 1 });
    };
    // REQUESTED: the source has not suspended, nothing to complete.
    expect(refused(() => when(s, force("440000-G1"))).message).toMatch(/REQUESTED/);
    const awaitingSuspend = receipt(s, "110000");
    step(when(s, awaitingSuspend)[0]);
    expect(s.migrations[id]?.state).toBe("SOURCE_SUSPENDED");
    const lateActivation = receipt(s, "440000", { certificateNumber: "440000-G2" });
    // The certificate must be one the target issues, and not the person's already.
    expect(refused(() => when(s, force("310000-X1"))).detail.field).toBe("certificate_number");
    expect(refused(() => when(s, force("110000-C1"))).code).toBe("already_exists");
    const [e] = when(s, force("440000-G1"));
    expect(e).toMatchObject({
      type: "MigrationCompleted",
      data: { by: "operator:ops", certificateNumber: "440000-G1" },
    });
    step(e);
    expect(s.openMigrationId).toBeUndefined();
    expect(s.records[s.currentRecordId ?? ""]?.owner).toBe("440000");
    // I2: the target's certificate is the one NORMAL, the source's stays SUSPENDED.
    expect(
      Object.values(s.certificates)
        .filter((c) => c.status === "NORMAL")
        .map((c) => c.number),
    ).toEqual(["440000-G1"]);
    // The activation's receipt, arriving late, changes nothing.
    expect(refused(() => when(s, lateActivation)).code).toBe("aborted");
    expect(refused(() => when(s, force("440000-G3"))).code).toBe("failed_precondition");
  });

  it("compensating or waiting for an operator, a migration cannot be force-completed: the revoke is on its way", () => {
    let s = given([register], [migrateToGD, "2026-01-01T00:00:00Z"]);
    const id = s.openMigrationId ?? "";
    s = evolve(s, when(s, receipt(s, "110000"))[0] as HubEvent, { version: 3, position: 3 });
    s = evolve(
      s,
      when(s, { kind: "deadline", migrationId: id }, "2026-01-01T00:00:05Z")[0] as HubEvent,
      { version: 4, position: 4 },
    );
    expect(s.migrations[id]?.state).toBe("COMPENSATING");
    const e = refused(() =>
      when(s, {
        kind: "forceComplete",
        operator: "operator:ops",
        migrationId: id,
        certificateNumber: "440000-G1",
        reason: "t4",
      }),
    );
    expect(e.message).toMatch(/force-abort it instead/);
  });

  it("an operator supersedes a directive, but not the step an open migration waits for", () => {
    const s = given([register], [migrateToGD, "2026-01-01T00:00:00Z"]);
    const id = s.openMigrationId ?? "";
    const m = s.migrations[id];
    const suspend: OutboxDirective = {
      directiveId: m?.awaitingDirectiveId ?? "",
      province: "110000",
      recordId: m?.recordId ?? "",
      recordSequence: 1,
      migrationId: id,
      action: "suspendForMigration",
    };
    const supersede = (directive: OutboxDirective): Command => ({
      kind: "supersedeDirective",
      operator: "operator:ops",
      reason: "t5",
      directive,
    });
    expect(refused(() => when(s, supersede(suspend))).detail.migrationId).toBe(id);
    const append = { ...suspend, directiveId: "other", migrationId: null, action: "appendDose" };
    expect(when(s, supersede(append))).toMatchObject([
      { type: "DirectiveSuperseded", data: { directiveId: "other", by: "operator:ops" } },
    ]);
  });

  it("an operator re-drives only the latest directive, and a migration's only while it waits for it", () => {
    let s = given([register], [migrateToGD, "2026-01-01T00:00:00Z"]);
    const id = s.openMigrationId ?? "";
    const m = s.migrations[id];
    const suspend = {
      directiveId: m?.awaitingDirectiveId ?? "",
      province: "110000",
      recordId: m?.recordId ?? "",
      recordSequence: s.sequences[sequenceKey(m?.recordId ?? "", "110000")] ?? 0,
      migrationId: id,
      action: "suspendForMigration",
    };
    const redrive = (directive: typeof suspend): Command => ({
      kind: "redriveDirective",
      operator: "operator:ops",
      reason: "t2: 110000 fixed its consumer",
      directive,
    });
    const [e] = when(s, redrive(suspend));
    expect(e).toMatchObject({
      type: "DirectiveRedriven",
      data: {
        directiveId: suspend.directiveId,
        by: "operator:ops",
        reason: "t2: 110000 fixed its consumer",
      },
    });
    // An older directive to the province for the record: sent again, it would undo the later one.
    expect(
      refused(() => when(s, redrive({ ...suspend, recordSequence: suspend.recordSequence - 1 })))
        .code,
    ).toBe("failed_precondition");
    // Once the source answered, the migration waits for the activation, not the suspend.
    s = evolve(s, when(s, receipt(s, "110000"))[0] as HubEvent, {
      version: s.version + 1,
      position: 10,
    });
    expect(s.migrations[id]?.state).toBe("SOURCE_SUSPENDED");
    expect(refused(() => when(s, redrive(suspend))).message).toMatch(/no longer waits for it/);
  });

  it("cancel is for the target, and only before the source suspended", () => {
    const s = given([register], [migrateToGD]);
    expect(
      refused(() =>
        when(s, {
          kind: "cancelMigration",
          caller: "510000",
          migrationId: s.openMigrationId ?? "",
          reason: "",
        }),
      ).code,
    ).toBe("permission_denied");
    expect(
      when(s, {
        kind: "cancelMigration",
        caller: "440000",
        migrationId: s.openMigrationId ?? "",
        reason: "x",
      })[0]?.type,
    ).toBe("MigrationCancelled");
    const suspended = evolve(s, when(s, receipt(s, "110000"))[0] as HubEvent, {
      version: s.version + 1,
      position: 9,
    });
    expect(
      refused(() =>
        when(suspended, {
          kind: "cancelMigration",
          caller: "440000",
          migrationId: s.openMigrationId ?? "",
          reason: "",
        }),
      ).reason,
    ).toBe("INVALID_STATE");
  });

  it("per-record directive sequences have no gaps", () => {
    const s = given([register], [migrateToGD]);
    const [c] = when(s, {
      kind: "cancelMigration",
      caller: "440000",
      migrationId: s.openMigrationId ?? "",
      reason: "",
    });
    expect(c?.type === "MigrationCancelled" && c.data.directive.recordSequence).toBe(2);
  });
});

describe("evolve", () => {
  /** Freezes an object and everything it holds: a write into it then throws. */
  function deepFreeze<T>(value: T): T {
    if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
      for (const v of Object.values(value)) deepFreeze(v);
      Object.freeze(value);
    }
    return value;
  }

  it("never writes into the state it is given, through a whole life of events", () => {
    // States are shared (the rebuild's fold, cached reads): evolve copies what it changes.
    let s = initialState();
    let position = 0;
    let ids = 0;
    const seen: string[] = [];
    const play = (cmd: Command, now?: string) => {
      const c = ctx(now);
      c.newId = () => `f-${++ids}`;
      for (const e of decide(s, cmd, c)) {
        const given = deepFreeze(s);
        const before = JSON.stringify(given);
        s = evolve(given, e, { version: s.version + 1, position: ++position });
        expect(JSON.stringify(given)).toBe(before);
        seen.push(e.type);
      }
    };
    play(register);
    play({ kind: "reportDose", caller: "510000", identity, dose: dose("d7", "510000") });
    play(migrateToGD, "2026-01-01T00:00:00Z");
    play({ kind: "reportDose", caller: "510000", identity, dose: dose("d8", "510000") });
    play({ kind: "deadline", migrationId: s.openMigrationId ?? "" }, "2026-01-01T00:00:02Z");
    play(migrateToGD);
    play(receipt(s, "110000", { sourceDoses: [dose("d1")] }));
    play(receipt(s, "440000", { certificateNumber: "440000-N1" }));
    play({ kind: "close", caller: "440000", recordId: "f-1", reason: "DELETED" });
    expect(seen).toEqual([
      "RecordRegistered",
      "DoseReported",
      "MigrationRequested",
      "DoseReported",
      "MigrationCompensated",
      "MigrationRequested",
      "SourceSuspended",
      "MigrationCompleted",
      "RecordClosed",
    ]);
    expect(s.records["f-1"]?.status).toBe("CLOSED");
  });
});
