import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type AuditService,
  EventSchema,
  GetPersonHistoryResponseSchema,
  GetPersonStateAsOfResponseSchema,
  ListPersonReadsResponseSchema,
  PersonReadSchema,
  PersonStateSchema,
  VerifyLogResponseSchema,
} from "@evc-interop/gen/evc/national/v1/audit_service_pb";
import { sealAll, verifyChain } from "../chain/chain.js";
import { doseFromJson, recordStatusToProto } from "../domain/codec.js";
import { evolve } from "../domain/person.js";
import { type HubEvent, initialState, type PersonState } from "../domain/types.js";
import { PersonReads } from "../store/access-log.js";
import { openIdentities } from "../store/identity-seal.js";
import type { EventRow } from "../store/queries.js";
import {
  certificateMessage,
  type HubDeps,
  keyOf,
  logRead,
  notViewer,
  principalOf,
} from "./context.js";
import { denied, invalid } from "./errors.js";

/**
 * Need to know: a province reads a person's history only while it owns the current record, or
 * while it takes the record over through a migration whose source has already suspended it
 * (the activation carries the record to it anyway). Requesting and cancelling a migration
 * discloses nothing; a past owner no longer reads; a person unknown to the hub is refused alike.
 */
function mayRead(state: PersonState, province: string): boolean {
  const current = state.currentRecordId ? state.records[state.currentRecordId] : undefined;
  if (current?.owner === province) return true;
  const open = state.openMigrationId ? state.migrations[state.openMigrationId] : undefined;
  return open?.target === province && open.state === "SOURCE_SUSPENDED";
}

/** Operators audit anyone; a province only what it needs to know (mayRead). */
async function authorize(deps: HubDeps, ctx: HandlerContext, key: string): Promise<void> {
  const p = notViewer(ctx, "a person's history");
  if (p.kind === "operator") return;
  const state = await deps.store.load(key);
  if (!mayRead(state, p.code))
    throw denied(`province ${p.code} does not manage this person's record now`, "identity");
}

function streamEvents(deps: HubDeps, key: string, asOf?: Date): Promise<EventRow[]> {
  return deps.queries.events(key, asOf);
}

export function auditService(deps: HubDeps): ServiceImpl<typeof AuditService> {
  return {
    async getPersonHistory(req, ctx) {
      const key = await keyOf(deps, req.identity);
      await authorize(deps, ctx, key);
      await logRead(deps, ctx, key);
      const rows = await streamEvents(deps, key);
      return create(GetPersonHistoryResponseSchema, {
        streamId: key,
        events: rows.map((r) =>
          create(EventSchema, {
            position: BigInt(r.position),
            eventId: r.event_id,
            streamId: r.stream_id,
            streamVersion: BigInt(r.stream_version),
            type: r.type,
            // A shredded identity shows as erased; the stored bytes (and hash) are unchanged.
            data: openIdentities(r.data, r.dek, r.stream_id, { erased: true }) as JsonObject,
            recordedAt: timestampFromDate(r.recorded_at),
            hash: r.hash ? r.hash.toString("hex") : "",
          }),
        ),
      });
    },

    async getPersonStateAsOf(req, ctx) {
      const key = await keyOf(deps, req.identity);
      if (!req.asOf) throw invalid("as_of", "is required");
      await authorize(deps, ctx, key);
      await logRead(deps, ctx, key);
      const rows = await streamEvents(deps, key, timestampDate(req.asOf));
      let state = initialState();
      for (const r of rows) {
        const data = openIdentities(r.data, r.dek, r.stream_id);
        state = evolve(state, { type: r.type, data } as unknown as HubEvent, {
          version: r.stream_version,
          position: r.position,
        });
      }
      const record = state.currentRecordId ? state.records[state.currentRecordId] : undefined;
      if (!record) return create(GetPersonStateAsOfResponseSchema, {});
      const cert = state.certificates[record.certificateNumber];
      return create(GetPersonStateAsOfResponseSchema, {
        state: create(PersonStateSchema, {
          recordId: record.recordId,
          ownerProvinceCode: record.owner,
          recordStatus: recordStatusToProto[record.status],
          certificate: cert ? certificateMessage(cert) : undefined,
          doses: record.doses.map(doseFromJson),
          openMigrationId: state.openMigrationId ?? "",
          version: BigInt(state.version),
        }),
      });
    },

    async listPersonReads(req, ctx) {
      if (principalOf(ctx).kind !== "operator")
        throw denied("the access log is for national operators");
      const limit = req.pageSize || 100;
      const rows = await new PersonReads(deps.sql).list({
        personKey: req.identity ? await keyOf(deps, req.identity) : "",
        caller: req.caller,
        limit,
        before: req.beforePosition,
      });
      const last = rows.at(-1);
      return create(ListPersonReadsResponseSchema, {
        reads: rows.map((r) =>
          create(PersonReadSchema, {
            position: BigInt(r.position),
            readAt: timestampFromDate(r.read_at),
            caller: r.caller,
            streamId: r.person_key,
            purpose: r.purpose,
            method: r.method,
          }),
        ),
        nextPosition: rows.length === limit && last ? BigInt(last.position) : 0n,
      });
    },

    async verifyLog(req, ctx) {
      const p = principalOf(ctx);
      if (p.kind !== "operator") throw denied("log verification is for national operators");
      await sealAll(deps.sql);
      const r = await verifyChain(deps.sql, Number(req.fromPosition), Number(req.toPosition));
      return create(VerifyLogResponseSchema, {
        ok: r.ok,
        eventsVerified: BigInt(r.eventsVerified),
        firstBrokenPosition: BigInt(r.firstBrokenPosition),
        lastPosition: BigInt(r.lastPosition),
      });
    },
  };
}
