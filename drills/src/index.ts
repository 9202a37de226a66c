/** Seeded fault drills of the whole system, with the oracle (see README). */
export { type DrillOptions, type DrillSummary, runDrills, type SeededFinding } from "./drills.js";
