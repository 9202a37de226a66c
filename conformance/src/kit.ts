import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { create, type DescService, fromBinary, toBinary, toJsonString } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type Client,
  Code,
  ConnectError,
  createClient,
  type Interceptor,
} from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import {
  type Directive,
  DirectiveSchema,
  type Receipt,
} from "@evc-interop/gen/evc/directive/v1/directive_pb";
import {
  DirectiveService,
  type SubmitReceiptsRequest,
} from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import { ProvinceService } from "@evc-interop/gen/evc/province/v1/province_service_pb";
import { chainPinStream, type Hub } from "@evc-interop/national";
import {
  type BusLayout,
  bearer,
  clientTlsFromEnv,
  DIRECTIVE_KEYS_FILE,
  type DirectiveSigner,
  issueReaderToken,
  natsCredentials,
  natsServers,
  openDb,
  provinceConsumer,
  provinceSubject,
  READER_KEYS_FILE,
  type ReaderClaims,
  SIGNATURE_HEADER,
  type TokenSigner,
  transportTls,
} from "@evc-interop/runtime";
import { type ConsumerMessages, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import type { JWK } from "jose";
import type { Logger } from "pino";
import type { KitConfig } from "./config.js";
import { hint } from "./diagnosis.js";
import { startKitHub, virtualProvinces } from "./kit-hub.js";
import { HubOutage } from "./outage.js";
import { ProvinceProcess, runRestartCommand } from "./province-process.js";
import { ReceiptLog } from "./receipt-log.js";
import type { KitServices } from "./services.js";

export type Tracer = (line: string) => void;

/**
 * The kit's side of the protocol: a real hub (the reference one, so flows are genuine) that
 * also records every receipt it is sent, a raw publisher that can put anything on the bus
 * (duplicates, reorderings, malformed and foreign directives), and the virtual provinces the
 * kit plays. It talks to the province under test only through the protocol.
 */
export class Kit {
  private readonly receiptLog = new ReceiptLog((line) => this.trace(line));
  readonly virtualDirectives: Directive[] = [];
  /** The hub refusing receipts for a while (directive/receipts-retried). */
  readonly outage = new HubOutage();
  private virtualMessages: ConsumerMessages[] = [];
  /** The province's process, when the kit started it. */
  private child: ProvinceProcess | undefined;
  private tlsCache: ReturnType<typeof transportTls> | undefined;
  trace: Tracer = () => {};

  readonly config: KitConfig;
  readonly hub: Hub;
  readonly nc: NatsConnection;
  readonly layout: BusLayout;
  /** The two provinces the kit plays itself (never the vendor's code). */
  readonly virtual: [string, string];
  private readonly signers: Map<string, TokenSigner>;
  readonly log: Logger;
  /** Signs what the kit publishes as the hub. */
  readonly directiveSigner: DirectiveSigner;
  /** Signs the phone-tier reader tokens the kit reads the province with. */
  private readonly readerIssuer: JWK;
  /** Environment for the province the kit starts, about services the kit started. */
  private readonly servicesEnv: KitServices["provinceEnv"];

  private constructor(parts: {
    config: KitConfig;
    hub: Hub;
    nc: NatsConnection;
    signers: Map<string, TokenSigner>;
    log: Logger;
    directiveSigner: DirectiveSigner;
    readerIssuer: JWK;
    servicesEnv: KitServices["provinceEnv"];
  }) {
    this.config = parts.config;
    this.hub = parts.hub;
    this.nc = parts.nc;
    this.layout = parts.hub.layout;
    this.virtual = virtualProvinces(parts.config.province.code);
    this.signers = parts.signers;
    this.log = parts.log;
    this.directiveSigner = parts.directiveSigner;
    this.readerIssuer = parts.readerIssuer;
    this.servicesEnv = parts.servicesEnv;
  }

  /** The key set the province must trust for directives (written by the kit). */
  get directiveKeysFile(): string {
    return join(this.config.kit.directiveKeysDir, DIRECTIVE_KEYS_FILE);
  }

  /** The reader token issuer's key set the province must trust (written by the kit). */
  get readerKeysFile(): string {
    return join(this.config.kit.directiveKeysDir, READER_KEYS_FILE);
  }

  static async start(
    config: KitConfig,
    log: Logger,
    servicesEnv: KitServices["provinceEnv"] = { fallback: {}, imposed: {} },
  ): Promise<Kit> {
    let kit: Kit | undefined;
    const recorder: Interceptor = (next) => async (req) => {
      if (req.method.name === "SubmitReceipts" && !req.stream) {
        if (kit?.outage.refuses()) {
          kit.trace("✗ receipts refused: the kit's hub plays unreachable");
          throw new ConnectError("the hub is unavailable (a conformance case)", Code.Unavailable);
        }
        for (const r of (req.message as SubmitReceiptsRequest).receipts) kit?.receiptLog.record(r);
      }
      return next(req);
    };
    const { hub, signers, signer, readerIssuer } = await startKitHub(config, log, recorder);
    const nc = await connect({
      servers: natsServers(config.kit.natsUrl),
      name: "evc-conformance",
      ...natsCredentials(config.kit),
    });
    kit = new Kit({
      config,
      hub,
      nc,
      signers,
      log,
      directiveSigner: signer,
      readerIssuer,
      servicesEnv,
    });
    await kit.playVirtualProvinces();
    return kit;
  }

  /** Receipts the province sent for a directive, in arrival order. */
  receipts(directiveId: string): Receipt[] {
    return this.receiptLog.of(directiveId);
  }

  /** Waits until `count` receipts for the directive arrived (or the timeout passes). */
  waitReceipts(directiveId: string, count = 1, timeoutMs = 10_000): Promise<Receipt[]> {
    return this.receiptLog.wait(directiveId, count, timeoutMs);
  }

  /** Consumes the virtual provinces' consumers so the kit sees what the hub sends them. */
  private async playVirtualProvinces(): Promise<void> {
    const js = jetstream(this.nc);
    for (const code of this.virtual) {
      const consumer = await js.consumers.get(this.layout.stream, provinceConsumer(code));
      const messages = await consumer.consume();
      this.virtualMessages.push(messages);
      void (async () => {
        for await (const m of messages) {
          this.virtualDirectives.push(fromBinary(DirectiveSchema, m.data));
          m.ack();
        }
      })();
    }
  }

  /** Authenticated hub client acting as one of the kit's virtual provinces. */
  asVirtual<S extends DescService>(service: S, code: string): Client<S> {
    const signer = this.signers.get(code);
    if (!signer) throw new Error(`${code} is not a virtual province of the kit`);
    return createClient(
      service,
      createConnectTransport({
        baseUrl: this.hub.url,
        httpVersion: "2",
        interceptors: [bearer(() => signer.token())],
        nodeOptions: transportTls(clientTlsFromEnv({ EVC_TLS_CA: this.config.kit.tlsCaFile })),
      }),
    );
  }

  /** Submits receipts as a virtual province. */
  async answerAs(code: string, receipts: Receipt[]) {
    return this.asVirtual(DirectiveService, code).submitReceipts({ receipts });
  }

  /**
   * A transport to the province in the configured protocol, every call with a deadline
   * (kit.call_timeout_ms), so a province that never answers fails the call instead of hanging.
   */
  private transport(interceptors: Interceptor[], baseUrl = this.config.province.url) {
    const p = this.config.province;
    const common = {
      baseUrl,
      interceptors,
      nodeOptions: this.provinceTls,
      defaultTimeoutMs: this.config.kit.callTimeoutMs,
    };
    if (p.protocol === "grpc") return createGrpcTransport(common);
    if (p.protocol === "grpc-web")
      return createGrpcWebTransport({ ...common, httpVersion: p.httpVersion });
    return createConnectTransport({ ...common, httpVersion: p.httpVersion });
  }

  /** TLS options towards the province (its CA, the kit's client certificate), read once. */
  private get provinceTls() {
    const p = this.config.province;
    this.tlsCache ??= transportTls(
      clientTlsFromEnv({
        EVC_TLS_CA: p.caFile,
        EVC_TLS_CLIENT_CERT: p.clientCertFile,
        EVC_TLS_CLIENT_KEY: p.clientKeyFile,
      }),
    );
    return this.tlsCache;
  }

  /** A reader token for the province under test (default: a clinic, scope records:read). */
  readerToken(claims: Partial<ReaderClaims> = {}): Promise<string> {
    return issueReaderToken(this.readerIssuer, {
      province: this.config.province.code,
      caller: "clinic:evc-conformance",
      scope: "records:read",
      ...claims,
    });
  }

  /** The province's phone-facing API, as a clinic (a reader token with scope records:read). */
  get api(): Client<typeof ProvinceService> {
    return createClient(ProvinceService, this.transport([bearer(() => this.readerToken())]));
  }

  /** The province's phone-facing API, as anyone (no credential), or with the given token. */
  phone(token?: string): Client<typeof ProvinceService> {
    return createClient(ProvinceService, this.transport(token ? [bearer(token)] : []));
  }

  /** The province's control API. */
  get control(): Client<typeof ControlService> {
    const token = this.config.province.controlToken;
    return createClient(
      ControlService,
      this.transport(token ? [bearer(token)] : [], this.config.province.controlUrl),
    );
  }

  /** A directive as the kit (playing the hub) would issue it; override anything. */
  directive(init: Partial<Directive> & { action: Directive["action"] }): Directive {
    return create(DirectiveSchema, {
      directiveId: randomUUID(),
      targetProvinceCode: this.config.province.code,
      correlationId: randomUUID(),
      causationEventId: randomUUID(),
      issuedAt: timestampFromDate(new Date()),
      recordId: randomUUID(),
      recordSequence: 1n,
      attempt: 1,
      streamVersion: 1n,
      ...init,
    });
  }

  /**
   * Publishes a directive on a province's subject `times` times (each a distinct bus message);
   * returns the stream sequence of the last copy.
   */
  async deliver(
    d: Directive,
    times = 1,
    subjectProvince = this.config.province.code,
  ): Promise<number> {
    let seq = 0;
    for (let i = 0; i < times; i++) {
      this.trace(
        `→ ${i > 0 ? `copy ${i + 1} of ` : ""}directive ${toJsonString(DirectiveSchema, d)}`,
      );
      seq = await this.publish(
        toBinary(DirectiveSchema, d),
        subjectProvince,
        `${d.directiveId}/${randomUUID()}`,
      );
    }
    return seq;
  }

  /**
   * Publishes raw bytes on a province's subject, signed by the kit's hub key unless `signature`
   * says otherwise (null: unsigned; a string: that header value); returns the stream sequence.
   */
  async publish(
    bytes: Uint8Array,
    province = this.config.province.code,
    msgId: string = randomUUID(),
    signature: string | null = this.directiveSigner.sign(bytes),
  ): Promise<number> {
    const h = headers();
    h.set("Content-Type", "application/x-protobuf; proto=evc.directive.v1.Directive");
    if (signature !== null) h.set(SIGNATURE_HEADER, signature);
    const ack = await jetstream(this.nc).publish(provinceSubject(this.layout, province), bytes, {
      msgID: msgId,
      headers: h,
    });
    return ack.seq;
  }

  /**
   * Waits until the province's consumer has handed out the message at `streamSeq` or, with
   * `acked`, until the ack floor passed it (every earlier message acknowledged too).
   */
  async waitConsumed(streamSeq: number, acked: boolean, timeoutMs = 10_000): Promise<void> {
    const jsm = await jetstreamManager(this.nc);
    const end = Date.now() + timeoutMs;
    for (;;) {
      const info = await jsm.consumers.info(
        this.layout.stream,
        provinceConsumer(this.config.province.code),
      );
      if ((acked ? info.ack_floor.stream_seq : info.delivered.stream_seq) >= streamSeq) return;
      if (Date.now() > end)
        throw new Error(`the province did not fetch stream message ${streamSeq}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Starts the province with its start command, if the config has one, and waits until it answers. */
  async startProvince(): Promise<void> {
    const cmd = this.config.province.startCommand;
    if (cmd) this.child = new ProvinceProcess(cmd, this.provinceEnv());
    await this.waitReady();
  }

  /** What a province the kit starts (or restarts with restart_command) gets in its environment. */
  private provinceEnv(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      ...this.servicesEnv.fallback,
      ...this.config.province.env,
      ...this.servicesEnv.imposed,
      EVC_HUB_URL: this.hub.url,
      NATS_URL: this.config.kit.natsUrl,
      EVC_STREAM: this.layout.stream,
      EVC_SUBJECT_PREFIX: this.layout.subjectPrefix,
      EVC_PROVINCE_CODE: this.config.province.code,
      EVC_DIRECTIVE_KEYS: this.directiveKeysFile,
      EVC_READER_KEYS: this.readerKeysFile,
    };
  }

  /**
   * Waits until the province answers GetFeatures, each try with a deadline, at most
   * province.ready_timeout_ms; then fails with one line saying what was tried, what was seen
   * and what to check. A province process the kit started that exits fails at once.
   */
  async waitReady(): Promise<void> {
    const p = this.config.province;
    const end = Date.now() + p.readyTimeoutMs;
    let last: unknown;
    for (;;) {
      if (this.child?.end)
        throw new Error(`the province process (start_command) ${this.child.end} before answering`);
      const left = end - Date.now();
      if (left <= 0) break;
      try {
        await this.control.getFeatures(
          {},
          { timeoutMs: Math.min(left, this.config.kit.callTimeoutMs) },
        );
        return;
      } catch (err) {
        last = err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    throw new Error(
      `no answer to GetFeatures at ${p.controlUrl} over ${p.protocol} (HTTP/${p.httpVersion}) within ${p.readyTimeoutMs} ms; last saw: ${String(last)}; ${hint(last)}`,
    );
  }

  /**
   * Stops the province the kit started, for a case that needs it away for a while
   * (startProvince brings it back). Only with province.start_command.
   */
  async stopProvince(): Promise<void> {
    if (!this.child) {
      throw new Error(
        "this case stops the province for a while and starts it again: it needs province.start_command",
      );
    }
    this.trace("! stopping the province");
    await this.child.stop();
    this.child = undefined;
  }

  /** Whether the kit can restart the province (resilience profile). */
  get canRestart(): boolean {
    return Boolean(this.config.province.startCommand || this.config.province.restartCommand);
  }

  /** Restarts the province abruptly (SIGKILL of the process group it started, or the restart command). */
  async restartProvince(): Promise<void> {
    this.trace("! restarting the province");
    if (this.child) {
      await this.child.kill();
      this.child = undefined;
      await this.startProvince();
      return;
    }
    const cmd = this.config.province.restartCommand;
    if (!cmd) throw new Error("no start_command or restart_command in the config");
    await runRestartCommand(cmd, this.provinceEnv());
    await this.waitReady();
  }

  async stop(): Promise<void> {
    await this.child?.stop();
    this.child = undefined;
    for (const m of this.virtualMessages) m.stop();
    await this.hub.stop();
    // This run's own stream and schema: nothing of it is left for the next run.
    const own = this.config.kit.ownNames;
    const jsm = await jetstreamManager(this.nc).catch(() => undefined);
    if (own.stream) await jsm?.streams.delete(this.config.kit.stream).catch(() => undefined);
    if (own.schema) {
      // The hub's chain pin belongs with its schema: left behind, the next run's hub on a
      // fresh schema would find itself behind the pin, and be fenced.
      await jsm?.streams.delete(chainPinStream(this.config.kit.stream)).catch(() => undefined);
      const sql = openDb({ url: this.config.kit.databaseUrl, schema: "public", max: 1 });
      await sql`DROP SCHEMA IF EXISTS ${sql(this.config.kit.schema)} CASCADE`.catch(
        () => undefined,
      );
      await sql.end({ timeout: 1 });
    }
    await this.nc.close().catch(() => undefined);
  }
}
