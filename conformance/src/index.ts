/**
 * The conformance kit's programmatic surface: most users run its CLI (`evc-conformance`); the
 * self-test (selftest/) drives the kit through this.
 */
export { BUNDLED_SUITES, main, run } from "./cli.js";
export { type KitConfig, loadConfig, parseConfig } from "./config.js";
export { contractImage, contractSha256, writeContract } from "./contract.js";
export { Kit } from "./kit.js";
export { probeBus } from "./probe.js";
export { counts, humanReport } from "./report.js";
export { type CaseResult, loadSuites, runSuites } from "./runner.js";
