import { create, type DescService, fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type Client, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { Identity } from "@evc-interop/gen/evc/common/v1/identity_pb";
import {
  type Dose,
  DoseSchema,
  RecordContentsSchema,
} from "@evc-interop/gen/evc/common/v1/record_pb";
import {
  type Directive,
  DirectiveSchema,
  type Receipt,
  ReceiptOutcome,
  ReceiptSchema,
} from "@evc-interop/gen/evc/directive/v1/directive_pb";
import { AuditService } from "@evc-interop/gen/evc/national/v1/audit_service_pb";
import { CertificateService } from "@evc-interop/gen/evc/national/v1/certificate_service_pb";
import { DirectiveService } from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import { DoseService } from "@evc-interop/gen/evc/national/v1/dose_service_pb";
import { MigrationService } from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { OnboardingService } from "@evc-interop/gen/evc/national/v1/onboarding_service_pb";
import { OperatorService } from "@evc-interop/gen/evc/national/v1/operator_service_pb";
import { PrivacyService } from "@evc-interop/gen/evc/national/v1/privacy_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import { SnapshotService } from "@evc-interop/gen/evc/national/v1/snapshot_service_pb";
import {
  chainPinStream,
  Hub,
  type HubConfig,
  type HubOptions,
  hubConfigFromEnv,
} from "@evc-interop/national";
import {
  bearer,
  type ClientTls,
  type Credential,
  type DirectiveKeySet,
  type DirectiveSigner,
  generateCredential,
  generateSigningKey,
  natsCredentials,
  natsServers,
  provinceSubject,
  residentId,
  syntheticIdentity,
  TokenSigner,
  transportTls,
} from "@evc-interop/runtime";
import {
  AckPolicy,
  type ConsumerMessages,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { JSONWebKeySet } from "jose";
import { pino } from "pino";
import { dropSchema, TEST_DATABASE_URL, uniqueName } from "./pg.js";

/**
 * Test kit for the hub: isolated schema, stream and subjects per test, in-memory credentials,
 * authenticated clients, and scriptable fake provinces on the real bus. Exported so the
 * province and conformance packages test against a real hub the same way.
 */

/** Every service the hub serves (what the fuzz and bad-actor suites call). */
export const HUB_SERVICES = [
  RecordService,
  OnboardingService,
  MigrationService,
  DirectiveService,
  DoseService,
  CertificateService,
  SnapshotService,
  AuditService,
  PrivacyService,
  OperatorService,
] as const;

export const TEST_NATS_URL =
  process.env.EVC_TEST_NATS_URL ?? process.env.NATS_URL ?? "nats://127.0.0.1:4222";

/** A new, valid identity (random resident ID with a correct check character). */
/** A made-up child with a valid, random resident ID. */
export function newIdentity(name = "Test Child"): Identity {
  return syntheticIdentity(name);
}

let doseCounter = 0;
export function newDose(
  province: string,
  overrides: MessageInitShape<typeof DoseSchema> = {},
): Dose {
  doseCounter += 1;
  return create(DoseSchema, {
    doseId: `dose-${Date.now().toString(36)}-${doseCounter}-${Math.random().toString(36).slice(2, 8)}`,
    vaccineCode: "HepB",
    doseNumber: 1,
    administeredAt: timestampFromDate(new Date("2021-03-01T08:00:00Z")),
    administeredProvinceCode: province,
    ...overrides,
  });
}

export function certificateNumber(province: string): string {
  return `${province}-${Math.random().toString(36).slice(2, 12).toUpperCase()}`;
}

/** Credentials for a set of subjects, and the JWKS a hub trusts for them. */
export class TestCredentials {
  private constructor(
    readonly trust: JSONWebKeySet,
    private readonly creds: Map<string, Credential>,
  ) {}

  static async create(subjects: string[]): Promise<TestCredentials> {
    const trust: JSONWebKeySet = { keys: [] };
    const creds = new Map<string, Credential>();
    for (const s of subjects) {
      const { credential, publicJwk } = await generateCredential(s);
      trust.keys.push(publicJwk);
      creds.set(s, credential);
    }
    return new TestCredentials(trust, creds);
  }

  credential(subject: string): Credential {
    const c = this.creds.get(subject);
    if (!c) throw new Error(`no test credential for ${subject}`);
    return c;
  }

  /** Interceptor adding a bearer token for `subject`. */
  auth(subject: string): Interceptor {
    const signer = new TokenSigner(this.credential(subject));
    return bearer(() => signer.token());
  }

  /** A bearer token for `subject`, as the header would carry it. */
  token(subject: string): Promise<string> {
    return new TokenSigner(this.credential(subject)).token();
  }
}

export function transport(
  baseUrl: string,
  interceptors: Interceptor[] = [],
  tls?: ClientTls,
): Transport {
  return createConnectTransport({
    baseUrl,
    httpVersion: "2",
    interceptors,
    useBinaryFormat: true,
    nodeOptions: transportTls(tls),
  });
}

/** A test hub environment: hub(s) sharing one schema and one stream. */
export interface TestHubEnv {
  config: HubConfig;
  creds: TestCredentials;
  /** The key the test hub signs directives with (tests sign what they publish by hand). */
  signer: DirectiveSigner;
  /** What a province of this hub trusts for directives. */
  directiveKeys: DirectiveKeySet;
  hub: Hub;
  /** Starts another hub replica on the same database and stream. */
  startReplica(opts?: HubOptions): Promise<Hub>;
  client<S extends DescService>(service: S, subject: string, hub?: Hub): Client<S>;
  close(): Promise<void>;
}

export const TEST_PROVINCES = ["110000", "440000", "510000", "310000"];

export async function startTestHub(
  overrides: Partial<HubConfig> = {},
  opts: HubOptions = {},
): Promise<TestHubEnv> {
  const id = uniqueName("hub");
  const config: HubConfig = {
    ...hubConfigFromEnv({}),
    databaseUrl: TEST_DATABASE_URL,
    natsUrl: TEST_NATS_URL,
    // The shared test bus is open (tests that need an authenticated one start their own).
    natsAnonymous: true,
    schema: id,
    host: "127.0.0.1",
    port: 0,
    stream: id.toUpperCase(),
    subjectPrefix: `t.${id}`,
    pollMs: 50,
    shutdownGraceMs: 1000,
    personKeySecret: "test-secret",
    ...overrides,
  };
  const creds = await TestCredentials.create([
    ...TEST_PROVINCES.map((p) => `province:${p}`),
    "operator:ops",
    "viewer:watch",
  ]);
  const logger = pino({ level: process.env.EVC_TEST_LOG_LEVEL ?? "silent" });
  const signer = generateSigningKey("test-hub");
  const hubs: Hub[] = [];
  const start = async (o: HubOptions = {}) => {
    const h = await Hub.start(config, { trust: creds.trust, signer, logger, ...opts, ...o });
    hubs.push(h);
    return h;
  };
  const hub = await start();
  return {
    config,
    creds,
    signer,
    directiveKeys: { keys: [signer.publicJwk()] },
    hub,
    startReplica: start,
    client(service, subject, h = hub) {
      return createClient(service, transport(h.url, [creds.auth(subject)]));
    },
    async close() {
      for (const h of hubs) await h.stop().catch(() => undefined);
      const nc = await connect({
        servers: natsServers(config.natsUrl),
        ...natsCredentials(config),
        ...(config.natsTls ? { tls: config.natsTls } : {}),
      }).catch(() => undefined);
      if (nc) {
        try {
          const jsm = await jetstreamManager(nc);
          await jsm.streams.delete(config.stream).catch(() => undefined);
          // The hub's chain pin belongs with the schema dropped below.
          await jsm.streams.delete(chainPinStream(config.stream)).catch(() => undefined);
        } finally {
          await nc.close();
        }
      }
      await dropSchema(config.schema);
    },
  };
}

/** What a fake province answers to a directive; undefined means "do not answer". */
export type Answer = (d: Directive) => Receipt | undefined;

/**
 * A scriptable province on the real bus: consumes its subject with an ephemeral consumer and
 * records every directive it receives. By default it behaves like a correct, in-memory province.
 */
export class FakeProvince {
  readonly received: Directive[] = [];
  answer: Answer;
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;
  private waiters: { pred: (d: Directive) => boolean; resolve: (d: Directive) => void }[] = [];
  readonly records = new Map<
    string,
    { identity?: Identity; doses: Dose[]; certificate: string; status: string }
  >();
  /** Errors the hub returned to this province's receipt submissions. */
  readonly submitErrors: unknown[] = [];

  private constructor(
    readonly code: string,
    private readonly nc: NatsConnection,
    private readonly env: TestHubEnv,
  ) {
    this.answer = (d) => this.correctAnswer(d);
  }

  static async start(env: TestHubEnv, code: string): Promise<FakeProvince> {
    const nc = await connect({ servers: env.config.natsUrl });
    const p = new FakeProvince(code, nc, env);
    const jsm = await jetstreamManager(nc);
    const name = `fake-${code}-${Math.random().toString(36).slice(2, 8)}`;
    await jsm.consumers.add(env.config.stream, {
      durable_name: name,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: provinceSubject({ ...env.hub.layout }, code),
      ack_wait: 2_000_000_000,
    });
    const consumer = await jetstream(nc).consumers.get(env.config.stream, name);
    p.messages = await consumer.consume();
    p.loop = (async () => {
      for await (const m of p.messages ?? []) {
        const d = fromBinary(DirectiveSchema, m.data);
        p.received.push(d);
        for (const w of [...p.waiters]) {
          if (w.pred(d)) {
            w.resolve(d);
            p.waiters.splice(p.waiters.indexOf(w), 1);
          }
        }
        const receipt = p.answer(d);
        m.ack();
        if (receipt) await p.submit([receipt]).catch((err: unknown) => p.submitErrors.push(err));
      }
    })();
    return p;
  }

  client() {
    return this.env.client(DirectiveService, `province:${this.code}`);
  }

  async submit(receipts: Receipt[]) {
    return this.client().submitReceipts({ receipts });
  }

  /** Resolves with the first directive (already received or future) matching `pred`. */
  waitFor(pred: (d: Directive) => boolean, timeoutMs = 10_000): Promise<Directive> {
    const seen = this.received.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`province ${this.code}: no matching directive in ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiters.push({
        pred,
        resolve: (d) => {
          clearTimeout(timer);
          resolve(d);
        },
      });
    });
  }

  /** The receipt a correct province gives. */
  correctAnswer(d: Directive): Receipt {
    const base = {
      directiveId: d.directiveId,
      attempt: d.attempt,
      appliedAt: timestampFromDate(new Date()),
    };
    const rec = this.records.get(d.recordId);
    switch (d.action.case) {
      case "suspendForMigration":
        if (rec) rec.status = "MIGRATED_OUT";
        return create(ReceiptSchema, {
          ...base,
          outcome: ReceiptOutcome.APPLIED,
          result: {
            case: "suspended",
            value: {
              $typeName: "evc.directive.v1.SuspendResult",
              record: create(RecordContentsSchema, {
                recordId: d.recordId,
                identity: rec?.identity,
                doses: rec?.doses ?? [],
              }),
              suspendedCertificateNumber: rec?.certificate ?? "",
            },
          },
        });
      case "activateMigratedRecord": {
        const certificate = rec?.certificate ?? certificateNumber(this.code);
        this.records.set(d.recordId, {
          identity: d.action.value.record?.identity,
          doses: [...(d.action.value.record?.doses ?? [])],
          certificate,
          status: "ACTIVE",
        });
        return create(ReceiptSchema, {
          ...base,
          outcome: ReceiptOutcome.APPLIED,
          result: {
            case: "activated",
            value: { $typeName: "evc.directive.v1.ActivateResult", certificateNumber: certificate },
          },
        });
      }
      case "appendDose": {
        const dose = d.action.value.dose;
        if (rec && dose && !rec.doses.some((x) => x.doseId === dose.doseId)) rec.doses.push(dose);
        return create(ReceiptSchema, { ...base, outcome: ReceiptOutcome.APPLIED });
      }
      case "restoreRecord":
        if (rec) rec.status = "ACTIVE";
        return create(ReceiptSchema, { ...base, outcome: ReceiptOutcome.APPLIED });
      default:
        if (rec) rec.status = "CLOSED";
        return create(ReceiptSchema, { ...base, outcome: ReceiptOutcome.APPLIED });
    }
  }

  async stop(): Promise<void> {
    this.messages?.stop();
    await this.loop?.catch(() => undefined);
    await this.nc.close();
  }
}

export { residentId };
