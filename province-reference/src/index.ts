/**
 * The reference province's public surface: what other packages (the quick start, the kit's
 * self-test, the drills, the bench) may use. Everything else in province-reference/src is internal.
 */
export { type ProvinceConfig, provinceCodesFromEnv, provinceConfigFromEnv } from "./config.js";
export { PhoneClient, type PhoneClientOptions } from "./phone-client.js";
export { Province, type ProvinceOptions } from "./province.js";
