import { describe, expect, it } from "vitest";
import { identityMismatches, normalName } from "./identity-match.js";
import type { IdentityJson } from "./types.js";

const held: IdentityJson = {
  idType: "ID_TYPE_RESIDENT_ID",
  idNumber: "11010519491231002X",
  name: "阿依古丽·买买提",
  birthDate: "2020-01-15T00:00:00Z",
  sex: "SEX_FEMALE",
};

describe("is this the person the hub holds under this document", () => {
  it("reads a name the ways it is written: width, spaces, middle dots, Latin case", () => {
    expect(normalName("阿依古丽・买买提")).toBe(normalName("阿依古丽·买买提"));
    expect(normalName(" 阿依古丽 •  买买提 ")).toBe(normalName("阿依古丽·买买提"));
    expect(normalName("ＬＩ　Ｍｉｎｇ")).toBe(normalName("li ming"));
    expect(normalName("李明")).not.toBe(normalName("李鸣"));
  });

  it("names every field that differs, by its contract name", () => {
    expect(identityMismatches(held, { ...held, name: "阿依古丽・买买提" })).toEqual([]);
    expect(identityMismatches(held, { ...held, birthDate: "2020-01-15T00:00:00.000Z" })).toEqual(
      [],
    );
    expect(
      identityMismatches(held, { ...held, name: "王芳", birthDate: "2019-01-15T00:00:00Z" }),
    ).toEqual(["identity.name", "identity.birth_date"]);
    expect(identityMismatches(held, { ...held, sex: "SEX_MALE" })).toEqual(["identity.sex"]);
  });
});
