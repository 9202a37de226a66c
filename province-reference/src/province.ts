import { timingSafeEqual } from "node:crypto";
import type { ServerResponse } from "node:http";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createClient,
  type Interceptor,
} from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { createValidateInterceptor } from "@connectrpc/validate";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { CertificateService } from "@evc-interop/gen/evc/national/v1/certificate_service_pb";
import { DirectiveService } from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import { DoseService } from "@evc-interop/gen/evc/national/v1/dose_service_pb";
import { MigrationService } from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { RecordService } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import { SnapshotService } from "@evc-interop/gen/evc/national/v1/snapshot_service_pb";
import { AccessLogService } from "@evc-interop/gen/evc/province/v1/access_log_service_pb";
import { ClinicService } from "@evc-interop/gen/evc/province/v1/clinic_service_pb";
import { ProvinceService } from "@evc-interop/gen/evc/province/v1/province_service_pb";
import {
  bearer,
  ConfigError,
  type Credential,
  createLogger,
  type DirectiveKeySet,
  DirectiveVerifier,
  databaseUnavailableInterceptor,
  inputHygieneInterceptor,
  listen,
  loadCredential,
  loadVerifier,
  logBusStatus,
  natsCredentials,
  natsServers,
  nodeAdapter,
  openDb,
  provinceInbox,
  type RunningServer,
  readinessProblems,
  serveOps,
  TokenSigner,
  transportTls,
} from "@evc-interop/runtime";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { JSONWebKeySet } from "jose";
import type { Logger } from "pino";
import type { Sql } from "postgres";
import { type AgentOptions, DirectiveAgent } from "./agent.js";
import { accessLogService } from "./api/access-log-service.js";
import { clinicService } from "./api/clinic-service.js";
import { controlService } from "./api/control-service.js";
import { ImmunizationHistory } from "./api/history.js";
import { provinceService } from "./api/province-service.js";
import { RateLimiter } from "./api/rate-limit.js";
import { loadReaderKeys, ReaderVerifier, readerAuthInterceptor } from "./api/reader-auth.js";
import type { ProvinceConfig } from "./config.js";
import { HubIntents } from "./hub-intents.js";
import { forgottenDirectives, lostPredecessors } from "./lost-predecessors.js";
import { ProvinceMetrics } from "./metrics.js";
import { ReceiptSubmitter } from "./receipt-submitter.js";
import { type ReconcileReport, reconcile } from "./reconcile.js";
import { recordsBehind } from "./reconcile-sequences.js";
import { AccessLog } from "./store/access-log.js";
import { migrate } from "./store/schema.js";
import { ProvinceStore } from "./store/store.js";
import { CertificateChanges } from "./watch.js";

export interface ProvinceOptions {
  credential?: Credential;
  /** The hub's directive keys; if absent, read from config.directiveKeysFile. */
  directiveKeys?: DirectiveKeySet;
  /** The reader token issuers' keys; if absent, read from config.readerKeysFile (if it exists). */
  readerKeys?: JSONWebKeySet;
  logger?: Logger;
  crashAfterCommit?: AgentOptions["crashAfterCommit"];
}

/**
 * The control port answers only a caller with its token (compared in constant time); it serves
 * nothing but the control API.
 */
function controlAuth(token: string): Interceptor {
  const expected = Buffer.from(`Bearer ${token}`);
  return (next) => async (req) => {
    const given = Buffer.from(req.header.get("authorization") ?? "");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new ConnectError(
        "the control API needs Authorization: Bearer <EVC_CONTROL_TOKEN>",
        Code.Unauthenticated,
      );
    }
    return next(req);
  };
}

/** What a started province is made of. */
interface ProvinceParts {
  config: ProvinceConfig;
  sql: Sql;
  nc: NatsConnection;
  store: ProvinceStore;
  agent: DirectiveAgent;
  submitter: ReceiptSubmitter;
  changes: CertificateChanges;
  metrics: ProvinceMetrics;
  log: Logger;
  reconcileOnce: () => Promise<ReconcileReport>;
  server: RunningServer | undefined;
}

/**
 * A complete reference province: store, directive agent, receipt submitter, reconciliation on
 * a schedule, and the province API (phone reads and watch, plus the control API) on one port.
 */
export class Province {
  private timer: NodeJS.Timeout | undefined;
  private reconciling: Promise<ReconcileReport> | undefined;
  private stopped = false;
  /** Province-initiated hub calls and their durable intents. */
  intents: HubIntents | undefined;
  private controlServer: RunningServer | undefined;

  readonly config: ProvinceConfig;
  readonly sql: Sql;
  readonly nc: NatsConnection;
  readonly store: ProvinceStore;
  readonly agent: DirectiveAgent;
  readonly submitter: ReceiptSubmitter;
  readonly changes: CertificateChanges;
  readonly metrics: ProvinceMetrics;
  readonly log: Logger;
  private readonly reconcileOnce: () => Promise<ReconcileReport>;
  private server: RunningServer | undefined;

