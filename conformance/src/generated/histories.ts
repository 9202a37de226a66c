import { Profile } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import fc from "fast-check";
import { type CaseContext, CaseFailure } from "../case.js";
import { commandArbitraries, firstRecord, type Real } from "./commands.js";
import type { Model } from "./model.js";

/** Histories per run and steps per history when the case does not say. */
export const DEFAULT_HISTORIES = 12;
export const DEFAULT_MAX_STEPS = 10;

/**
 * The generated profile: seeded random histories of directives (duplicates, redeliveries of
 * old directives after newer ones, reorderings, gaps, foreign directives, unknown records,
 * several doses and transitions per record; restarts when the province declared resilience),
 * each run against the province with every observable compared to the model after every step.
 * A failing history is shrunk to a minimal one and reported with the seed that replays it.
 */
export async function generatedHistories({
  kit,
  tc,
  name,
  seed,
  bail,
}: CaseContext): Promise<void> {
  const { profiles } = await kit.control.getFeatures({});
  const restarts = kit.canRestart && profiles.includes(Profile.RESILIENCE);
  const histories = tc.histories || DEFAULT_HISTORIES;
  const maxSteps = tc.maxSteps || DEFAULT_MAX_STEPS;
  const property = fc.asyncProperty(
    fc.commands(commandArbitraries(restarts), {
      maxCommands: maxSteps,
      size: "max",
      disableReplayLog: true,
    }),
    async (cmds) => {
      const real: Real = { kit, restarts, steps: [] };
      try {
        // Every history starts from one record activated with a dose, so no step is wasted.
        const setup = async () => {
          const model: Model = { records: [] };
          const first = firstRecord();
          await first.run(model, real);
          real.steps.push(first.toString());
          return { model, real };
        };
        await fc.asyncModelRun(setup, cmds);
      } catch (err) {
        throw new HistoryFailure(err, real.steps);
      }
    },
  );
  kit.trace(`generated: seed ${seed}, ${histories} histories of up to ${maxSteps} steps`);
  const budget = tc.timeoutMs ? tc.timeoutMs * 0.8 : undefined;
  const details = await fc.check(property, {
    seed,
    numRuns: histories,
    endOnFailure: bail,
    ...(budget ? { interruptAfterTimeLimit: budget } : {}),
  });
  if (!details.failed) return;
  const failure = details.errorInstance;
  const cause = failure instanceof HistoryFailure ? failure.cause : failure;
  const history = failure instanceof HistoryFailure ? failure.steps.join("; ") : "?";
  const replay = `--seed ${seed} --run ${name} replays it`;
  if (cause instanceof CaseFailure) {
    throw new CaseFailure(
      cause.expected,
      `${cause.seen} — after the history [${history}] (shrunk ${details.numShrinks} times; ${replay})`,
    );
  }
  throw new Error(
    `${cause instanceof Error ? cause.message : String(cause ?? "interrupted")} — in the history [${history}] (${replay})`,
  );
}

/** A history's failure, with the steps it ran up to it. */
class HistoryFailure extends Error {
  constructor(
    override readonly cause: unknown,
    readonly steps: string[],
  ) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}
