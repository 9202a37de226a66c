#!/usr/bin/env node
// Entry point of the conformance kit (the compiled kit is in ../dist: `npm run build` in a checkout).
import { run } from "../dist/cli.js";

run();
