import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  CancelMigrationResponseSchema,
  GetMigrationResponseSchema,
  ListMigrationsResponseSchema,
  type Migration,
  MigrationSchema,
  type MigrationService,
  MigrationState,
  ReportCertificateIssuedResponseSchema,
  RequestMigrationRequestSchema,
  RequestMigrationResponseSchema,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { identityToJson } from "../domain/codec.js";
import type { MigrationStateData, PersonState } from "../domain/types.js";
import type { MigrationRow } from "../store/queries.js";
import {
  callerProvince,
  type HubDeps,
  keyOf,
  migrationMessage,
  principalOf,
  refuseOthersCertificate,
} from "./context.js";
import { denied, invalid, refusalError } from "./errors.js";
import { decodePageToken, encodePageToken } from "./page-token.js";
import { codecOf, requestHash } from "./util.js";

/** The person (stream) a migration belongs to; NotFound naming migration_id if none. */
export async function personOfMigration(deps: HubDeps, migrationId: string): Promise<string> {
  const key = await deps.queries.personOfMigration(migrationId);
  if (!key) {
    throw refusalError("not_found", "NOT_FOUND", `no migration ${migrationId}`, {
      field: "migration_id",
      migrationId,
    });
  }
  return key;
}

export function migrationIn(state: PersonState, id: string): MigrationStateData {
  const m = state.migrations[id];
  if (!m)
    throw refusalError("not_found", "NOT_FOUND", `no migration ${id}`, { field: "migration_id" });
  return m;
}

/** Source, target, an operator or a viewer may read a migration (I7; it names no person). */
function mayRead(ctx: HandlerContext, m: MigrationStateData): void {
  const p = principalOf(ctx);
  if (p.kind === "operator" || p.kind === "viewer") return;
  if (p.code !== m.source && p.code !== m.target) {
    throw denied(`migration ${m.migrationId} does not involve province ${p.code}`, "migration_id");
  }
}

const PAGE_DEFAULT = 100;

/** A migration as the projection holds it (the same fields migrationMessage gives). */
function migrationFromRow(r: MigrationRow): Migration {
  return create(MigrationSchema, {
    migrationId: r.migration_id,
    state: MigrationState[r.state as keyof typeof MigrationState],
    recordId: r.record_id,
    sourceProvinceCode: r.source_province,
    targetProvinceCode: r.target_province,
    attempt: r.attempt,
    requestedAt: timestampFromDate(r.requested_at),
    updatedAt: timestampFromDate(r.updated_at),
    stepDeadline: timestampFromDate(r.deadline),
    sourceCertificateNumber: r.source_certificate_number,
    targetCertificateNumber: r.target_certificate_number ?? "",
    endReason: r.end_reason ?? "",
  });
}

export function migrationService(deps: HubDeps): ServiceImpl<typeof MigrationService> {
  return {
    async requestMigration(req, ctx) {
      const caller = callerProvince(ctx);
      const key = await keyOf(deps, req.identity);
      if (!req.identity) throw invalid("identity", "is required");
      const { response } = await deps.store.execute(
        key,
        { kind: "requestMigration", caller, identity: identityToJson(req.identity) },
        (state, events) => {
          const started = events.find((e) => e.type === "MigrationRequested");
          const id = started?.type === "MigrationRequested" ? started.data.migrationId : "";
          return create(RequestMigrationResponseSchema, {
            migration: migrationMessage(migrationIn(state, id)),
          });
        },
        {
          idempotency: {
            province: caller,
            key: req.idempotencyKey,
            requestHash: requestHash(RequestMigrationRequestSchema, req),
          },
          ...codecOf(RequestMigrationResponseSchema),
        },
      );
      return response;
    },

    async getMigration(req, ctx) {
      const state = await deps.store.load(await personOfMigration(deps, req.migrationId));
      const m = migrationIn(state, req.migrationId);
      mayRead(ctx, m);
      return create(GetMigrationResponseSchema, { migration: migrationMessage(m) });
    },

    async listMigrations(req, ctx) {
      const p = principalOf(ctx);
      const size = req.pageSize || PAGE_DEFAULT;
      const { at: before, id: beforeId } = req.pageToken
        ? decodePageToken(req.pageToken)
        : { at: new Date("9999-12-31T00:00:00Z"), id: "ffffffff-ffff-ffff-ffff-ffffffffffff" };
      const state = req.state ? MigrationState[req.state] : null;
      if (p.kind === "province" && req.provinceCode && req.provinceCode !== p.code) {
        throw denied(`province ${p.code} may only list its own migrations`, "province_code");
      }
      const province = p.kind === "province" ? p.code : req.provinceCode || null;
      const rows = await deps.queries.migrations({
        province,
        state,
        updatedBefore: req.updatedBefore ? timestampDate(req.updatedBefore) : null,
        before: { at: before, id: beforeId },
        limit: size + 1,
      });
      const page = rows.slice(0, size);
      const last = page.at(-1);
      return create(ListMigrationsResponseSchema, {
        migrations: page.map(migrationFromRow),
        nextPageToken:
          rows.length > size && last
            ? encodePageToken({ at: last.requested_at, id: last.migration_id })
            : "",
      });
    },

    async cancelMigration(req, ctx) {
      const caller = callerProvince(ctx);
      const key = await personOfMigration(deps, req.migrationId);
      const { response } = await deps.store.execute(
        key,
        { kind: "cancelMigration", caller, migrationId: req.migrationId, reason: req.reason },
        (state) =>
          create(CancelMigrationResponseSchema, {
            migration: migrationMessage(migrationIn(state, req.migrationId)),
          }),
      );
      return response;
    },

    async reportCertificateIssued(req, ctx) {
      const caller = callerProvince(ctx);
      if (!req.certificateNumber.startsWith(`${caller}-`)) {
        throw invalid(
          "certificate_number",
          `must start with the caller's province code ${caller}-`,
        );
      }
      const key = await personOfMigration(deps, req.migrationId);
      const before = await deps.store.load(key);
      const m = migrationIn(before, req.migrationId);
      if (m.target !== caller) {
        throw denied(
          `only the target province ${m.target} may report this issuance`,
          "migration_id",
        );
      }
      if (m.state === "COMPLETED" && m.targetCertificateNumber === req.certificateNumber) {
        return create(ReportCertificateIssuedResponseSchema, { migration: migrationMessage(m) });
      }
      await refuseOthersCertificate(deps, req.certificateNumber, key, "certificate_number");
      const { response } = await deps.store.execute(
        key,
        {
          kind: "reportIssued",
          caller,
          migrationId: req.migrationId,
          attempt: req.attempt,
          certificateNumber: req.certificateNumber,
        },
        (state) =>
          create(ReportCertificateIssuedResponseSchema, {
            migration: migrationMessage(migrationIn(state, req.migrationId)),
          }),
      );
      return response;
    },
  };
}
