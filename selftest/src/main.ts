import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CaseResult, contractSha256, counts, humanReport } from "@evc-interop/conformance";
import { makeTestPki } from "@evc-interop/testing";
import { certify, PROVINCE, SEED, writeCredentials, XINJIANG } from "./certify.js";
import { MUTANTS } from "./mutants.js";

/**
 * `npm run conformance:self`: the kit proves itself. It certifies province-reference (every case
 * must pass), then runs the same suites against each deliberately broken copy of it (its
 * build, patched in a temporary folder: see mutants.ts), each until its first failing case, and
 * requires every one to be caught.
 */
async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "evc-conformance-self-"));
  try {
    await writeCredentials(dir, [PROVINCE, XINJIANG]);

    const started = Date.now();
    const reference = await certify(undefined, dir);
    console.log(
      humanReport(
        {
          implementationName: reference.name,
          implementationVersion: reference.version,
          provinceCode: PROVINCE,
          contractVersion: "evc.*.v1",
          kitVersion: "self-test",
          contractSha256: contractSha256(),
          seed: SEED,
          startedAt: new Date(started).toISOString(),
          seconds: (Date.now() - started) / 1000,
        },
        reference.results,
      ),
    );
    const ref = counts(reference.results);

    // The core profile (status, directive) four more ways, at once (each run has its own ports,
    // schemas and stream): the reference speaks every protocol a vendor's kit run may use, over
    // Connect and gRPC-Web too (the run above, and the mutation runs, are over gRPC); as Xinjiang
    // (650000), a code the kit's own virtual provinces once took (they step aside); and every
    // hop over TLS: the kit's hub and the province on HTTPS with mutual TLS, the kit's clients
    // verifying the province by a CA.
    const core = ["status", "directive"];
    const pki = makeTestPki();
    const [connect, grpcWeb, xinjiang, tls] = await Promise.all([
      certify(undefined, dir, { protocol: "connect", run: core }),
      certify(undefined, dir, { protocol: "grpc-web", run: core }),
      certify(undefined, dir, { code: XINJIANG, run: core }),
      certify(undefined, dir, { pki, run: core }),
    ]).finally(() => pki.remove());
    const fails = (label: string, results: CaseResult[]) => {
      for (const r of results.filter((x) => x.status === "failed"))
        console.log(
          `  FAIL (${label}) ${r.name}: ${r.expected ? `expected ${r.expected}; saw ${r.seen}` : r.error}`,
        );
    };
    const byProtocol: string[] = [];
    let protocolsOk = true;
    for (const [protocol, run] of [
      ["connect", connect],
      ["grpc-web", grpcWeb],
    ] as const) {
      const c = counts(run.results);
      protocolsOk &&= c.failed === 0 && c.passed > 0;
      byProtocol.push(`${protocol} ${c.passed} passed, ${c.failed} failed`);
      fails(protocol, run.results);
    }
    console.log(`\nCore profile by protocol (status, directive): ${byProtocol.join("; ")}`);
    const asXinjiang = counts(xinjiang.results);
    console.log(
      `As province ${XINJIANG} (status, directive): ${asXinjiang.passed} passed, ${asXinjiang.failed} failed`,
    );
    fails(XINJIANG, xinjiang.results);
    protocolsOk &&= asXinjiang.failed === 0 && asXinjiang.passed > 0;
    const overTls = counts(tls.results);
    console.log(
      `\nOver HTTPS with mutual TLS (status, directive): ${overTls.passed} passed, ${overTls.failed} failed`,
    );
    fails("TLS", tls.results);

    console.log("\nBroken copies of the reference (each must be caught by at least one case):");
    const concurrency = Number(process.env.EVC_SELF_TEST_CONCURRENCY ?? 3);
    const caught = new Map<string, string[]>();
    const errors: string[] = [];
    const only = process.env.EVC_SELF_TEST_VARIANTS?.split(",").filter(Boolean);
    const queue = MUTANTS.filter((m) => !only || only.includes(m.name));
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        for (let m = queue.shift(); m; m = queue.shift()) {
          const v = m.name;
          let results: CaseResult[];
          try {
            // Stopping at the first failure: one case that catches it is the verdict (and a
            // copy caught early costs seconds, not a whole run).
            ({ results } = await certify(m, dir, { bail: true }));
          } catch (err) {
            // Not a verdict either way: the run fails, the other copies go on.
            const why = err instanceof Error ? err.message.split("\n")[0] : String(err);
            errors.push(v);
            console.log(`  ERROR    ${v}: could not be run: ${why}`);
            continue;
          }
          const by = results.filter((r) => r.status === "failed").map((r) => r.name);
          if (process.env.EVC_SELF_TEST_VERBOSE) {
            for (const r of results.filter((x) => x.status === "failed")) {
              console.log(
                `    ${v}: ${r.name}: ${r.expected ? `expected ${r.expected}; saw ${r.seen}` : r.error}`,
              );
            }
          }
          caught.set(v, by);
          console.log(
            `  ${by.length > 0 ? "caught  " : "MISSED  "} ${v}${by.length > 0 ? ` by ${by.join(", ")}` : ""}`,
          );
        }
      }),
    );
    const score = [...caught.values()].filter((by) => by.length > 0).length;
    console.log(
      `\nmutation score: caught ${score}/${caught.size + errors.length}${errors.length > 0 ? ` (${errors.length} could not be run: ${errors.join(", ")})` : ""}`,
    );
    console.log(`reference: ${ref.passed} passed, ${ref.failed} failed`);
    const tlsOk = overTls.failed === 0 && overTls.passed > 0;
    return ref.failed === 0 &&
      ref.skipped === 0 &&
      errors.length === 0 &&
      score === caught.size &&
      tlsOk &&
      protocolsOk
      ? 0
      : 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
