// A deliberately slowed build for the CI guard's own test: `node --import` this file and the
// hub's snapshot stream (reconciliation) spends 50 µs of CPU per entry before each page, as a
// regression in encoding would. Nothing in the project loads it but that test.
import { register } from "node:module";

register("./slowed-build-hooks.mjs", import.meta.url);
