import { Refusal } from "./errors.js";
import type { IdentityJson } from "./types.js";

/** The forms a middle dot between the parts of a name takes (阿依古丽·买买提). */
const MIDDLE_DOTS = /[\u00B7\u30FB\u2022\u2027\u22C5\uFF65]/g;

/**
 * A name as compared: NFKC, one kind of middle dot with no space around it, no surrounding or
 * repeated spaces, Latin letters in any case.
 */
export function normalName(name: string): string {
  return name
    .normalize("NFKC")
    .replace(MIDDLE_DOTS, "·")
    .replace(/\s*·\s*/g, "·")
    .replace(/\s+/g, " ")
    .trim()
    .toLowerCase();
}

/** The calendar day of a protobuf JSON timestamp (birth dates are midnight UTC of that day). */
function day(timestamp: string): string {
  return timestamp.slice(0, 10);
}

/**
 * The identity fields of `claimed` that are not those of `held` (the person the hub holds under
 * the same document), by their contract names.
 */
export function identityMismatches(held: IdentityJson, claimed: IdentityJson): string[] {
  const out: string[] = [];
  if (normalName(held.name) !== normalName(claimed.name)) out.push("identity.name");
  if (day(held.birthDate) !== day(claimed.birthDate)) out.push("identity.birth_date");
  if (held.sex !== claimed.sex) out.push("identity.sex");
  return out;
}

/**
 * Refuses a request whose identity is not the person's: a document number alone must not be
 * enough to act on a child's record (FailedPrecondition, IDENTITY_MISMATCH, naming the fields).
 * A person whose identity was erased cannot be proven at all.
 */
export function mustBeThePerson(held: IdentityJson | undefined, claimed: IdentityJson): void {
  if (!held) {
    throw new Refusal(
      "failed_precondition",
      "IDENTITY_MISMATCH",
      "the hub no longer holds this person's identity (erased): it cannot be compared",
      { field: "identity" },
    );
  }
  const differ = identityMismatches(held, claimed);
  const [first] = differ;
  if (first) {
    throw new Refusal(
      "failed_precondition",
      "IDENTITY_MISMATCH",
      `the identity is not the person's held under this document: ${differ.join(", ")} differ`,
      { field: first },
    );
  }
}
