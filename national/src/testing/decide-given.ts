import { type Command, decide } from "../domain/decide.js";
import { Refusal } from "../domain/errors.js";
import { evolve } from "../domain/person.js";
import {
  type DecideContext,
  type DoseJson,
  type HubEvent,
  type IdentityJson,
  initialState,
  type PersonState,
} from "../domain/types.js";

/** Given/when/then over the pure deciders: no database, fixed clock and ids. */
export const identity: IdentityJson = {
  idType: "ID_TYPE_RESIDENT_ID",
  idNumber: "11010519491231002X",
  name: "Li",
  birthDate: "2020-01-15T00:00:00Z",
  sex: "SEX_MALE",
};
export const dose = (id: string, province = "110000"): DoseJson => ({
  doseId: id,
  vaccineCode: "HepB",
  doseNumber: 1,
  administeredAt: "2021-01-01T00:00:00Z",
  administeredProvinceCode: province,
});

export function ctx(now = "2026-01-01T00:00:00Z"): DecideContext {
  let n = 0;
  return {
    now: new Date(now),
    newId: () => `id-${++n}`,
    deadlines: { suspendMs: 1000, activateMs: 1000, compensateMs: 1000, compensateRounds: 2 },
  };
}

export function given(...commands: [Command, string?][]): PersonState {
  let state = initialState();
  let position = 0;
  let idBase = 0;
  for (const [cmd, now] of commands) {
    const c = ctx(now);
    c.newId = () => `id-${++idBase}`;
    for (const e of decide(state, cmd, c))
      state = evolve(state, e, { version: state.version + 1, position: ++position });
  }
  return state;
}

export function when(state: PersonState, cmd: Command, now?: string): HubEvent[] {
  return decide(state, cmd, ctx(now));
}

export function refused(fn: () => unknown): Refusal {
  try {
    fn();
  } catch (err) {
    if (err instanceof Refusal) return err;
    throw err;
  }
  throw new Error("expected a refusal");
}

export const register: Extract<Command, { kind: "register" }> = {
  kind: "register",
  caller: "110000",
  identity,
  certificateNumber: "110000-C1",
  doses: [dose("d1")],
};
export const migrateToGD: Extract<Command, { kind: "requestMigration" }> = {
  kind: "requestMigration",
  caller: "440000",
  identity,
};

export function receipt(
  state: PersonState,
  caller: string,
  extra: Partial<Extract<Command, { kind: "receipt" }>> = {},
): Command {
  const m = state.migrations[state.openMigrationId ?? ""];
  return {
    kind: "receipt",
    caller,
    migrationId: m?.migrationId ?? "",
    directiveId: m?.awaitingDirectiveId ?? "",
    attempt: m?.attempt ?? 1,
    outcome: "APPLIED",
    detail: "",
    ...extra,
  };
}
