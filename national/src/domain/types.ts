/**
 * The hub's business vocabulary as plain JSON-safe data: what events carry and what a person's
 * state holds. Protobuf messages cross this boundary in their canonical JSON form (DoseJson,
 * IdentityJson) so events stay readable in the log and stable across code versions.
 */

/** A dose in the canonical protobuf JSON form of evc.common.v1.Dose. */
export interface DoseJson {
  doseId: string;
  vaccineCode: string;
  doseNumber: number;
  administeredAt: string;
  administeredProvinceCode: string;
  siteCode?: string;
  lotNumber?: string;
}

/** An identity in the canonical protobuf JSON form of evc.common.v1.Identity. */
export interface IdentityJson {
  idType: string;
  idNumber: string;
  name: string;
  birthDate: string;
  sex: string;
}

export type RecordStatus = "ACTIVE" | "MIGRATED_OUT" | "CLOSED";
export type CertificateStatus = "NORMAL" | "SUSPENDED" | "REVOKED";
export type CloseReason = "DELETED" | "MERGED" | "DECEASED" | "MIGRATION_ABORTED" | "REISSUED";
export type MigrationState =
  | "REQUESTED"
  | "SOURCE_SUSPENDED"
  | "COMPLETED"
  | "REJECTED"
  | "CANCELLED"
  | "COMPENSATED"
  | "COMPENSATING"
  | "NEEDS_OPERATOR";

/** Migration states that hold the person's lock (one open migration per person). */
export const OPEN_MIGRATION_STATES: readonly MigrationState[] = [
  "REQUESTED",
  "SOURCE_SUSPENDED",
  "COMPENSATING",
  "NEEDS_OPERATOR",
];

/** Migration states that end it (the lock released). */
export const ENDED_MIGRATION_STATES: readonly MigrationState[] = [
  "COMPLETED",
  "REJECTED",
  "CANCELLED",
  "COMPENSATED",
];

/**
 * Directive actions that are steps of a migration's saga (it waits for their receipts); once the
 * migration ended, the hub no longer republishes those still unanswered (they are superseded).
 */
export const SAGA_STEP_ACTIONS: readonly DirectiveAction["kind"][] = [
  "suspendForMigration",
  "activateMigratedRecord",
  "revokeCertificate",
];

/** A directive decided by the hub, as recorded in the event that caused it. */
export interface DirectiveIntent {
  directiveId: string;
  province: string;
  recordId: string;
  recordSequence: number;
  attempt: number;
  correlationId: string;
  /** The migration whose saga this directive belongs to, if any (the saga awaits its receipt). */
  migrationId?: string;
  action: DirectiveAction;
}

export type DirectiveAction =
  | { kind: "suspendForMigration"; migrationId: string; targetProvince: string }
  | {
      kind: "activateMigratedRecord";
      migrationId: string;
      sourceProvince: string;
      identity: IdentityJson;
      doses: DoseJson[];
    }
  | { kind: "appendDose"; dose: DoseJson }
  | { kind: "restoreRecord"; migrationId: string; doses: DoseJson[] }
  | { kind: "revokeCertificate"; reason: CloseReason; mergedIntoRecordId?: string };

