import type { Scenario } from "./case.js";
import { generatedHistories } from "./generated/histories.js";
import { DIRECTIVE_SCENARIOS } from "./scenarios/directive.js";
import { FLOW_SCENARIOS } from "./scenarios/flows.js";
import { RECONCILIATION_SCENARIOS } from "./scenarios/reconciliation.js";
import { STATUS_SCENARIOS } from "./scenarios/status.js";

/** Every scenario a case file may name (`scenario:` in suites/*.yaml), by name. */
export const SCENARIOS: Record<string, Scenario> = {
  generated: generatedHistories,
  ...DIRECTIVE_SCENARIOS,
  ...STATUS_SCENARIOS,
  ...FLOW_SCENARIOS,
  ...RECONCILIATION_SCENARIOS,
};
