import type { TestCase } from "@evc-interop/gen/evc/conformance/v1/suite_pb";
import type { Kit } from "./kit.js";

/** A failed expectation: what the rule wants and what the province did. */
export class CaseFailure extends Error {
  constructor(
    readonly expected: string,
    readonly seen: string,
  ) {
    super(`expected ${expected}; saw ${seen}`);
  }
}

/** What a scenario runs with. */
export interface CaseContext {
  kit: Kit;
  tc: TestCase;
  /** The case's full name, `<suite>/<case>`. */
  name: string;
  /** The run's seed (`--seed`): generated scenarios draw their histories from it. */
  seed: number;
  /** Stop at the first failure: a generated scenario reports its failing history unshrunk. */
  bail: boolean;
}

export type Scenario = (ctx: CaseContext) => Promise<void>;
