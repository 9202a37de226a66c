/** Test support of evc-interop: the only entry point of @evc-interop/testing. */

/** Deleted with a test hub's schema (see national/src/chain/pin.ts). */
export { chainPinStream } from "@evc-interop/national";
export * from "./certs.js";
export * from "./codes.js";
export * from "./directives.js";
export * from "./fuzz.js";
export * from "./fuzz-rpc.js";
export * from "./harness.js";
export * from "./mutant-copy.js";
export * from "./nats-server.js";
export * from "./oracle/check.js";
export * from "./oracle/convergence.js";
export * from "./oracle/ledger.js";
export * from "./oracle/snapshot.js";
export * from "./pg.js";
export * from "./promtool.js";
export * from "./provinces.js";
export * from "./until.js";
