import type { Interceptor } from "@connectrpc/connect";
import { AuditService } from "@evc-interop/gen/evc/national/v1/audit_service_pb";
import { CertificateService } from "@evc-interop/gen/evc/national/v1/certificate_service_pb";
import { DirectiveService } from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import { DoseService } from "@evc-interop/gen/evc/national/v1/dose_service_pb";
import { MigrationService } from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import { SnapshotService } from "@evc-interop/gen/evc/national/v1/snapshot_service_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fuzzServices } from "./testing/fuzz-rpc.js";
import { startTestHub, type TestHubEnv, transport } from "./testing/harness.js";

/** Bad input to every RPC of the hub is the caller's fault, never the server's (#14). */
let env: TestHubEnv;

beforeAll(async () => {
  env = await startTestHub({ readMaxBytes: 4 * 1024 * 1024 });
});

afterAll(async () => {
  await env?.close();
});

/** The Authorization header the harness would send for `subject`. */
async function authHeaders(subject: string): Promise<Record<string, string>> {
  const headers = new Headers();
  const auth: Interceptor = env.creds.auth(subject);
  await auth(async (req) => {
    for (const [k, v] of req.header) headers.set(k, v);
    return undefined as never;
  })({ header: headers } as never);
  return Object.fromEntries(headers);
}

const SERVICES = [
  RecordService,
  MigrationService,
  DirectiveService,
  DoseService,
  CertificateService,
  SnapshotService,
  AuditService,
];

describe("bad input to the hub", () => {
  for (const subject of ["province:110000", "operator:ops"]) {
    it(`every RPC, as ${subject}: fuzzed messages and malformed bodies are never Internal`, async () => {
      const result = await fuzzServices({
        services: SERVICES,
        transport: transport(env.hub.url, [env.creds.auth(subject)]),
        baseUrl: env.hub.url,
        authHeaders: await authHeaders(subject),
        perMethod: 40,
        seed: subject.length,
      });
      expect(result.calls).toBeGreaterThan(500);
      expect(result.faults).toEqual([]);
    }, 120_000);
  }
});
