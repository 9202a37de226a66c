import { describe, expect, it } from "vitest";
import { dose, given, identity, refused, register, when } from "../testing/decide-given.js";
import { evolve } from "./person.js";
import { type HubEvent, type IdentityJson, initialState, type PersonState } from "./types.js";

/** A person, not a document (#27 story 1): a second document links to the person. */

const birthCertificate: IdentityJson = {
  ...identity,
  idType: "ID_TYPE_BIRTH_CERTIFICATE",
  idNumber: "O110000123",
};
const atBirth = { ...register, identity: birthCertificate };
const underResidentId = {
  ...register,
  certificateNumber: "110000-C2",
  byEvidence: true,
  links: [{ documentKey: "rid-key", identity, field: "identity" }],
};

function apply(state: PersonState, events: HubEvent[]): PersonState {
  let s = state;
  for (const e of events) s = evolve(s, e, { version: s.version + 1, position: s.version + 1 });
  return s;
}

describe("registering a known person under another document", () => {
  it("by the owner links the document and registers nothing new; the resident ID becomes the identity", () => {
    const s = given([atBirth]);
    const events = when(s, underResidentId);
    expect(events.map((e) => e.type)).toEqual(["DocumentLinked"]);
    // A dose given at that visit is kept on the record, once.
    const withDose = when(s, { ...underResidentId, doses: [dose("d1"), dose("d7")] });
    expect(withDose.map((e) => (e.type === "DoseReported" ? e.data.dose.doseId : e.type))).toEqual([
      "DocumentLinked",
      "d7",
    ]);
    const after = apply(s, events);
    expect(Object.keys(after.records)).toEqual(["id-1"]);
    expect(after.identity?.idType).toBe("ID_TYPE_RESIDENT_ID");
    expect(after.linkedDocuments).toEqual(["rid-key"]);
    // The same evidence again (a retry, a concurrent call) links nothing twice.
    expect(when(after, underResidentId)).toEqual([]);
    // A lesser document linked later does not replace the resident ID as the identity.
    const later = apply(
      after,
      when(after, {
        ...atBirth,
        byEvidence: true,
        links: [{ documentKey: "passport-key", identity: birthCertificate, field: "identity" }],
      }),
    );
    expect(later.identity?.idType).toBe("ID_TYPE_RESIDENT_ID");
  });

  it("by another province is refused naming the owner, and links nothing", () => {
    const r = refused(() => when(given([atBirth]), { ...underResidentId, caller: "440000" }));
    expect([r.code, r.reason, r.detail.ownerProvinceCode, r.detail.recordId]).toEqual([
      "already_exists",
      "RECORD_EXISTS",
      "110000",
      "id-1",
    ]);
  });

  it("with another birth date is refused as not the person", () => {
    const r = refused(() =>
      when(given([atBirth]), {
        ...underResidentId,
        identity: { ...identity, birthDate: "2020-02-15T00:00:00Z" },
        links: [],
      }),
    );
    expect([r.reason, r.detail.field]).toEqual(["IDENTITY_MISMATCH", "identity.birth_date"]);
  });

  it("of a person whose record was deleted links the document and opens their new record", () => {
    const s = given(
      [atBirth],
      [{ kind: "close", caller: "110000", recordId: "id-1", reason: "DELETED" }],
    );
    expect(when(s, underResidentId).map((e) => e.type)).toEqual([
      "DocumentLinked",
      "RecordRegistered",
    ]);
  });

  it("of a new person links the known_as documents the hub did not know, after checking they are theirs", () => {
    const newborn = {
      ...atBirth,
      links: [{ documentKey: "rid-key", identity, field: "known_as[0]" }],
    };
    const events = when(initialState(), newborn);
    expect(events.map((e) => e.type)).toEqual(["RecordRegistered", "DocumentLinked"]);
    // The resident ID the province named becomes the identity.
    expect(apply(initialState(), events).identity?.idType).toBe("ID_TYPE_RESIDENT_ID");
    const r = refused(() =>
      when(initialState(), {
        ...newborn,
        links: [
          {
            documentKey: "rid-key",
            identity: { ...identity, sex: "SEX_FEMALE" },
            field: "known_as[0]",
          },
        ],
      }),
    );
    expect([r.reason, r.detail.field]).toEqual(["IDENTITY_MISMATCH", "known_as[0].sex"]);
  });
});
