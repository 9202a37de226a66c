import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { type Identity, IdType } from "@evc-interop/gen/evc/common/v1/identity_pb";
import { CloseReason, type Dose } from "@evc-interop/gen/evc/common/v1/record_pb";
import {
  type DoseService,
  ReportDoseRequestSchema,
} from "@evc-interop/gen/evc/national/v1/dose_service_pb";
import {
  type MigrationService,
  RequestMigrationRequestSchema,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import {
  CloseRecordRequestSchema,
  type RecordService,
  RegisterRecordRequestSchema,
  ReissueCertificateRequestSchema,
} from "@evc-interop/gen/evc/national/v1/record_service_pb";
import type { Logger } from "pino";
import { FlushLoop } from "./flush-loop.js";
import { type Intent, IntentStore } from "./store/intents.js";
import type { ProvinceStore } from "./store/store.js";

/** Hub answers that are final: the intent is refused, never retried. */
const FINAL = new Set([
  Code.InvalidArgument,
  Code.NotFound,
  Code.AlreadyExists,
  Code.PermissionDenied,
  Code.FailedPrecondition,
  Code.OutOfRange,
  Code.Unimplemented,
]);

/**
 * The hub refused (now or on an earlier call) the report of a dose this province stored: the
 * dose stays in the local record (it was given), the caller is told the hub does not hold it —
 * the same answer on every retry. FailedPrecondition unless the hub's own code is given.
 */
function keptHere(why: string, code = Code.FailedPrecondition): ConnectError {
  return new ConnectError(
    `dose: kept in this province's record, but the hub refused it (${why})`,
    code,
  );
}

/** The hub services a province calls. */
export interface HubClients {
  records: Client<typeof RecordService>;
  migrations: Client<typeof MigrationService>;
  doses: Client<typeof DoseService>;
}

/** The hub did not answer; the intent is kept and completed later. */
export class HubUnanswered extends ConnectError {
  /**
   * ConnectError's instanceof accepts any error shaped like one (across copies of the
   * library), and a subclass inherits that: without this, every refusal by the hub counted
   * as "not answered".
   */
  static override [Symbol.hasInstance](v: unknown): boolean {
    return v instanceof Error && Object.prototype.isPrototypeOf.call(HubUnanswered.prototype, v);
  }

  constructor(what: string, cause: ConnectError) {
    super(
      `the hub did not answer (${Code[cause.code]}: ${cause.rawMessage}); ${what} is recorded here and will be completed — calling again returns it`,
      Code.Unavailable,
    );
  }
}

/**
 * Province-initiated hub calls with durable intents (#14): registrations, migration requests,
 * closures and reports of doses stored here. Each is written down in the local
 * store before the call (or with the local change it reports), carries a stable idempotency
 * key, and is completed by whoever gets there first — the RPC that started it, or the driver
 * loop after a restart. A crash at any point leaves an intent that the next pass completes or,
 * when the hub refuses it, ends as REFUSED; nothing a client was told succeeded is lost.
 */
export class HubIntents {
  readonly intents: IntentStore;
  private readonly loop: FlushLoop;

  constructor(
    private readonly store: ProvinceStore,
    private readonly hub: HubClients,
    private readonly log: Logger,
    pollMs: number,
  ) {
    this.intents = new IntentStore(store);
    this.loop = new FlushLoop(
      () => this.flush(),
      pollMs,
      log,
      "completing hub intents failed; retrying",
    );
  }

  /**
   * Registers a person here: the hub decides (I1), then the record is written here. With
   * known_as (the birth certificate on file, registering under the resident ID) the hub may
   * link the document to the record already held here instead: that record takes it.
   */
  async register(identity: Identity, doses: Dose[], knownAs: Identity[] = []) {
    const intent = await this.intents.beginRegistration(identity, (id) =>
      toBinary(
        RegisterRecordRequestSchema,
        create(RegisterRecordRequestSchema, {
          idempotencyKey: `register-${id}`,
          identity,
          certificateNumber: this.store.newCertificateNumber(),
          doses,
          knownAs,
        }),
      ),
    );
    return this.completeRegistration(intent);
  }

  /** Asks the hub to migrate a person here; returns the migration id. */
  async migrateIn(identity: Identity): Promise<string> {
    const intent = await this.intents.beginMigration(identity, (id) =>
      toBinary(
        RequestMigrationRequestSchema,
        create(RequestMigrationRequestSchema, { idempotencyKey: `migrate-${id}`, identity }),
      ),
    );
    return this.completeMigration(intent);
  }

  /**
   * Records a dose given here. On a record this province owns it is stored under the record's
   * lock with the intent to report it, and reported before the call returns: reportedToHub
   * false means the hub did not answer, the dose is kept here and reported as soon as it does
   * (until then it is only as safe as this province's database: a restore from an older
   * backup loses it). Otherwise (not held here, or suspended by a migration a moment ago) it is
   * reported to the hub, which routes it to the owner.
   */
  async recordDose(identity: Identity, dose: Dose): Promise<{ reportedToHub: boolean }> {
    const request = create(ReportDoseRequestSchema, { identity, dose, heldByReporter: true });
    const held = await this.intents.storeOwnDose(
      identity,
      dose,
      toBinary(ReportDoseRequestSchema, request),
    );
    if (held !== undefined) {
      const report = await this.reportOf(held, dose.doseId);
      // No report: the dose came from the hub (a directive, a repair); DONE: reported before.
      if (!report || report.state === "DONE") return { reportedToHub: true };
      if (report.state === "REFUSED") throw keptHere(report.last_error ?? "refused");
      try {
        await this.completeDoseReport(report);
        return { reportedToHub: true };
      } catch (err) {
        if (err instanceof HubUnanswered) {
          this.wake();
          return { reportedToHub: false };
        }
        const e = ConnectError.from(err);
        throw keptHere(`${Code[e.code]}: ${e.rawMessage}`, e.code);
      }
    }
    await this.hub.doses.reportDose({ identity, dose, heldByReporter: false });
    return { reportedToHub: true };
  }

  /** Closes a record this province owns: its doses reach the hub first, then the hub closes it. */
  async close(recordId: string, reason: CloseReason): Promise<void> {
    const request = create(CloseRecordRequestSchema, { recordId, reason });
    const intent = await this.intents.beginClose(
      recordId,
      toBinary(CloseRecordRequestSchema, request),
    );
    await this.completeClose(intent);
  }

  /**
   * Replaces a record's certificate (a lost phone, a compromised number): the hub decides, then
   * the old one is revoked here naming the new one. Returns both numbers.
   */
  async reissue(
    recordId: string,
    reason: string,
  ): Promise<{ certificateNumber: string; replaced: string }> {
    const intent = await this.intents.beginReissue(recordId, (id: string) =>
      toBinary(
        ReissueCertificateRequestSchema,
        create(ReissueCertificateRequestSchema, {
          idempotencyKey: `reissue-${id}`,
          recordId,
          certificateNumber: this.store.newCertificateNumber(),
          reason,
        }),
      ),
    );
    return this.completeReissue(intent);
  }

  /** The latest report of a dose stored on a record here, in any state, if any. */
  private async reportOf(recordId: string, doseId: string) {
    for (const intent of await this.intents.doseReports(recordId)) {
      if (fromBinary(ReportDoseRequestSchema, intent.request).dose?.doseId === doseId)
        return intent;
    }
    return undefined;
  }

  /** Completes one intent; throws what the hub answered (HubUnanswered when it did not). */
  drive(intent: Intent): Promise<unknown> {
    switch (intent.kind) {
      case "register":
        return this.completeRegistration(intent);
      case "migrate":
        return this.completeMigration(intent);
      case "close":
        return this.completeClose(intent);
      case "report-dose":
        return this.completeDoseReport(intent);
      case "reissue":
        return this.completeReissue(intent);
    }
  }

  private async completeRegistration(intent: Intent) {
    const req = fromBinary(RegisterRecordRequestSchema, intent.request);
    const res = await this.call(intent, "the registration", () =>
      this.hub.records.registerRecord(req),
    );
    if (!req.identity) throw new Error(`registration intent ${intent.id} has no identity`);
    if (res.linked) {
      await this.intents.completeLink(intent.id, res.recordId, req.identity, req.doses);
      return {
        recordId: res.recordId,
        certificateNumber: res.certificate?.certificateNumber ?? "",
      };
    }
    // The hub linked the known_as documents to the new person: its identity is the one they
    // give (a resident ID named as known_as becomes it), and so is the record's here.
    const identity = req.knownAs.reduce(
      (held, next) =>
        held.idType === IdType.RESIDENT_ID && next.idType !== IdType.RESIDENT_ID ? held : next,
      req.identity,
    );
    await this.intents.completeRegistration(intent.id, res.recordId, identity, req.doses, {
      number: req.certificateNumber,
      recordId: res.recordId,
      status: "NORMAL",
      owner: this.store.code,
      hubVersion: 1,
      cause: "registered",
    });
    return { recordId: res.recordId, certificateNumber: req.certificateNumber };
  }

  private async completeMigration(intent: Intent): Promise<string> {
    const req = fromBinary(RequestMigrationRequestSchema, intent.request);
    const res = await this.call(intent, "the migration request", () =>
      this.hub.migrations.requestMigration(req),
    );
    await this.intents.done(intent.id);
    return res.migration?.migrationId ?? "";
  }

  private async completeClose(intent: Intent): Promise<void> {
    const req = fromBinary(CloseRecordRequestSchema, intent.request);
    // Doses stored here before the closure reach the hub first: it refuses them once closed.
    for (const report of await this.intents.pending(1000, req.recordId)) {
      if (report.kind === "report-dose") await this.completeDoseReport(report);
    }
    await this.call(intent, "the closure", () => this.hub.records.closeRecord(req));
    await this.intents.completeClose(
      intent.id,
      req.recordId,
      CloseReason[req.reason] ?? "UNSPECIFIED",
    );
  }

  private async completeReissue(
    intent: Intent,
  ): Promise<{ certificateNumber: string; replaced: string }> {
    const req = fromBinary(ReissueCertificateRequestSchema, intent.request);
    const res = await this.call(intent, "the reissue", () =>
      this.hub.records.reissueCertificate(req),
    );
    const replaced = res.replaced?.certificateNumber ?? "";
    await this.intents.completeReissue(intent.id, replaced, {
      number: req.certificateNumber,
      recordId: req.recordId,
      status: "NORMAL",
      owner: this.store.code,
      hubVersion: 0,
      cause: `reissued: ${req.reason}`,
    });
    return { certificateNumber: req.certificateNumber, replaced };
  }

  private async completeDoseReport(intent: Intent): Promise<void> {
    const req = fromBinary(ReportDoseRequestSchema, intent.request);
    await this.call(intent, "the dose report", () => this.hub.doses.reportDose(req));
    await this.intents.done(intent.id);
  }

  /** One hub call of an intent: a final refusal ends it; anything else keeps it pending. */
  private async call<T>(intent: Intent, what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const e = ConnectError.from(err);
      if (FINAL.has(e.code)) {
        await this.intents.refused(intent.id, `${Code[e.code]}: ${e.rawMessage}`);
        this.log.warn(
          { intent: intent.id, kind: intent.kind, code: Code[e.code], detail: e.rawMessage },
          "the hub refused an intent",
        );
        throw e;
      }
      await this.intents
        .failed(intent.id, `${Code[e.code]}: ${e.rawMessage}`)
        .catch(() => undefined);
      throw new HubUnanswered(what, e);
    }
  }

  /** Drives every pending intent once, oldest first; returns how many were completed. */
  async flush(): Promise<number> {
    let done = 0;
    for (const intent of await this.intents.pending(500)) {
      try {
        await this.drive(intent);
        done += 1;
      } catch (err) {
        if (err instanceof HubUnanswered) throw err;
        // Refused: recorded on the intent; the next one goes on.
      }
    }
    return done;
  }

  wake(): void {
    this.loop.wake();
  }

  /** Completes pending intents now (a restart's leftovers) and then whenever woken or due. */
  start(): void {
    this.loop.start();
  }

  async stop(): Promise<void> {
    await this.loop.stop();
  }
}
