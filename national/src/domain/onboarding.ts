import { current, iso } from "./decider-parts.js";
import { Refusal } from "./errors.js";
import { mergeDoses } from "./person.js";
import type { DecideContext, DoseJson, HubEvent, IdentityJson, PersonState } from "./types.js";

/** A record a province held before the hub existed (OnboardingService). */
export interface OnboardCommand {
  kind: "onboard";
  caller: string;
  /** The province's id of the record, kept. */
  recordId: string;
  identity: IdentityJson;
  certificateNumber: string;
  /** Every dose, wherever it was given. */
  doses: DoseJson[];
}

/**
 * Onboarding of an existing record: registered as the caller's, its certificate NORMAL, with
 * every dose it holds — unless the hub holds the person already. Nothing is assigned silently:
 * an open record of the person (another province's, or another of the caller's) is refused
 * RECORD_EXISTS naming it, a person recorded as deceased INVALID_STATE, for review. The same
 * record of the caller again changes nothing (a batch sent again after a kill).
 */
export function decideOnboard(
  state: PersonState,
  cmd: OnboardCommand,
  ctx: DecideContext,
): HubEvent[] {
  const open = current(state);
  if (open?.owner === cmd.caller && open.recordId === cmd.recordId) return [];
  if (open) {
    throw new Refusal(
      "already_exists",
      "RECORD_EXISTS",
      `person already has record ${open.recordId} owned by province ${open.owner}`,
      { ownerProvinceCode: open.owner, recordId: open.recordId, field: "identity" },
    );
  }
  const deceased = Object.values(state.records).some(
    (r) => state.certificates[r.certificateNumber]?.revocationReason === "DECEASED",
  );
  if (deceased) {
    throw new Refusal("failed_precondition", "INVALID_STATE", "person is recorded as deceased", {
      field: "identity",
    });
  }
  if (state.certificates[cmd.certificateNumber]) {
    throw new Refusal(
      "already_exists",
      "INVALID_FIELD",
      `certificate ${cmd.certificateNumber} is an earlier certificate of this person`,
      { field: "certificate_number" },
    );
  }
  if (state.records[cmd.recordId]) {
    throw new Refusal(
      "already_exists",
      "INVALID_FIELD",
      `record ${cmd.recordId} is a closed record of this person`,
      { field: "record_id" },
    );
  }
  return [
    {
      type: "RecordRegistered",
      data: {
        recordId: cmd.recordId,
        owner: cmd.caller,
        identity: cmd.identity,
        certificateNumber: cmd.certificateNumber,
        doses: mergeDoses(cmd.doses),
        at: iso(ctx.now),
        onboarded: true,
      },
    },
  ];
}
