#!/usr/bin/env node
// Bundles the operator console for the browser: src/app/main.tsx -> dist/app/console.js (one
// minified ES module with Preact, Connect's web client and the generated contract), and copies
// static/ beside it. Run by the root `npm run build`.
import { copyFileSync, mkdirSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(here, "dist", "app");
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(here, "src", "app", "main.tsx")],
  outfile: join(out, "console.js"),
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  sourcemap: true,
  conditions: ["source"],
  jsx: "automatic",
  jsxImportSource: "preact",
  logLevel: "warning",
});
for (const f of readdirSync(join(here, "static")))
  copyFileSync(join(here, "static", f), join(out, f));
