import { current, iso } from "./decider-parts.js";
import { Refusal } from "./errors.js";
import { identityMismatches, mustBeThePerson } from "./identity-match.js";
import { knownDoseIds, mergeDoses, preferredIdentity } from "./person.js";
import type { DecideContext, DoseJson, HubEvent, IdentityJson, PersonState } from "./types.js";

/** An identity document to link to the person, as the province gave it. */
export interface DocumentToLink {
  documentKey: string;
  identity: IdentityJson;
  /** Where it was in the request (identity, known_as[0], ...). */
  field: string;
}

export interface RegisterCommand {
  kind: "register";
  caller: string;
  identity: IdentityJson;
  certificateNumber: string;
  doses: DoseJson[];
  /**
   * The person was found under another document than identity's (a known_as one, or a link
   * made before): the province's evidence that identity's document is theirs.
   */
  byEvidence?: boolean;
  /** Documents of the request the hub does not know yet, linked to the person by it. */
  links?: DocumentToLink[];
}

/**
 * Registration of a person's record (birth or first dose). One person, one record (I1): a
 * person who has an open record is refused, naming it. A person is not a document: a newborn
 * registered under the birth medical certificate and later under the resident ID, with the
 * birth certificate named as known_as, stays one person — the resident ID is linked to them
 * (DocumentLinked), and their open record is answered to its owner instead of a second one. A
 * known_as document the hub does not know yet is linked to the person registered, so that it
 * cannot become a second person later.
 */
export function decideRegister(
  state: PersonState,
  cmd: RegisterCommand,
  ctx: DecideContext,
): HubEvent[] {
  const at = iso(ctx.now);
  const links = cmd.links ?? [];
  const linked = (): HubEvent[] =>
    links
      // Linked a moment ago by the same evidence (a retry, a concurrent call): linked once.
      .filter((l) => !state.linkedDocuments?.includes(l.documentKey))
      .map((l) => ({
        type: "DocumentLinked",
        data: { identity: l.identity, documentKey: l.documentKey, by: cmd.caller, at },
      }));
  // Every document of the request is the same person's: the province's evidence, checked.
  for (const l of links) {
    if (l.field === "identity") continue;
    const [first] = identityMismatches(cmd.identity, l.identity);
    if (first) {
      const field = first.replace(/^identity\./, `${l.field}.`);
      throw new Refusal(
        "failed_precondition",
        "IDENTITY_MISMATCH",
        `${l.field} is not the same person as identity: ${field} differs`,
        { field },
      );
    }
  }
  if (cmd.byEvidence) {
    // The evidence is the province's; the person's fields must still be theirs.
    mustBeThePerson(state.identity, cmd.identity);
    const open = current(state);
    if (open && open.owner !== cmd.caller) throw recordExists(state);
    if (open) {
      const events = linked();
      // Doses given at this visit are the owner's own, stored with the record it holds.
      const known = knownDoseIds(state);
      for (const dose of mergeDoses(cmd.doses))
        if (!known.has(dose.doseId))
          events.push({
            type: "DoseReported",
            data: { dose, reportedBy: cmd.caller, recordId: open.recordId, at },
          });
      return events;
    }
  } else if (current(state)) {
    throw recordExists(state);
  }
  const deceased = Object.values(state.records).some(
    (r) => state.certificates[r.certificateNumber]?.revocationReason === "DECEASED",
  );
  if (deceased) {
    throw new Refusal("failed_precondition", "INVALID_STATE", "person is recorded as deceased", {
      field: "identity",
    });
  }
  const registered: HubEvent = {
    type: "RecordRegistered",
    data: {
      recordId: ctx.newId(),
      owner: cmd.caller,
      // A known person keeps the identity their documents give (a resident ID stays theirs).
      identity: cmd.byEvidence
        ? links.reduce(
            (held, l) => preferredIdentity(held, l.identity),
            state.identity ?? cmd.identity,
          )
        : cmd.identity,
      certificateNumber: cmd.certificateNumber,
      doses: mergeDoses(cmd.doses),
      at,
    },
  };
  return cmd.byEvidence ? [...linked(), registered] : [registered, ...linked()];
}

function recordExists(state: PersonState): Refusal {
  const existing = current(state);
  return new Refusal(
    "already_exists",
    "RECORD_EXISTS",
    `person already has record ${existing?.recordId} owned by province ${existing?.owner}`,
    { ownerProvinceCode: existing?.owner, recordId: existing?.recordId, field: "identity" },
  );
}
