import type {
  CertificateState,
  DirectiveIntent,
  DoseJson,
  HubEvent,
  IdentityJson,
  MigrationStateData,
  PersonState,
  RecordState,
} from "./types.js";
import { OPEN_MIGRATION_STATES } from "./types.js";

/** Where an event sits in the log: its stream version and global position. */
export interface EventMeta {
  version: number;
  position: number;
}

/** Merges doses by dose id, keeping the first occurrence, ordered by administration time. */
export function mergeDoses(...lists: readonly DoseJson[][]): DoseJson[] {
  const byId = new Map<string, DoseJson>();
  for (const list of lists) for (const d of list) if (!byId.has(d.doseId)) byId.set(d.doseId, d);
  return [...byId.values()].sort(
    (a, b) => a.administeredAt.localeCompare(b.administeredAt) || a.doseId.localeCompare(b.doseId),
  );
}

/**
 * The person's identity once another document is linked: the newest (migrations carry it),
 * except that a resident ID is not replaced by a lesser document linked after it.
 */
export function preferredIdentity(
  held: IdentityJson | undefined,
  linked: IdentityJson,
): IdentityJson {
  return held?.idType === "ID_TYPE_RESIDENT_ID" && linked.idType !== held.idType ? held : linked;
}

/** Dose ids the hub knows for this person, on any record or held by a migration. */
export function knownDoseIds(state: PersonState): Set<string> {
  const ids = new Set<string>();
  for (const r of Object.values(state.records)) for (const d of r.doses) ids.add(d.doseId);
  for (const m of Object.values(state.migrations)) for (const d of m.heldDoses) ids.add(d.doseId);
  return ids;
}

export function sequenceKey(recordId: string, province: string): string {
  return `${recordId}|${province}`;
}

/** The directives an event emits (what the outbox must carry). */
export function directivesOf(event: HubEvent): DirectiveIntent[] {
  switch (event.type) {
    case "MigrationRequested":
    case "SourceSuspended":
    case "MigrationCancelled":
    case "MigrationCompensationStarted":
    case "MigrationCompensated":
      return [event.data.directive];
    case "DoseReported":
    case "MigrationRejected":
      return event.data.directive ? [event.data.directive] : [];
    case "RecordClosed":
      return event.data.directives ?? [];
    default:
      return [];
  }
}

/**
 * A copy of an id-keyed map with one entry set. The copy has no prototype, so V8 keeps it as a
 * hash table: an object literal with a key never seen before (every person's record id,
 * certificate number, migration id) would get a hidden class of its own, and a million persons
 * meant a million of them for the garbage collector (a tenth of the rebuild's CPU). Entries keep
 * their order, as a spread would.
 */
function withEntry<T>(map: Record<string, T>, key: string, value: T): Record<string, T> {
  const out: Record<string, T> = Object.create(null);
  for (const k in map) out[k] = map[k] as T;
  out[key] = value;
  return out;
}

function withRecord(state: PersonState, record: RecordState): PersonState {
  return { ...state, records: withEntry(state.records, record.recordId, record) };
}

function withCertificate(state: PersonState, cert: CertificateState): PersonState {
  return { ...state, certificates: withEntry(state.certificates, cert.number, cert) };
}

function withMigration(state: PersonState, m: MigrationStateData): PersonState {
  const open = OPEN_MIGRATION_STATES.includes(m.state);
  return {
    ...state,
    migrations: withEntry(state.migrations, m.migrationId, { ...m, version: state.version }),
    openMigrationId: open
      ? m.migrationId
      : state.openMigrationId === m.migrationId
        ? undefined
        : state.openMigrationId,
  };
}

function noteDirective(state: PersonState, d: DirectiveIntent): PersonState {
  const key = sequenceKey(d.recordId, d.province);
  return {
    ...state,
    sequences: withEntry(
      state.sequences,
      key,
      Math.max(state.sequences[key] ?? 0, d.recordSequence),
    ),
  };
}

function setCertStatus(
  state: PersonState,
  number: string,
  status: CertificateState["status"],
  at: string,
  meta: EventMeta,
  revocationReason?: CertificateState["revocationReason"],
): PersonState {
  const cert = state.certificates[number];
  if (!cert) return state;
  const next: CertificateState = {
    ...cert,
    status,
    statusChangedAt: at,
    version: meta.version,
    position: meta.position,
  };
  if (revocationReason) next.revocationReason = revocationReason;
  else delete next.revocationReason;
  return withCertificate(state, next);
}

function mustMigration(state: PersonState, id: string): MigrationStateData {
  const m = state.migrations[id];
  if (!m) throw new Error(`event refers to unknown migration ${id}`);
  return m;
}