/** Every event of a person's stream. `at` is the hub clock when it was decided. */
export type HubEvent =
  | {
      type: "RecordRegistered";
      data: {
        recordId: string;
        owner: string;
        identity: IdentityJson;
        certificateNumber: string;
        doses: DoseJson[];
        at: string;
        /** Loaded from what the province held before the hub existed (OnboardingService). */
        onboarded?: true;
      };
    }
  | {
      type: "RecordClosed";
      data: {
        recordId: string;
        reason: CloseReason;
        mergedIntoRecordId?: string;
        at: string;
        /** The province that closed it (absent in events before closure everywhere: the owner). */
        by?: string;
        /** The record's other certificates revoked with it: suspended copies at former owners. */
        revoked?: string[];
        /** Revokes sent to every other province that holds, or may hold, a copy. */
        directives?: DirectiveIntent[];
        /** The open migration the closure ended (a death or deletion during a migration). */
        endedMigrationId?: string;
      };
    }
  | {
      type: "MigrationRequested";
      data: {
        migrationId: string;
        recordId: string;
        source: string;
        target: string;
        identity: IdentityJson;
        deadline: string;
        directive: DirectiveIntent;
        at: string;
      };
    }
  | {
      type: "SourceSuspended";
      data: {
        migrationId: string;
        sourceDoses: DoseJson[];
        deadline: string;
        directive: DirectiveIntent;
        at: string;
      };
    }
  | {
      type: "MigrationCompleted";
      data: {
        migrationId: string;
        certificateNumber: string;
        at: string;
        /** The operator who forced it (OperatorService.ForceCompleteMigration), and why. */
        by?: string;
        reason?: string;
      };
    }
  | {
      type: "MigrationRejected";
      data: {
        migrationId: string;
        reason: string;
        at: string;
        /**
         * Doses reported while the migration waited for the source (held by it) go to the
         * source, which keeps the record: a restore carrying them (absent in events before).
         */
        directive?: DirectiveIntent;
      };
    }
  | {
      type: "MigrationCancelled";
      data: { migrationId: string; reason: string; directive: DirectiveIntent; at: string };
    }
  | {
      type: "MigrationCompensationStarted";
      data: {
        migrationId: string;
        reason: string;
        attempt: number;
        deadline: string;
        directive: DirectiveIntent;
        at: string;
      };
    }
  | {
      /** The target did not answer the revoke in time: it is sent again, with a later deadline. */
      type: "CompensationRetried";
      data: { migrationId: string; round: number; deadline: string; at: string };
    }
  | {
      /** The revoke went unanswered every round: the hub alarms and waits for an operator. */
      type: "MigrationNeedsOperator";
      data: { migrationId: string; reason: string; at: string };
    }
  | {
      type: "MigrationCompensated";
      data: {
        migrationId: string;
        reason: string;
        directive: DirectiveIntent;
        at: string;
        /** The operator who forced it (OperatorService.ForceAbortMigration), if one did. */
        by?: string;
      };
    }
  | {
      type: "DoseReported";
      data: {
        dose: DoseJson;
        reportedBy: string;
        recordId: string;
        /** Where the dose was routed; absent when it is held for an open migration. */
        directive?: DirectiveIntent;
        at: string;
      };
    }
  | {
      /** An operator sent a dead-lettered directive again (OperatorService.RedriveDirective). */
      type: "DirectiveRedriven";
      data: { directiveId: string; province: string; by: string; reason: string; at: string };
    }
  | {
      /** An operator settled a directive another way (OperatorService.SupersedeDirective). */
      type: "DirectiveSuperseded";
      data: { directiveId: string; province: string; by: string; reason: string; at: string };
    }
  | {
      /**
       * The record's certificate replaced in one step (a lost phone, a compromised number): the
       * old number REVOKED (REISSUED, naming the new one), the new one NORMAL.
       */
      type: "CertificateReissued";
      data: {
        recordId: string;
        replaced: string;
        certificateNumber: string;
        reason: string;
        by: string;
        at: string;
      };
    }
  | {
      /**
       * Another identity document of the person (the resident ID after the birth medical
       * certificate): lookups under it reach this person. The identity (sealed in the log) is
       * the new document with the person's fields; documentKey is its keyed hash.
       */
      type: "DocumentLinked";
      data: { identity: IdentityJson; documentKey: string; by: string; at: string };
    }
  | {
      /** The person's identity was crypto-shredded (their data key deleted) by an operator. */
      type: "IdentityErased";
      data: { by: string; reason: string; at: string };
    };

export type HubEventType = HubEvent["type"];

/** One certificate as the hub tracks it. */
export interface CertificateState {
  number: string;
  recordId: string;
  province: string;
  status: CertificateStatus;
  revocationReason?: CloseReason;
  /** The certificate that replaced it (revocationReason REISSUED). */
  replacedBy?: string;
  issuedAt: string;
  statusChangedAt: string;
  /** Stream version of the last change. */
  version: number;
  /** Global event position of the last change. */
  position: number;
}

/** One record as the hub tracks it. */
export interface RecordState {
  recordId: string;
  owner: string;
  status: RecordStatus;
  certificateNumber: string;
  doses: DoseJson[];
  /** The province that closed it, when it is CLOSED (the owner, or an open migration's target). */
  closedBy?: string;
  version: number;
  position: number;
}

/** One migration as the hub tracks it. */
export interface MigrationStateData {
  migrationId: string;
  recordId: string;
  source: string;
  target: string;
  state: MigrationState;
  attempt: number;
  requestedAt: string;
  updatedAt: string;
  deadline: string;
  sourceCertificateNumber: string;
  targetCertificateNumber?: string;
  endReason?: string;
  /** The directive whose receipt the saga waits for. */
  awaitingDirectiveId?: string;
  /** Times the compensation's revoke was re-driven after its deadline. */
  compensationRounds?: number;
  /** Doses reported while the migration was open and not yet sent anywhere. */
  heldDoses: DoseJson[];
  /** Stream version of the last change. */
  version: number;
}

/** Everything the hub knows about one person: the fold of their event stream. */
export interface PersonState {
  version: number;
  identity?: IdentityJson;
  records: Record<string, RecordState>;
  /** The record that is not CLOSED, if any (I1: at most one). */
  currentRecordId?: string;
  certificates: Record<string, CertificateState>;
  migrations: Record<string, MigrationStateData>;
  openMigrationId?: string;
  /** Last directive sequence per `${recordId}|${province}`. */
  sequences: Record<string, number>;
  /** Keys of the identity documents linked to the person after the first (DocumentLinked). */
  linkedDocuments?: string[];
}

export function initialState(): PersonState {
  return { version: 0, records: {}, certificates: {}, migrations: {}, sequences: {} };
}

/** Injected dependencies of deciders: no I/O, deterministic under test. */
export interface DecideContext {
  now: Date;
  newId: () => string;
  deadlines: {
    suspendMs: number;
    activateMs: number;
    compensateMs: number;
    /** Re-drives of an unanswered compensation revoke before NEEDS_OPERATOR (waits double). */
    compensateRounds: number;
  };
}
