import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, createClient } from "@connectrpc/connect";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import {
  certificateNumber,
  errorOf,
  newIdentity,
  promtoolJudges,
  startTestHub,
  TEST_DATABASE_URL,
  type TestHubEnv,
  transport,
  until,
} from "@evc-interop/testing";
import { jetstreamManager } from "@nats-io/jetstream";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HubConfig } from "./config.js";
import { Hub } from "./hub.js";
import { ALERT_RULES_FILE } from "./index.js";

/**
 * #28 story 2: the hub's database restored from a backup older than what the hub already did
 * (acknowledged registrations the provinces hold, directives they applied). Before, the hub
 * started on it as if nothing had happened: a child registered after the backup could be
 * registered again — a second NORMAL certificate — and every province's next reconciliation
 * pass deleted the certificates the hub had forgotten. Now the hub finds that its chain lacks
 * the link it pinned in JetStream and is fenced until the operator acts (docs/operations.md,
 * "Restoring the hub"): restores a database that holds the pin, or accepts the loss by
 * naming the pinned link.
 */
let env: TestHubEnv;
const dumps = mkdtempSync(join(tmpdir(), "evc-hub-restore-"));
const started: Hub[] = [];

beforeAll(async () => {
  env = await startTestHub();
});

afterAll(async () => {
  for (const h of started) await h.stop().catch(() => undefined);
  await env?.close();
  rmSync(dumps, { recursive: true, force: true });
});

function dump(name: string): string {
  const file = join(dumps, `${name}.dump`);
  execFileSync("pg_dump", ["-Fc", "-n", env.config.schema, "-f", file, TEST_DATABASE_URL]);
  return file;
}

function restore(file: string): void {
  execFileSync("pg_restore", ["--clean", "--if-exists", "-d", TEST_DATABASE_URL, file]);
}

async function startHub(overrides: Partial<HubConfig> = {}): Promise<Hub> {
  const hub = await Hub.start(
    { ...env.config, ...overrides },
    { trust: env.creds.trust, signer: env.signer, logger: pino({ level: "silent" }) },
  );
  started.push(hub);
  return hub;
}

const records = (hub: Hub, province = "110000") =>
  createClient(RecordService, transport(hub.url, [env.creds.auth(`province:${province}`)]));

const register = (hub: Hub, identity = newIdentity(), province = "110000") =>
  records(hub, province).registerRecord({
    idempotencyKey: randomUUID(),
    identity,
    certificateNumber: certificateNumber(province),
  });

/** The chain's head, once every event is sealed and the head pinned in JetStream. */
async function sealedAndPinned(hub: Hub): Promise<number> {
  const jsm = await jetstreamManager(hub.nc);
  return until(
    "the chain sealed and pinned",
    async () => {
      const [row] = await hub.sql<{ seq: string | null; unsealed: number }[]>`
        SELECT (SELECT max(seq)::text FROM event_chain) AS seq,
               (SELECT count(*)::int FROM events e
                WHERE NOT EXISTS (SELECT 1 FROM event_chain c WHERE c.position = e.position)) AS unsealed`;
      if (!row?.seq || row.unsealed > 0) return undefined;
      const pin = await jsm.streams.getMessage(`${env.config.stream}_CHAIN_PIN`, {
        last_by_subj: `evc-chain-pin.${env.config.stream}`,
      });
      return pin?.json<{ seq: number }>().seq === Number(row.seq) ? Number(row.seq) : undefined;
    },
    10_000,
  );
}

describe("the hub restored from a backup behind what it already did", () => {
  it("is fenced: answers Unavailable, registers no one twice; a database holding the pin lifts it, or the operator accepts the loss by naming the pinned link", async () => {
    // More than nine links: the head must be found by number (a text sort put "9" after "43"
    // and the pin stopped at 9 — seen in the drills).
    for (let i = 0; i < 12; i++) await register(env.hub);
    expect(await sealedAndPinned(env.hub)).toBeGreaterThan(10);
    const old = dump("old");
    // After the backup: a child registered (the province holds the certificate).
    const child = newIdentity("Registered After The Backup");
    await register(env.hub, child);
    const pinned = await sealedAndPinned(env.hub);
    const healthyScrape = await (await fetch(`${env.hub.url}/metrics`)).text();
    expect(healthyScrape).toMatch(/^evc_hub_fenced 0$/m);
    await env.hub.stop();
    const latest = dump("latest");

    restore(old);
    const fenced = await startHub();
    expect(fenced.fence.reason).toMatch(/behind what the hub already did/);
    const again = await errorOf(register(fenced, child, "440000"));
    expect(again?.code).toBe(Code.Unavailable);
    expect(again?.rawMessage).toMatch(/the hub is fenced .*Restoring the hub/);
    expect(await fenced.readiness()).toContainEqual(expect.stringMatching(/^fenced: /));
    const fencedScrape = await (await fetch(`${fenced.url}/metrics`)).text();
    expect(fencedScrape).toMatch(/^evc_hub_fenced 1$/m);
    const { ok, output } = promtoolJudges(
      ALERT_RULES_FILE,
      [
        { text: healthyScrape, minutes: 2 },
        { text: fencedScrape, minutes: 5 },
      ],
      "EvcHubFenced",
      [{}],
      3,
    );
    expect(ok, output).toBe(true);
    const quiet = promtoolJudges(
      ALERT_RULES_FILE,
      [{ text: healthyScrape, minutes: 5 }],
      "EvcHubFenced",
      [],
      3,
    );
    expect(quiet.ok, quiet.output).toBe(true);
    await fenced.stop();

    // A value that is not the pinned link accepts nothing.
    const wrong = await startHub({ acceptRestoredChain: pinned + 1000 });
    expect(wrong.fence.reason).toBeDefined();
    await wrong.stop();

    // The runbook's first answer: the newest database (point-in-time recovery) holds the pin.
    restore(latest);
    const recovered = await startHub();
    expect(recovered.fence.reason).toBeUndefined();
    const twice = await errorOf(register(recovered, child, "440000"));
    expect(twice?.code).toBe(Code.AlreadyExists);
    await recovered.stop();

    // Its last answer: no newer database exists; the operator accepts the loss by name.
    restore(old);
    const accepted = await startHub({ acceptRestoredChain: pinned });
    expect(accepted.fence.reason).toBeUndefined();
    expect((await register(accepted)).recordId).not.toBe("");
    await accepted.stop();
    // Accepted once: the next start, without the variable, is not fenced.
    const next = await startHub();
    expect(next.fence.reason).toBeUndefined();
  });
});
