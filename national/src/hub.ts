import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import { createValidateInterceptor } from "@connectrpc/validate";
import { serveConsole } from "@evc-interop/console";
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
  type BusLayout,
  ConfigError,
  createLogger,
  type DirectiveSigner,
  inputHygieneInterceptor,
  listen,
  loadSigner,
  loadTrust,
  logBusStatus,
  natsCredentials,
  natsServers,
  nodeAdapter,
  openDb,
  PROVINCES,
  provisionProvinceConsumer,
  provisionStream,
  type RunningServer,
  readinessProblems,
  serveOps,
  TokenVerifier,
} from "@evc-interop/runtime";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { JSONWebKeySet } from "jose";
import type { Logger } from "pino";
import type { Sql } from "postgres";
import { auditService } from "./api/audit-service.js";
import { certificateService } from "./api/certificate-service.js";
import type { HubDeps } from "./api/context.js";
import { directiveService } from "./api/directive-service.js";
import { doseService } from "./api/dose-service.js";
import { authInterceptor, observeInterceptor } from "./api/interceptors.js";
import { migrationService } from "./api/migration-service.js";
import { onboardingService } from "./api/onboarding-service.js";
import { operatorService } from "./api/operator-service.js";
import { privacyService } from "./api/privacy-service.js";
import { recordService } from "./api/record-service.js";
import { snapshotService } from "./api/snapshot-service.js";
import { Relay } from "./bus/relay.js";
import { sealOnce } from "./chain/chain.js";
import { ChainFence } from "./chain/fence.js";
import { ChainPin } from "./chain/pin.js";
import { DEV_PERSON_KEY_SECRET, type HubConfig } from "./config.js";
import { HubMetrics } from "./metrics.js";
import { HubStore } from "./store/hub-store.js";
import { HubQueries } from "./store/queries.js";
import { migrate } from "./store/schema.js";

export interface HubOptions {
  /** Trusted JWKS; if absent, read from config.trustFile. */
  trust?: JSONWebKeySet;
  /** The key directives are signed with; if absent, read from config.directiveSigningKeyFile. */
  signer?: DirectiveSigner;
  clock?: () => Date;
  newId?: () => string;
  logger?: Logger;
  /** Run the background workers (relay, deadline monitor, sealer). Default true. */
  workers?: boolean;
  /** Extra interceptors, run after authentication and validation. */
  interceptors?: Interceptor[];
  /**
   * Interceptors that see every request of an authenticated caller before validation, valid or
   * not (the conformance kit's recorder: a receipt the contract refuses was still sent).
   */
  inspect?: Interceptor[];
}

/** What a started hub is made of. */
interface HubParts {
  config: HubConfig;
  sql: Sql;
  nc: NatsConnection;
  store: HubStore;
  relay: Relay;
  metrics: HubMetrics;
  log: Logger;
  server: RunningServer | undefined;
  layout: BusLayout;
  fence: ChainFence;
}

/**
 * The reference national server: Connect API, PostgreSQL store, outbox relay to JetStream,
 * deadline monitor and chain sealer, with health, readiness and metrics on the same port.
 */
export class Hub {
  private running = true;
  private wake: (() => void) | undefined;
  /** Set by a notification that arrived while the worker was busy: it must not sleep. */
  private poked = false;
  private loop: Promise<void> = Promise.resolve();
  /** The chain sealer's own loop (a sealing pass must not hold up the relay). */
  private sealing: Promise<void> = Promise.resolve();
  private wakeSealer: (() => void) | undefined;
  private unlisten: (() => Promise<void>) | undefined;

  readonly config: HubConfig;
  readonly sql: Sql;
  readonly nc: NatsConnection;
  readonly store: HubStore;
  readonly relay: Relay;
  readonly metrics: HubMetrics;
  readonly log: Logger;
  private server: RunningServer | undefined;
  readonly layout: BusLayout;
  /** Keeps the hub from acting on a database behind what it already did (chain/pin.ts). */
  readonly fence: ChainFence;

