import { describe, expect, it } from "vitest";
import { dose, given, identity, refused, register, when } from "../testing/decide-given.js";
import type { OnboardCommand } from "./onboarding.js";

/** Onboarding an existing record (#28 story 4): loaded, or reported; never assigned. */

const onboard: OnboardCommand = {
  kind: "onboard",
  caller: "510000",
  recordId: "r-510000-1",
  identity,
  certificateNumber: "510000-OLD1",
  doses: [dose("d1", "510000"), dose("d2", "440000"), dose("d1", "510000")],
};

describe("onboarding an existing record", () => {
  it("of a person the hub does not hold: registered under the province's id and number, every dose once, marked onboarded", () => {
    const [event, ...more] = when(given(), onboard);
    expect(more).toEqual([]);
    expect(event?.type).toBe("RecordRegistered");
    if (event?.type !== "RecordRegistered") return;
    expect(event.data).toEqual(
      expect.objectContaining({
        recordId: "r-510000-1",
        owner: "510000",
        certificateNumber: "510000-OLD1",
        onboarded: true,
      }),
    );
    expect(event.data.doses.map((d) => [d.doseId, d.administeredProvinceCode])).toEqual([
      ["d1", "510000"],
      ["d2", "440000"],
    ]);
  });

  it("sent again after it was loaded: nothing", () => {
    expect(when(given([onboard]), onboard)).toEqual([]);
  });

  it("of a person another province holds, or the same province under another record: RECORD_EXISTS naming the holder", () => {
    const held = refused(() => when(given([register]), onboard));
    expect(held.reason).toBe("RECORD_EXISTS");
    expect(held.detail).toEqual(expect.objectContaining({ ownerProvinceCode: "110000" }));
    const twice = refused(() => when(given([onboard]), { ...onboard, recordId: "r-510000-2" }));
    expect(twice.reason).toBe("RECORD_EXISTS");
    expect(twice.detail.recordId).toBe("r-510000-1");
  });

  it("under a number or record id of the person's closed record: INVALID_FIELD naming it (a conflict, never a clash at the database)", () => {
    const closed = given(
      [onboard],
      [{ kind: "close", caller: "510000", recordId: "r-510000-1", reason: "DELETED" }],
    );
    const number = refused(() => when(closed, { ...onboard, recordId: "r-510000-9" }));
    expect([number.reason, number.detail.field]).toEqual(["INVALID_FIELD", "certificate_number"]);
    const id = refused(() => when(closed, { ...onboard, certificateNumber: "510000-NEW9" }));
    expect([id.reason, id.detail.field]).toEqual(["INVALID_FIELD", "record_id"]);
  });

  it("of a person recorded as deceased: INVALID_STATE", () => {
    const dead = given(
      [register],
      [{ kind: "close", caller: "110000", recordId: "id-1", reason: "DECEASED" }],
    );
    expect(refused(() => when(dead, onboard)).reason).toBe("INVALID_STATE");
  });
});
