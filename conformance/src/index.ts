/** The conformance kit's programmatic surface; most users run its CLI (`evc-conformance`). */
export { main, run } from "./cli.js";
export { type KitConfig, loadConfig, parseConfig } from "./config.js";
