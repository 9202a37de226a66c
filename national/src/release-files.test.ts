import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { hubConfigFromEnv } from "./config.js";

/**
 * The release's example environment and its compose file set only what the hub reads: a
 * misspelt variable there would be silently ignored by the hub it configures (neither can be
 * run here: no container runtime in CI).
 */
const here = dirname(fileURLToPath(import.meta.url));
const file = (name: string) => readFileSync(join(here, "..", "release", name), "utf8");

/** Every variable hubConfigFromEnv reads, found by handing it an environment that records. */
function variablesTheHubReads(): Set<string> {
  const read = new Set<string>(["EVC_LOG_LEVEL"]); // the logger's (runtime createLogger)
  const env = new Proxy<NodeJS.ProcessEnv>(
    {},
    {
      get: (_t, key) => {
        if (typeof key === "string") read.add(key);
        return undefined;
      },
    },
  );
  hubConfigFromEnv(env);
  return read;
}

describe("the release's configuration files", () => {
  const reads = variablesTheHubReads();

  it("evc-hub.env.example sets, or shows commented out, only variables the hub reads", () => {
    const names = [...file("evc-hub.env.example").matchAll(/^#?([A-Z][A-Z0-9_]+)=/gm)].map(
      (m) => m[1] ?? "",
    );
    expect(names.length).toBeGreaterThan(10);
    expect(names.filter((n) => !reads.has(n))).toEqual([]);
  });

  it("compose.yaml gives the hub replicas only variables the hub reads", () => {
    const hub = file("compose.yaml").split("\nx-nats:")[0] ?? "";
    const names = [...hub.matchAll(/^ {4}([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1] ?? "");
    expect(names).toContain("EVC_STREAM_REPLICAS");
    expect(names.filter((n) => !reads.has(n))).toEqual([]);
  });
});
