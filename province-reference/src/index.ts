/**
 * The reference province's public surface: what other packages (the quick start, the kit's
 * self-test, the drills, the bench) may use. Everything else in province-reference/src is internal.
 */
export { type ProvinceConfig, provinceCodesFromEnv, provinceConfigFromEnv } from "./config.js";
export { type OnboardOptions, type OnboardProgress, onboard } from "./onboard.js";
export { PhoneClient, type PhoneClientOptions } from "./phone-client.js";
export { Province, type ProvinceOptions } from "./province.js";
export { insertLegacyRecords, type LegacyRecord } from "./store/legacy.js";
export { migrate as migrateProvinceStore } from "./store/schema.js";
