import { current, iso } from "./decider-parts.js";
import { Refusal } from "./errors.js";
import { mustBeThePerson } from "./identity-match.js";
import { knownDoseIds, mergeDoses } from "./person.js";
import type { DecideContext, DoseJson, HubEvent, IdentityJson, PersonState } from "./types.js";

export interface RegisterCommand {
  kind: "register";
  caller: string;
  identity: IdentityJson;
  certificateNumber: string;
  doses: DoseJson[];
  /**
   * Set when identity's document is new to the hub and the person was found under another
   * document the province named (known_as): the new document's key, to be linked to them.
   */
  link?: { documentKey: string };
}

/**
 * Registration of a person's record (birth or first dose). One person, one record (I1): a
 * person who has an open record is refused, naming it. A person is not a document: a newborn
 * registered under the birth medical certificate and later under the resident ID, with the
 * birth certificate named as known_as, stays one person — the resident ID is linked to them
 * (DocumentLinked), and their open record is answered to its owner instead of a second one.
 */
export function decideRegister(
  state: PersonState,
  cmd: RegisterCommand,
  ctx: DecideContext,
): HubEvent[] {
  const at = iso(ctx.now);
  const events: HubEvent[] = [];
  if (cmd.link) {
    // The evidence is the province's; the person's fields must still be theirs.
    mustBeThePerson(state.identity, cmd.identity);
    const open = current(state);
    if (open && open.owner !== cmd.caller) throw recordExists(state);
    // Linked a moment ago by the same evidence (a retry, a concurrent call): linked once.
    if (!state.linkedDocuments?.includes(cmd.link.documentKey))
      events.push({
        type: "DocumentLinked",
        data: { identity: cmd.identity, documentKey: cmd.link.documentKey, by: cmd.caller, at },
      });
    if (open) {
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
  events.push({
    type: "RecordRegistered",
    data: {
      recordId: ctx.newId(),
      owner: cmd.caller,
      identity: cmd.identity,
      certificateNumber: cmd.certificateNumber,
      doses: mergeDoses(cmd.doses),
      at,
    },
  });
  return events;
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