  private constructor(parts: ProvinceParts) {
    this.config = parts.config;
    this.sql = parts.sql;
    this.nc = parts.nc;
    this.store = parts.store;
    this.agent = parts.agent;
    this.submitter = parts.submitter;
    this.changes = parts.changes;
    this.metrics = parts.metrics;
    this.log = parts.log;
    this.reconcileOnce = parts.reconcileOnce;
    this.server = parts.server;
  }

  get code(): string {
    return this.config.code;
  }

  get url(): string {
    if (!this.server) throw new Error("province is not listening");
    return this.server.url;
  }

  /** Base URL of the control API (its own port; only with EVC_CONTROL_TOKEN). */
  get controlUrl(): string {
    if (!this.controlServer) throw new Error("the control API is off (EVC_CONTROL_TOKEN unset)");
    return this.controlServer.url;
  }

  static async start(config: ProvinceConfig, opts: ProvinceOptions = {}): Promise<Province> {
    const log = opts.logger ?? createLogger(`evc-province-${config.code}`);
    const credential =
      opts.credential ?? (await loadCredential(config.credentialsDir, `province:${config.code}`));
    const verifier = opts.directiveKeys
      ? new DirectiveVerifier(opts.directiveKeys)
      : await loadVerifier(config.directiveKeysFile).catch((err: unknown) => {
          throw new ConfigError(
            `cannot read the hub's directive keys ${config.directiveKeysFile} (EVC_DIRECTIVE_KEYS): ${err instanceof Error ? err.message : String(err)}`,
          );
        });
    const readerKeys = opts.readerKeys ?? (await loadReaderKeys(config.readerKeysFile));
    const sql = openDb({
      url: config.databaseUrl,
      schema: config.schema,
      max: config.dbPoolSize,
      applicationName: `evc-province-${config.code}`,
    });
    let nc: NatsConnection | undefined;
    try {
      await migrate(sql, config.schema);
      nc = await connect({
        servers: natsServers(config.natsUrl),
        name: `evc-province-${config.code}`,
        maxReconnectAttempts: -1,
        // Its own reply subjects: the bus lets a province subscribe to nothing else.
        inboxPrefix: provinceInbox(config.code),
        ...natsCredentials(config),
        ...(config.natsTls ? { tls: config.natsTls } : {}),
      });
      void logBusStatus(nc, log);
      const channel = `evc_cert_${config.schema}`;
      const store = new ProvinceStore(sql, config.code, channel, config.maxBatch);
      const metrics = new ProvinceMetrics(config.code);
      const signer = new TokenSigner(credential);
      const transport = createConnectTransport({
        baseUrl: config.hubUrl,
        httpVersion: "2",
        interceptors: [bearer(() => signer.token())],
        useBinaryFormat: true,
        nodeOptions: transportTls(config.hubTls),
      });
      const directives = createClient(DirectiveService, transport);
      const submitter = new ReceiptSubmitter(store, directives, log, metrics, config.receiptPollMs);
      const layout = {
        stream: config.stream,
        subjectPrefix: config.subjectPrefix,
        duplicateWindowMs: 120_000,
      };
      const snapshot = createClient(SnapshotService, transport);
      const certificates = createClient(CertificateService, transport);
      const reconcileOptions = {
        chunk: config.reconcileChunk,
        extraGraceMs: config.extraGraceMs,
        repairBatch: config.reconcileRepairBatch,
      };
      const agent = new DirectiveAgent(
        nc,
        store,
        submitter,
        {
          layout,
          concurrency: config.concurrency,
          provisionConsumer: config.provisionConsumer,
          gapHoldMs: config.gapHoldMs,
          gapResyncMs: config.gapResyncMs,
          resync: async (ids) => {
            const recordIds = await recordsBehind(store, snapshot, ids);
            if (recordIds.length > 0)
              await reconcile(
                store,
                snapshot,
                certificates,
                { ...reconcileOptions, recordIds },
                log,
                metrics,
              );
            const gaps = await lostPredecessors(store, directives, ids);
            const lost = gaps.lost;
            if (lost.length > 0)
              log.warn(
                { directives: lost.length, records: new Set(lost.map((d) => d.recordId)).size },
                "directives applied and lost before their receipts left (restored from a backup?) read again from the hub",
              );
            return gaps;
          },
          verifier,
          ...(opts.crashAfterCommit ? { crashAfterCommit: opts.crashAfterCommit } : {}),
        },
        log,
        metrics,
      );
      const changes = new CertificateChanges(sql, channel, store.cache);
      const reconcileOnce = async () => {
        const report = await reconcile(
          store,
          snapshot,
          certificates,
          reconcileOptions,
          log,
          metrics,
        );
        // Then what the hub still waits for and this province never applied (or lost).
        const forgotten = await forgottenDirectives(store, directives, config.gapResyncMs);
        if (forgotten.length > 0) {
          const applied = await agent.takeFromHub(forgotten);
          log.warn(
            { directives: forgotten.length, applied },
            "reconciliation: directives the hub waits for and this province does not hold (lost with a restored backup?) read again from the hub",
          );
        }
        return report;
      };
      const p = new Province({
        config,
        sql,
        nc,
        store,
        agent,
        submitter,
        changes,
        metrics,
        log,
        reconcileOnce,
        server: undefined,
      });
      const hub = {
        records: createClient(RecordService, transport),
        migrations: createClient(MigrationService, transport),
        doses: createClient(DoseService, transport),
      };
      const intents = new HubIntents(store, hub, log, config.intentPollMs);
      p.intents = intents;
      const endpoints = {
        readiness: () => readinessProblems(p.sql, p.nc),
        registry: metrics.registry,
        log,
      };
      const ops = (req: { url?: string }, res: unknown) => {
        void serveOps(endpoints, req.url ?? "/", res as ServerResponse);
      };
      const checks = [createValidateInterceptor(), inputHygieneInterceptor()];
      const databaseDown = databaseUnavailableInterceptor((method, reason) =>
        log.warn({ method, reason }, "request failed: the database is unavailable"),
      );
      const handler = nodeAdapter({
        readMaxBytes: config.readMaxBytes,
        onError: (err, method) => log.error({ err, method }, "writing a response failed"),
        routes: (router: ConnectRouter) => {
          const accessLog = new AccessLog(sql);
          router.service(ProvinceService, provinceService(store, changes, accessLog));
          router.service(AccessLogService, accessLogService(accessLog));
          router.service(
            ClinicService,
            clinicService(
              config.code,
              intents,
              new ImmunizationHistory(config.code, store, accessLog, hub.records),
            ),
          );
        },
        interceptors: [
          databaseDown,
          readerAuthInterceptor(
            new ReaderVerifier(readerKeys, config.code),
            new RateLimiter(config.readerRatePerMinute),
          ),
          ...checks,
        ],
        fallback: ops,
      });
      // The kit's control surface: off unless a token for it is configured (secure by default),
      // and then on a port of its own, never beside the public API.
      const controlHandler = config.controlToken
        ? nodeAdapter({
            readMaxBytes: config.readMaxBytes,
            onError: (err, method) => log.error({ err, method }, "writing a response failed"),
            routes: (router: ConnectRouter) => {
              router.service(
                ControlService,
                controlService(store, intents, () => p.reconcile()),
              );
            },
            interceptors: [databaseDown, controlAuth(config.controlToken), ...checks],
            fallback: ops,
          })
        : undefined;
      if (!config.controlToken)
        log.info(
          "control API off (set EVC_CONTROL_TOKEN to serve evc.conformance.v1.ControlService)",
        );
      if (!readerKeys)
        log.info(
          { file: config.readerKeysFile },
          "no reader token issuer trusted (EVC_READER_KEYS): reads by identity and of full records are refused",
        );
      await changes.start();
      submitter.start();
      // Intents a crash left pending are completed first thing, then whenever woken or due.
      intents.start();
      await agent.start();
      if (config.reconcileIntervalMs > 0) p.schedule();
      p.server = await listen(handler, config.host, config.port, config.tls);
      if (controlHandler)
        p.controlServer = await listen(
          controlHandler,
          config.controlHost,
          config.controlPort,
          config.tls,
        );
      log.info(
        {
          province: config.code,
          url: p.server.url,
          control: p.controlServer?.url,
          hub: config.hubUrl,
          schema: config.schema,
        },
        "province listening",
      );
      return p;
    } catch (err) {
      await nc?.close().catch(() => undefined);
      await sql.end({ timeout: 1 }).catch(() => undefined);
      throw err;
    }
  }

