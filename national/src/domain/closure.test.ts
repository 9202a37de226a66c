import { describe, expect, it } from "vitest";
import {
  dose,
  given,
  migrateToGD,
  receipt,
  refused,
  register,
  when,
} from "../testing/decide-given.js";
import type { Command } from "./decide.js";
import { directivesOf, evolve } from "./person.js";
import type { HubEvent, MigrationState, PersonState } from "./types.js";

/** Death and deletion revoke every certificate of the person, wherever it is (#27 story 4). */

function then(state: PersonState, cmd: Command, now?: string): [PersonState, HubEvent[]] {
  const events = when(state, cmd, now);
  let s = state;
  for (const e of events) s = evolve(s, e, { version: s.version + 1, position: s.version + 1 });
  return [s, events];
}

/** A person registered at 110000 with a migration to 440000 driven to `state`. */
function migrating(to: MigrationState): PersonState {
  let s = given([register], [migrateToGD]);
  if (to === "REQUESTED") return s;
  [s] = then(s, receipt(s, "110000", { sourceDoses: [dose("d1")] }));
  if (to === "SOURCE_SUSPENDED") return s;
  const id = s.openMigrationId ?? "";
  [s] = then(s, { kind: "deadline", migrationId: id }, "2026-01-02T00:00:00Z");
  if (to === "COMPENSATING") return s;
  for (const day of ["03", "04", "05"])
    [s] = then(s, { kind: "deadline", migrationId: id }, `2026-01-${day}T00:00:00Z`);
  return s;
}

const deceased = (caller: string, recordId = "id-1"): Command => ({
  kind: "close",
  caller,
  recordId,
  reason: "DECEASED",
});

describe("closing a record revokes the person's certificates everywhere", () => {
  it("a death after a migration revokes the former owner's suspended certificate, by directive", () => {
    let s = migrating("SOURCE_SUSPENDED");
    [s] = then(s, receipt(s, "440000", { certificateNumber: "440000-N1" }));
    expect(s.certificates["110000-C1"]?.status).toBe("SUSPENDED");
    const sequenceAtSource = s.sequences["id-1|110000"] ?? 0;

    const [after, [closed]] = then(s, deceased("440000"));
    expect(closed?.type === "RecordClosed" && closed.data.revoked).toEqual(["110000-C1"]);
    expect(directivesOf(closed as HubEvent)).toEqual([
      expect.objectContaining({
        province: "110000",
        recordId: "id-1",
        recordSequence: sequenceAtSource + 1,
        action: { kind: "revokeCertificate", reason: "DECEASED" },
      }),
    ]);
    expect(
      Object.values(after.certificates).map((c) => [c.number, c.status, c.revocationReason]),
    ).toEqual([
      ["110000-C1", "REVOKED", "DECEASED"],
      ["440000-N1", "REVOKED", "DECEASED"],
    ]);
    // The closer may ask again (a retry after a crash); nobody can register the person again.
    expect(when(after, deceased("440000"))).toEqual([]);
    expect(refused(() => when(after, { ...register, certificateNumber: "110000-C9" })).code).toBe(
      "failed_precondition",
    );
  });

  it.each<[MigrationState, string[]]>([
    ["REQUESTED", []],
    ["SOURCE_SUSPENDED", ["440000"]],
    ["COMPENSATING", ["440000"]],
    ["NEEDS_OPERATOR", ["440000"]],
  ])("a death at the source with a migration %s ends it; revokes go to %j", (state, to) => {
    const s = migrating(state);
    expect(s.migrations[s.openMigrationId ?? ""]?.state).toBe(state);
    const migrationId = s.openMigrationId ?? "";
    const [after, [closed]] = then(s, deceased("110000"));
    expect(directivesOf(closed as HubEvent).map((d) => d.province)).toEqual(to);
    expect(after.openMigrationId).toBeUndefined();
    expect(after.migrations[migrationId]).toMatchObject({
      state: "CANCELLED",
      endReason: "the record was closed during the migration (DECEASED)",
    });
    expect(after.records["id-1"]?.status).toBe("CLOSED");
    expect(Object.values(after.certificates).every((c) => c.status === "REVOKED")).toBe(true);
    // The target answering the activation late is stale: it can never complete the migration.
    const late = refused(() =>
      when(after, {
        kind: "receipt",
        caller: "440000",
        migrationId,
        directiveId: "",
        attempt: s.migrations[migrationId]?.attempt ?? 1,
        outcome: "APPLIED",
        detail: "",
        certificateNumber: "440000-N1",
      }),
    );
    expect(late.reason).toBe("STALE_ATTEMPT");
  });

  it("the target of an open migration may record the death; the source is sent the revoke", () => {
    const s = migrating("SOURCE_SUSPENDED");
    const [after, [closed]] = then(s, deceased("440000"));
    expect(directivesOf(closed as HubEvent).map((d) => [d.province, d.action.kind])).toEqual([
      ["110000", "revokeCertificate"],
    ]);
    expect(after.records["id-1"]?.closedBy).toBe("440000");
    expect(when(after, deceased("440000"))).toEqual([]);
  });

  it("doses held for the migration stay with the closed record", () => {
    const s = given(
      [register],
      [migrateToGD],
      [{ kind: "reportDose", caller: "510000", identity: register.identity, dose: dose("d9") }],
    );
    const [after] = then(s, deceased("110000"));
    expect(after.records["id-1"]?.doses.map((d) => d.doseId)).toEqual(["d1", "d9"]);
  });

  it("a merge waits for the migration; a third province may not close the record", () => {
    const s = migrating("SOURCE_SUSPENDED");
    const merge = refused(() =>
      when(s, {
        kind: "close",
        caller: "110000",
        recordId: "id-1",
        reason: "MERGED",
        mergedIntoRecordId: "other",
      }),
    );
    expect(merge.reason).toBe("MIGRATION_IN_PROGRESS");
    expect(refused(() => when(s, deceased("510000"))).reason).toBe("WRONG_PROVINCE");
  });
});