  private constructor(parts: HubParts) {
    this.config = parts.config;
    this.sql = parts.sql;
    this.nc = parts.nc;
    this.store = parts.store;
    this.relay = parts.relay;
    this.metrics = parts.metrics;
    this.log = parts.log;
    this.server = parts.server;
    this.layout = parts.layout;
    this.fence = parts.fence;
  }

  /** Base URL of the API. */
  get url(): string {
    if (!this.server) throw new Error("hub is not listening");
    return this.server.url;
  }

  static async start(config: HubConfig, opts: HubOptions = {}): Promise<Hub> {
    const log = opts.logger ?? createLogger("evc-hub");
    if (config.personKeySecret === DEV_PERSON_KEY_SECRET) {
      log.warn(
        "EVC_PERSON_KEY_SECRET is not set: using the development secret (never in production)",
      );
    }
    const trust = opts.trust ?? (await loadTrust(config.trustFile));
    const signer =
      opts.signer ??
      (await loadSigner(config.directiveSigningKeyFile).catch((err: unknown) => {
        throw new ConfigError(
          `cannot read the directive signing key ${config.directiveSigningKeyFile} (EVC_DIRECTIVE_SIGNING_KEY): ${err instanceof Error ? err.message : String(err)}; \`npm run credentials\` writes a development one`,
        );
      }));
    const sql = openDb({ url: config.databaseUrl, schema: config.schema, max: config.dbPoolSize });
    let nc: NatsConnection | undefined;
    try {
      const applied = await migrate(sql, config.schema);
      if (applied.length > 0)
        log.info({ schema: config.schema, applied }, "schema migrations applied");
      nc = await connect({
        servers: natsServers(config.natsUrl),
        name: "evc-hub",
        maxReconnectAttempts: -1,
        ...natsCredentials(config),
        ...(config.natsTls ? { tls: config.natsTls } : {}),
      });
      void logBusStatus(nc, log);
      const layout: BusLayout = {
        stream: config.stream,
        subjectPrefix: config.subjectPrefix,
        duplicateWindowMs: config.duplicateWindowMs,
      };
      const jsm = await jetstreamManager(nc);
      const provision = async () => {
        await provisionStream(jsm, layout, config.streamReplicas);
        for (const code of Object.keys(PROVINCES)) {
          await provisionProvinceConsumer(jsm, layout, code, config.consumerAckWaitMs);
        }
      };
      await provision();
      const clock = opts.clock ?? (() => new Date());
      const notifyChannel = `evc_outbox_${config.schema}`;
      const store = new HubStore(sql, {
        clock,
        newId: opts.newId ?? randomUUID,
        deadlines: {
          suspendMs: config.suspendDeadlineMs,
          activateMs: config.activateDeadlineMs,
          compensateMs: config.compensateDeadlineMs,
          compensateRounds: config.compensateRounds,
        },
        notifyChannel,
        maxBatch: config.maxBatch,
      });
      const metrics = new HubMetrics(sql);
      metrics.watchConsumers(jsm, layout.stream);
      const pin = new ChainPin(jsm, jetstream(nc), layout.stream, config.streamReplicas);
      await pin.provision();
      const fence = new ChainFence(sql, pin, log, metrics);
      await fence.check(config.acceptRestoredChain);
      const relay = new Relay(
        sql,
        jetstream(nc),
        {
          layout,
          redeliverAfterMs: config.redeliverAfterMs,
          redeliverMaxMs: config.redeliverMaxMs,
          maxPublishes: config.maxPublishes,
          batchSize: 500,
          clock,
          signer,
          reprovision: provision,
        },
        log,
        metrics,
      );
      const hub = new Hub({
        config,
        sql,
        nc,
        store,
        relay,
        metrics,
        log,
        server: undefined,
        layout,
        fence,
      });
      const deps: HubDeps = {
        sql,
        store,
        queries: new HubQueries(sql),
        personKeySecret: config.personKeySecret,
        snapshotStallMs: config.snapshotStallMs,
        metrics,
      };
      const verifier = new TokenVerifier(trust);
      if (!opts.trust) hub.watchTrust(verifier);
      const handler = nodeAdapter({
        readMaxBytes: config.readMaxBytes,
        onError: (err, method) => log.error({ err, method }, "writing a response failed"),
        routes: (router: ConnectRouter) => {
          router.service(RecordService, recordService(deps));
          router.service(OnboardingService, onboardingService(deps));
          router.service(MigrationService, migrationService(deps));
          router.service(DirectiveService, directiveService(deps));
          router.service(DoseService, doseService(deps));
          router.service(CertificateService, certificateService(deps));
          router.service(SnapshotService, snapshotService(deps));
          router.service(AuditService, auditService(deps));
          router.service(PrivacyService, privacyService(deps));
          router.service(OperatorService, operatorService(deps));
        },
        // Order matters: observe (translate + count) wraps auth, which runs before validation,
        // so unauthenticated callers learn nothing about the request rules; what no store could
        // keep (NUL characters, timestamps outside 0001-9999) is refused after the contract's rules.
        interceptors: [
          observeInterceptor(log, metrics),
          fence.interceptor(),
          authInterceptor(verifier, config.tls?.clientCa !== undefined),
          ...(opts.inspect ?? []),
          createValidateInterceptor(),
          inputHygieneInterceptor(),
          ...(opts.interceptors ?? []),
        ],
        fallback: (req, res) => {
          // Http2ServerResponse offers the same writeHead/end used here.
          const ops = { readiness: () => hub.readiness(), registry: metrics.registry, log };
          const url = req.url ?? "/";
          void serveConsole(url, res as ServerResponse).then(
            (served) => (served ? undefined : serveOps(ops, url, res as ServerResponse)),
            (err: unknown) => log.error({ err }, "serving the console failed"),
          );
        },
      });
      if (opts.workers !== false && config.role !== "api") {
        const unlisten = await sql.listen(notifyChannel, () => hub.poke());
        hub.unlisten = () => unlisten.unlisten();
        hub.loop = hub.work();
        hub.sealing = hub.seal();
      }
      hub.server = await listen(handler, config.host, config.port, config.tls);
      log.info(
        { url: hub.server.url, schema: config.schema, nats: config.natsUrl, stream: config.stream },
        "hub listening",
      );
      return hub;
    } catch (err) {
      await nc?.close().catch(() => undefined);
      await sql.end({ timeout: 1 }).catch(() => undefined);
      throw err;
    }
  }

