import { describe, expect, it } from "vitest";
import { given, migrateToGD, refused, register, when } from "../testing/decide-given.js";
import type { Command } from "./decide.js";
import { evolve } from "./person.js";

/** Reissue (#27 story 5): a lost phone's certificate replaced in one step. */
const reissue: Command = {
  kind: "reissue",
  caller: "110000",
  recordId: "id-1",
  certificateNumber: "110000-C2",
  reason: "lost phone",
};

describe("reissuing a certificate", () => {
  it("revokes the old number naming the new one, which is the one NORMAL certificate", () => {
    const s = given([register]);
    const events = when(s, reissue);
    expect(events.map((e) => e.type)).toEqual(["CertificateReissued"]);
    let after = s;
    for (const e of events) after = evolve(after, e, { version: after.version + 1, position: 9 });
    expect(after.certificates["110000-C1"]).toMatchObject({
      status: "REVOKED",
      revocationReason: "REISSUED",
      replacedBy: "110000-C2",
    });
    expect(after.certificates["110000-C2"]?.status).toBe("NORMAL");
    expect(after.records["id-1"]?.certificateNumber).toBe("110000-C2");
    expect(Object.values(after.certificates).filter((c) => c.status === "NORMAL")).toHaveLength(1);
    // Asked again for the same number: answered as it was; a used number is refused.
    expect(when(after, reissue)).toEqual([]);
    expect(refused(() => when(after, { ...reissue, certificateNumber: "110000-C1" })).code).toBe(
      "already_exists",
    );
  });

  it("is refused to another province, and while a migration holds the certificate suspended", () => {
    expect(refused(() => when(given([register]), { ...reissue, caller: "440000" })).reason).toBe(
      "WRONG_PROVINCE",
    );
    expect(refused(() => when(given([register], [migrateToGD]), reissue)).reason).toBe(
      "MIGRATION_IN_PROGRESS",
    );
  });
});
