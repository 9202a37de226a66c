import { readFile } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Where the hub serves the console. */
export const CONSOLE_PATH = "/console";

/** The built browser app (`npm run build` bundles it; the release carries it). */
export function consoleAssetsDir(): string {
  // dist/serve.js (built) or src/serve.ts (tests, source condition): the app is in dist/app.
  return join(dirname(fileURLToPath(import.meta.url)), "..", "dist", "app");
}

const FILES: Record<string, { file: string; type: string }> = {
  "": { file: "index.html", type: "text/html; charset=utf-8" },
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/console.js": { file: "console.js", type: "text/javascript; charset=utf-8" },
  "/console.css": { file: "console.css", type: "text/css; charset=utf-8" },
  "/console.js.map": { file: "console.js.map", type: "application/json" },
};

/**
 * The page may load only itself and talk only to the hub that served it: no inline script, no
 * other origin, no framing. A token pasted into it stays in the tab (session storage).
 */
const HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'none'; base-uri 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-cache",
};

/**
 * Serves the console's files under CONSOLE_PATH. Returns false for any other path (the caller
 * answers it). The files are public: everything the page shows comes from the hub's RPCs, each
 * authenticated by the operator's bearer token.
 */
export async function serveConsole(url: string, res: ServerResponse): Promise<boolean> {
  const path = url.split("?")[0] ?? "";
  if (path !== CONSOLE_PATH && !path.startsWith(`${CONSOLE_PATH}/`)) return false;
  const entry = FILES[path.slice(CONSOLE_PATH.length)];
  if (!entry) {
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    return true;
  }
  if (path === CONSOLE_PATH) {
    // Relative asset URLs resolve against /console/.
    res.writeHead(308, { location: `${CONSOLE_PATH}/` }).end();
    return true;
  }
  let body: Buffer;
  try {
    body = await readFile(join(consoleAssetsDir(), entry.file));
  } catch {
    res
      .writeHead(503, { "content-type": "text/plain" })
      .end("the operator console is not built: run `npm run build` (a release carries it built)\n");
    return true;
  }
  res.writeHead(200, { ...HEADERS, "content-type": entry.type }).end(body);
  return true;
}
