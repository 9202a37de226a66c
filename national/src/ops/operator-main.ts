#!/usr/bin/env node
import { operatorCli } from "./operator-cli.js";

/** `evc-operator`: see OPERATOR_USAGE in operator-cli.ts and docs/operations.md. */
process.exitCode = await operatorCli(process.argv.slice(2), process.env, (line) =>
  console.log(line),
);
