import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext } from "@connectrpc/connect";
import type { Identity } from "@evc-interop/gen/evc/common/v1/identity_pb";
import { type Certificate, CertificateSchema } from "@evc-interop/gen/evc/common/v1/record_pb";
import {
  type Migration,
  MigrationSchema,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { type Principal, principalKey, purposeOf } from "@evc-interop/runtime";
import type { Sql } from "postgres";
import { certificateStatusToProto, closeReasonToProto, personKey } from "../domain/codec.js";
import type { CertificateState, MigrationStateData } from "../domain/types.js";
import type { HubMetrics } from "../metrics.js";
import { PersonReads } from "../store/access-log.js";
import type { HubStore } from "../store/hub-store.js";
import type { HubQueries } from "../store/queries.js";
import { denied, refusalError } from "./errors.js";

/** What every handler needs. */
export interface HubDeps {
  sql: Sql;
  store: HubStore;
  /** The read queries over the projections and the log. */
  queries: HubQueries;
  /** Secret of the person-key HMAC. */
  personKeySecret: string;
  /** See HubConfig.snapshotStallMs. */
  snapshotStallMs: number;
  metrics: HubMetrics;
}

/**
 * Records a read of a person's data in the hub's access log (who, whose, what for, which
 * method), before the answer leaves.
 */
export async function logRead(
  deps: HubDeps,
  ctx: HandlerContext,
  personKey: string,
): Promise<void> {
  await new PersonReads(deps.sql).record({
    caller: principalOf(ctx).subject,
    personKey,
    purpose: purposeOf(ctx.requestHeader, "unspecified"),
    method: `${ctx.service.typeName}/${ctx.method.name}`,
  });
}

export function principalOf(ctx: HandlerContext): Principal {
  const p = ctx.values.get(principalKey);
  if (!p) throw refusalError("permission_denied", "WRONG_PROVINCE", "no authenticated caller");
  return p;
}

/**
 * The caller, refused if a viewer: viewers watch migrations and directives and read no person's
 * data (identities, records, histories, snapshots) and take no action.
 */
export function notViewer(
  ctx: HandlerContext,
  what: string,
): Exclude<Principal, { kind: "viewer" }> {
  const p = principalOf(ctx);
  if (p.kind === "viewer")
    throw denied(`${what} is not for viewers (${p.subject}): it needs an operator`);
  return p;
}

/**
 * Refuses (AlreadyExists, naming `field`) a certificate number the hub already knows for another
 * person: its projection row would be written over with this person's certificate. Numbers are
 * the issuing province's to keep unique; this catches one that reuses a number (or an operator's
 * typo) before it corrupts another child's status. Two first uses racing each other are not
 * caught here.
 */
export async function refuseOthersCertificate(
  deps: HubDeps,
  certificateNumber: string,
  personKey: string,
  field: string,
): Promise<void> {
  await refuseOthersCertificates(deps, [{ certificateNumber, personKey, field }]);
}

/**
 * refuseOthersCertificate for many claims in one query (a batch of activation receipts): the
 * first claim, in order, on another person's number is refused.
 */
export async function refuseOthersCertificates(
  deps: HubDeps,
  claims: readonly { certificateNumber: string; personKey: string; field: string }[],
): Promise<void> {
  if (claims.length === 0) return;
  const rows = await deps.sql<{ certificate_number: string; person_key: string }[]>`
    SELECT certificate_number, person_key FROM certificates
    WHERE certificate_number = ANY(${claims.map((c) => c.certificateNumber)}::text[])`;
  const holder = new Map(rows.map((r) => [r.certificate_number, r.person_key]));
  for (const c of claims) {
    const held = holder.get(c.certificateNumber);
    if (held !== undefined && held !== c.personKey)
      throw refusalError(
        "already_exists",
        "INVALID_FIELD",
        `certificate ${c.certificateNumber} is another person's: each certificate number is issued once`,
        { field: c.field },
      );
  }
}

/** The calling province (operators are refused: the RPC acts for a province). */
export function callerProvince(ctx: HandlerContext): string {
  const p = principalOf(ctx);
  if (p.kind !== "province") throw denied("this RPC acts for a province; operators cannot call it");
  return p.code;
}

/**
 * The key of an identity document: a keyed hash of its type and number. A person's stream is
 * keyed by the key of the first document they were known by.
 */
export function documentKeyOf(
  deps: HubDeps,
  identity: Identity | undefined,
  field = "identity",
): string {
  if (!identity) throw refusalError("invalid_argument", "INVALID_FIELD", "is required", { field });
  return personKey(deps.personKeySecret, identity);
}

/** The persons identity documents belong to, by document key (those the hub knows). */
export async function linkedPersons(
  deps: HubDeps,
  documentKeys: string[],
): Promise<Map<string, string>> {
  const rows = await deps.sql<{ document_key: string; person_key: string }[]>`
    SELECT document_key, person_key FROM document_links
    WHERE document_key = ANY(${documentKeys}::text[])`;
  return new Map(rows.map((r) => [r.document_key, r.person_key]));
}

/**
 * The key of the person an identity document belongs to: a person is not a document, so every
 * lookup, duplicate check, lock and migration goes through the document's link (a resident ID
 * linked to the child first registered under the birth certificate reaches that child). A
 * document the hub does not know is keyed by itself (a person it would make).
 */
export async function keyOf(deps: HubDeps, identity: Identity | undefined): Promise<string> {
  const doc = documentKeyOf(deps, identity);
  return (await linkedPersons(deps, [doc])).get(doc) ?? doc;
}

export function certificateMessage(c: CertificateState): Certificate {
  return create(CertificateSchema, {
    certificateNumber: c.number,
    recordId: c.recordId,
    provinceCode: c.province,
    status: certificateStatusToProto[c.status],
    revocationReason: c.revocationReason ? closeReasonToProto[c.revocationReason] : 0,
    issuedAt: timestampFromDate(new Date(c.issuedAt)),
    statusChangedAt: timestampFromDate(new Date(c.statusChangedAt)),
    replacedBy: c.replacedBy ?? "",
  });
}

export function migrationMessage(m: MigrationStateData): Migration {
  return create(MigrationSchema, {
    migrationId: m.migrationId,
    state: MigrationState[m.state],
    recordId: m.recordId,
    sourceProvinceCode: m.source,
    targetProvinceCode: m.target,
    attempt: m.attempt,
    requestedAt: timestampFromDate(new Date(m.requestedAt)),
    updatedAt: timestampFromDate(new Date(m.updatedAt)),
    stepDeadline: timestampFromDate(new Date(m.deadline)),
    sourceCertificateNumber: m.sourceCertificateNumber,
    targetCertificateNumber: m.targetCertificateNumber ?? "",
    endReason: m.endReason ?? "",
  });
}
