/** The self-test's broken copies of the reference province (the program is main.ts). */
export { MUTANTS, type Mutant } from "./mutants.js";
