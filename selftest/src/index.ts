/** The self-test's broken copies of the reference province (the program is main.ts). */

/** The environment of a reference province started by the kit (also used by scripts/kit-from-tarballs.mjs). */
export { referenceProvinceEnv } from "./certify.js";
export { MUTANTS, type Mutant } from "./mutants.js";