  /** Runs one reconciliation pass (concurrent callers share the pass in progress). */
  reconcile(): Promise<ReconcileReport> {
    this.reconciling ??= this.reconcileOnce().finally(() => {
      this.reconciling = undefined;
    });
    return this.reconciling;
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      this.reconcile()
        .catch((err: unknown) => this.log.error({ err }, "scheduled reconciliation failed"))
        .finally(() => {
          if (!this.stopped) this.schedule();
        });
    }, this.config.reconcileIntervalMs);
  }

  /** Graceful stop: the agent finishes what it holds, receipts are flushed, then close. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.all([
      this.server?.close(this.config.shutdownGraceMs),
      this.controlServer?.close(this.config.shutdownGraceMs),
    ]);
    await this.agent.stop();
    await this.reconciling?.catch(() => undefined);
    await this.intents?.stop();
    await this.submitter.stop();
    await this.changes.stop();
    await this.nc.drain().catch(() => undefined);
    await this.sql.end({ timeout: 5 });
    this.log.info({ province: this.code }, "province stopped");
  }

  /** Hard stop for crash drills: drops connections without draining or flushing. */
  async kill(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.all([this.server?.close(0), this.controlServer?.close(0)]);
    await this.nc.close().catch(() => undefined);
    // A crash does not wait for work in flight: a flush waiting on a lock (held by whoever
    // is waiting for this kill) would hold it for ever. The pool is dropped first; what was
    // in flight fails with it, then the loops end.
    const loops = [
      this.agent.stop(),
      this.intents?.stop(),
      this.submitter.stop(false),
      this.changes.stop(),
    ];
    await this.sql.end({ timeout: 0 });
    await Promise.allSettled(loops);
  }
}