function mustRecord(state: PersonState, id: string): RecordState {
  const r = state.records[id];
  if (!r) throw new Error(`event refers to unknown record ${id}`);
  return r;
}

/**
 * Folds one event into the person's state. Pure: replaying a stream from initialState()
 * reproduces the live state exactly (I5).
 */
export function evolve(state: PersonState, event: HubEvent, meta: EventMeta): PersonState {
  let s: PersonState = { ...state, version: meta.version };
  switch (event.type) {
    case "IdentityErased": {
      const { identity: _erased, ...rest } = s;
      return rest;
    }
    case "CertificateReissued": {
      const d = event.data;
      const r = mustRecord(s, d.recordId);
      s = setCertStatus(s, d.replaced, "REVOKED", d.at, meta, "REISSUED");
      const old = s.certificates[d.replaced];
      if (old) s = withCertificate(s, { ...old, replacedBy: d.certificateNumber });
      s = withCertificate(s, {
        number: d.certificateNumber,
        recordId: d.recordId,
        province: r.owner,
        status: "NORMAL",
        issuedAt: d.at,
        statusChangedAt: d.at,
        version: meta.version,
        position: meta.position,
      });
      return withRecord(s, {
        ...r,
        certificateNumber: d.certificateNumber,
        version: meta.version,
        position: meta.position,
      });
    }
    case "DocumentLinked": {
      s.identity = preferredIdentity(s.identity, event.data.identity);
      s.linkedDocuments = [...(s.linkedDocuments ?? []), event.data.documentKey];
      return s;
    }
    case "DirectiveRedriven":
    case "DirectiveSuperseded":
      // The outbox row is re-armed or superseded by the store; the person's state moves on by a
      // version.
      return s;
    case "RecordRegistered": {
      const d = event.data;
      s.identity = d.identity;
      s = withRecord(s, {
        recordId: d.recordId,
        owner: d.owner,
        status: "ACTIVE",
        certificateNumber: d.certificateNumber,
        doses: mergeDoses(d.doses),
        version: meta.version,
        position: meta.position,
      });
      s = withCertificate(s, {
        number: d.certificateNumber,
        recordId: d.recordId,
        province: d.owner,
        status: "NORMAL",
        issuedAt: d.at,
        statusChangedAt: d.at,
        version: meta.version,
        position: meta.position,
      });
      s.currentRecordId = d.recordId;
      return s;
    }
    case "RecordClosed": {
      const d = event.data;
      const r = mustRecord(s, d.recordId);
      const ended = d.endedMigrationId ? mustMigration(s, d.endedMigrationId) : undefined;
      const closed: RecordState = {
        ...r,
        status: "CLOSED",
        // Doses held for the migration it ended stay with the record: none is lost.
        doses: ended ? mergeDoses(r.doses, ended.heldDoses) : r.doses,
        version: meta.version,
        position: meta.position,
      };
      if (d.by) closed.closedBy = d.by;
      s = withRecord(s, closed);
      for (const number of [r.certificateNumber, ...(d.revoked ?? [])])
        s = setCertStatus(s, number, "REVOKED", d.at, meta, d.reason);
      if (s.currentRecordId === d.recordId) s.currentRecordId = undefined;
      if (ended) {
        const { awaitingDirectiveId: _done, ...rest } = ended;
        s = withMigration(s, {
          ...rest,
          state: "CANCELLED",
          updatedAt: d.at,
          endReason: `the record was closed during the migration (${d.reason})`,
          heldDoses: [],
        });
      }
      for (const x of d.directives ?? []) s = noteDirective(s, x);
      return s;
    }
    case "MigrationRequested": {
      const d = event.data;
      const r = mustRecord(s, d.recordId);
      s = withMigration(s, {
        migrationId: d.migrationId,
        recordId: d.recordId,
        source: d.source,
        target: d.target,
        state: "REQUESTED",
        attempt: d.directive.attempt,
        requestedAt: d.at,
        updatedAt: d.at,
        deadline: d.deadline,
        sourceCertificateNumber: r.certificateNumber,
        awaitingDirectiveId: d.directive.directiveId,
        heldDoses: [],
        version: meta.version,
      });
      return noteDirective(s, d.directive);
    }
    case "SourceSuspended": {
      const d = event.data;
      const m = mustMigration(s, d.migrationId);
      const r = mustRecord(s, m.recordId);
      const doses = mergeDoses(r.doses, d.sourceDoses, m.heldDoses);
      s = withRecord(s, {
        ...r,
        status: "MIGRATED_OUT",
        doses,
        version: meta.version,
        position: meta.position,
      });
      s = setCertStatus(s, m.sourceCertificateNumber, "SUSPENDED", d.at, meta);
      s = withMigration(s, {
        ...m,
        state: "SOURCE_SUSPENDED",
        updatedAt: d.at,
        deadline: d.deadline,
        awaitingDirectiveId: d.directive.directiveId,
        heldDoses: [],
      });
      return noteDirective(s, d.directive);
    }
    case "MigrationCompleted": {
      const d = event.data;
      const m = mustMigration(s, d.migrationId);
      const r = mustRecord(s, m.recordId);
      s = withRecord(s, {
        ...r,
        owner: m.target,
        status: "ACTIVE",
        certificateNumber: d.certificateNumber,
        version: meta.version,
        position: meta.position,
      });
      s = withCertificate(s, {
        number: d.certificateNumber,
        recordId: m.recordId,
        province: m.target,
        status: "NORMAL",
        issuedAt: d.at,
        statusChangedAt: d.at,
        version: meta.version,
        position: meta.position,
      });
      const { awaitingDirectiveId: _done, ...rest } = m;
      return withMigration(s, {
        ...rest,
        state: "COMPLETED",
        updatedAt: d.at,
        targetCertificateNumber: d.certificateNumber,
      });
    }
    case "MigrationRejected": {
      const d = event.data;
      const m = mustMigration(s, d.migrationId);
      const { awaitingDirectiveId: _done, ...rest } = m;
      // The source keeps the record: doses held for the target are the record's.
      const r = s.records[m.recordId];
      if (r && m.heldDoses.length > 0)
        s = withRecord(s, {
          ...r,
          doses: mergeDoses(r.doses, m.heldDoses),
          version: meta.version,
          position: meta.position,
        });
      if (d.directive) s = noteDirective(s, d.directive);
      return withMigration(s, {
        ...rest,
        heldDoses: [],
        state: "REJECTED",
        updatedAt: d.at,
        endReason: d.reason,
      });
    }
    case "MigrationCancelled":
    case "MigrationCompensated": {
      const d = event.data;
      const m = mustMigration(s, d.migrationId);
      const r = mustRecord(s, m.recordId);
      const restoredDoses =
        d.directive.action.kind === "restoreRecord" ? d.directive.action.doses : [];
      s = withRecord(s, {
        ...r,
        status: "ACTIVE",
        doses: mergeDoses(r.doses, restoredDoses),
        version: meta.version,
        position: meta.position,
      });
      s = setCertStatus(s, m.sourceCertificateNumber, "NORMAL", d.at, meta);
      const { awaitingDirectiveId: _done, ...rest } = m;
      s = withMigration(s, {
        ...rest,
        state: event.type === "MigrationCancelled" ? "CANCELLED" : "COMPENSATED",
        updatedAt: d.at,
        endReason: d.reason,
        heldDoses: [],
      });
      return noteDirective(s, d.directive);
    }
    case "MigrationCompensationStarted": {
      const d = event.data;
      const m = mustMigration(s, d.migrationId);
      s = withMigration(s, {
        ...m,
        state: "COMPENSATING",
        attempt: d.attempt,
        updatedAt: d.at,
        deadline: d.deadline,
        endReason: d.reason,
        awaitingDirectiveId: d.directive.directiveId,
      });
      return noteDirective(s, d.directive);
    }
    case "CompensationRetried": {
      const d = event.data;
      const m = mustMigration(s, d.migrationId);
      return withMigration(s, {
        ...m,
        compensationRounds: d.round,
        deadline: d.deadline,
        updatedAt: d.at,
      });
    }
    case "MigrationNeedsOperator": {
      const d = event.data;
      const m = mustMigration(s, d.migrationId);
      return withMigration(s, {
        ...m,
        state: "NEEDS_OPERATOR",
        updatedAt: d.at,
        endReason: d.reason,
      });
    }
    case "DoseReported": {
      const d = event.data;
      if (d.directive) {
        const r = mustRecord(s, d.recordId);
        s = withRecord(s, {
          ...r,
          doses: mergeDoses(r.doses, [d.dose]),
          version: meta.version,
          position: meta.position,
        });
        return noteDirective(s, d.directive);
      }
      const open = s.openMigrationId ? s.migrations[s.openMigrationId] : undefined;
      if (open)
        return withMigration(s, { ...open, heldDoses: mergeDoses(open.heldDoses, [d.dose]) });
      // The owner reported its own dose: the hub learns it, nothing to route.
      const r = mustRecord(s, d.recordId);
      return withRecord(s, {
        ...r,
        doses: mergeDoses(r.doses, [d.dose]),
        version: meta.version,
        position: meta.position,
      });
    }
  }
}
