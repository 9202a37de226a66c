import { fileURLToPath } from "node:url";

/**
 * The reference hub's public surface: what other packages (the quick start, the kit, tests and
 * bench) may use. Everything else in national/src is internal.
 */
export { sealAll, verifyChain } from "./chain/chain.js";
export { chainPinStream } from "./chain/pin.js";
export { DEV_PERSON_KEY_SECRET, type HubConfig, hubConfigFromEnv } from "./config.js";
export { doseToJson, identityToJson, personKey } from "./domain/codec.js";
export type { PersonState } from "./domain/types.js";
export { Hub, type HubOptions } from "./hub.js";
export { OPERATOR_USAGE, operatorCli } from "./ops/operator-cli.js";
export { newDataKey, openIdentities, sealIdentities } from "./store/identity-seal.js";
export { rebuildSnapshot } from "./store/rebuild.js";

/** The hub's Prometheus alerting rules (ops/alerts.yml, shipped with the package). */
export const ALERT_RULES_FILE = fileURLToPath(new URL("../ops/alerts.yml", import.meta.url));