  /** What keeps the hub from serving: empty when PostgreSQL and NATS both answer. */
  async readiness(): Promise<string[]> {
    const problems = await readinessProblems(this.sql, this.nc);
    return this.fence.reason ? [...problems, `fenced: ${this.fence.reason}`] : problems;
  }

  /** Background work: relay the outbox, act on deadlines. */
  private async work(): Promise<void> {
    let lastDeadlines = 0;
    // Deadlines are seconds to minutes: look at them a few times per shortest deadline, not on
    // every wake-up of the relay.
    const deadlineEveryMs = Math.min(
      1000,
      this.config.suspendDeadlineMs / 4,
      this.config.activateDeadlineMs / 4,
      this.config.compensateDeadlineMs / 4,
    );
    while (this.running) {
      try {
        this.poked = false;
        // Fenced: nothing is published and no deadline acted on (chain/fence.ts).
        if (!this.fence.reason) {
          // A short round means the outbox was drained; rows written since then notify again.
          while ((await this.relay.runOnce()) >= this.relay.batchSize && this.running) {}
          if (Date.now() - lastDeadlines >= deadlineEveryMs) {
            lastDeadlines = Date.now();
            await this.actOnDeadlines();
          }
        }
      } catch (err) {
        if (this.running) this.log.error({ err }, "background round failed; retrying");
      }
      if (!this.running) break;
      if (this.poked) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.config.pollMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /**
   * Seals the hash chain about once a second, in a loop of its own: a pass over a second of
   * busy traffic takes tens of milliseconds, which directives waiting to be relayed used to
   * wait out.
   */
  private async seal(): Promise<void> {
    while (this.running) {
      try {
        if (!this.fence.reason) while ((await sealOnce(this.sql)) > 0 && this.running) {}
      } catch (err) {
        if (this.running) this.log.error({ err }, "sealing the chain failed; retrying");
      }
      // Every round, not only after sealing here: a pin that failed (the bus away) or links
      // another replica sealed are pinned on the next one.
      await this.fence.advance().catch((err: unknown) => {
        if (this.running)
          this.log.warn({ err: String(err) }, "pinning the chain's head failed; retrying");
      });
      if (!this.running) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        this.wakeSealer = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeSealer = undefined;
    }
  }

  /**
   * Runs the deadline command of every open migration past its step deadline, page after page
   * in (deadline, id) order: a page of migrations that stay due cannot hide the ones after it
   * (each due migration moves on anyway: a later deadline, or NEEDS_OPERATOR, out of the scan).
   */
  async actOnDeadlines(): Promise<number> {
    const now = this.store.clock();
    let after: { deadline: Date; id: string } | undefined;
    let acted = 0;
    for (let page = 0; page < 50; page++) {
      const due = await this.sql<{ migration_id: string; person_key: string; deadline: Date }[]>`
        SELECT migration_id, person_key, deadline FROM migrations
        WHERE state IN ('REQUESTED', 'SOURCE_SUSPENDED', 'COMPENSATING') AND deadline <= ${now}
          ${after ? this.sql`AND (deadline, migration_id) > (${after.deadline}, ${after.id}::uuid)` : this.sql``}
        ORDER BY deadline, migration_id LIMIT 100`;
      for (const m of due) {
        const { events } = await this.store.execute(
          m.person_key,
          { kind: "deadline", migrationId: m.migration_id },
          () => null,
        );
        if (events.length === 0) continue;
        acted += 1;
        this.metrics.compensations.inc();
        const type = events[0]?.type;
        if (type === "MigrationNeedsOperator")
          this.log.error(
            { migrationId: m.migration_id, event: type },
            "migration needs an operator: the target never answered the revoke; the person's lock is held",
          );
        else
          this.log.warn(
            { migrationId: m.migration_id, event: type },
            "migration step deadline passed",
          );
      }
      const last = due.at(-1);
      if (!last || due.length < 100) break;
      after = { deadline: last.deadline, id: last.migration_id };
    }
    return acted;
  }

  /** An outbox notification: wake the worker, or tell it not to sleep if it is busy. */
  private poke(): void {
    this.poked = true;
    this.wake?.();
  }

  /**
   * Reloads the trust file when it changes (checked every trustReloadMs, and on SIGHUP): a key
   * revoked there is refused at once, a key added is accepted, without a restart. A file that
   * does not parse is reported and the keys in force are kept.
   */
  watchTrust(verifier: TokenVerifier): void {
    let seen = "";
    const reload = async () => {
      try {
        const text = await readFile(this.config.trustFile, "utf8");
        if (text === seen) return;
        const trust = JSON.parse(text) as JSONWebKeySet;
        if (!Array.isArray(trust.keys)) throw new Error("no keys array");
        verifier.setTrust(trust);
        if (seen) this.log.info({ keys: trust.keys.length }, "trust file reloaded");
        seen = text;
      } catch (err) {
        this.log.error(
          { err: String(err), file: this.config.trustFile },
          "trust file not reloaded; the keys in force are kept",
        );
      }
    };
    void reload();
    const onHup = () => void reload();
    process.on("SIGHUP", onHup);
    const timer =
      this.config.trustReloadMs > 0 ? setInterval(onHup, this.config.trustReloadMs) : undefined;
    timer?.unref();
    this.unwatchTrust = () => {
      if (timer) clearInterval(timer);
      process.off("SIGHUP", onHup);
    };
  }

  private unwatchTrust: (() => void) | undefined;

  /** Graceful stop: no new requests, in-flight ones finish, workers end their round, then close. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.unwatchTrust?.();
    this.wake?.();
    this.wakeSealer?.();
    await this.server?.close(this.config.shutdownGraceMs);
    await this.loop;
    await this.sealing;
    await this.unlisten?.().catch(() => undefined);
    await this.nc.drain().catch(() => undefined);
    await this.sql.end({ timeout: 5 });
    this.log.info("hub stopped");
  }
}
