import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  OnboardConflict,
  type OnboardingService,
  OnboardOutcome,
  type OnboardRecord,
  OnboardRecordsResponseSchema,
  type OnboardResult,
  OnboardResultSchema,
} from "@evc-interop/gen/evc/national/v1/onboarding_service_pb";
import { doseToJson, identityToJson } from "../domain/codec.js";
import { Refusal } from "../domain/errors.js";
import { callerProvince, documentKeyOf, type HubDeps, linkedPersons } from "./context.js";
import { invalid, toConnectError } from "./errors.js";

type Verdict = Omit<OnboardResult, "$typeName" | "$unknown">;

const conflict = (
  r: OnboardRecord,
  kind: OnboardConflict,
  detail: string,
  holder: { province?: string; recordId?: string } = {},
): Verdict => ({
  recordId: r.recordId,
  outcome: OnboardOutcome.CONFLICT,
  conflict: kind,
  holderProvinceCode: holder.province ?? "",
  holderRecordId: holder.recordId ?? "",
  detail,
});

/** A refusal of the onboarding decider, as the conflict it reports (others are errors). */
function conflictOf(r: OnboardRecord, err: unknown): Verdict {
  if (err instanceof Refusal) {
    if (err.reason === "RECORD_EXISTS")
      return conflict(r, OnboardConflict.PERSON_HELD, err.message, {
        ...(err.detail.ownerProvinceCode ? { province: err.detail.ownerProvinceCode } : {}),
        ...(err.detail.recordId ? { recordId: err.detail.recordId } : {}),
      });
    if (err.reason === "INVALID_STATE") return conflict(r, OnboardConflict.DECEASED, err.message);
    if (err.reason === "INVALID_FIELD")
      return conflict(r, OnboardConflict.NUMBER_IN_USE, err.message);
  }
  throw toConnectError(err);
}

/**
 * OnboardingService: a province's existing records loaded in batches (#28 story 4). The
 * batch's look-ups are one query each (document links, certificate numbers, record ids), its
 * registrations one transaction (HubStore.executeMany); a person the hub holds already is
 * reported, never assigned.
 */
export function onboardingService(deps: HubDeps): ServiceImpl<typeof OnboardingService> {
  return {
    async onboardRecords(req, ctx) {
      const caller = callerProvince(ctx);
      const seenIds = new Set<string>();
      req.records.forEach((r, i) => {
        if (seenIds.has(r.recordId)) throw invalid(`records[${i}].record_id`, "sent twice");
        seenIds.add(r.recordId);
        if (!r.certificateNumber.startsWith(`${caller}-`))
          throw invalid(
            `records[${i}].certificate_number`,
            `must start with the caller's province code ${caller}-`,
          );
      });
      const docs = req.records.map((r, i) =>
        documentKeyOf(deps, r.identity, `records[${i}].identity`),
      );
      const numbers = req.records.map((r) => r.certificateNumber);
      const ids = req.records.map((r) => r.recordId);
      const [links, certificates, records] = await Promise.all([
        linkedPersons(deps, docs),
        deps.sql<{ key: string; person_key: string }[]>`
          SELECT certificate_number AS key, person_key FROM certificates
          WHERE certificate_number = ANY(${numbers}::text[])`,
        deps.sql<{ key: string; person_key: string }[]>`
          SELECT record_id AS key, person_key FROM records WHERE record_id = ANY(${ids}::text[])`,
      ]);
      const numberOwner = new Map(certificates.map((c) => [c.key, c.person_key]));
      const recordOwner = new Map(records.map((c) => [c.key, c.person_key]));

      const verdicts: (Verdict | undefined)[] = new Array(req.records.length);
      const firstOf = new Map<string, OnboardRecord>();
      const numberIn = new Map<string, OnboardRecord>();
      const run: { i: number; personKey: string }[] = [];
      req.records.forEach((r, i) => {
        const doc = docs[i] as string;
        const personKey = links.get(doc) ?? doc;
        const first = firstOf.get(personKey);
        if (first) {
          verdicts[i] = conflict(
            r,
            OnboardConflict.SAME_PERSON_IN_BATCH,
            `the same person as record ${first.recordId} of this batch`,
            { province: caller, recordId: first.recordId },
          );
          return;
        }
        firstOf.set(personKey, r);
        const sameNumber = numberIn.get(r.certificateNumber);
        if (sameNumber) {
          verdicts[i] = conflict(
            r,
            OnboardConflict.NUMBER_IN_USE,
            `the same certificate number as record ${sameNumber.recordId} of this batch`,
            { recordId: sameNumber.recordId },
          );
          return;
        }
        numberIn.set(r.certificateNumber, r);
        const numberHeld = numberOwner.get(r.certificateNumber);
        const idHeld = recordOwner.get(r.recordId);
        if ((numberHeld && numberHeld !== personKey) || (idHeld && idHeld !== personKey)) {
          verdicts[i] = conflict(
            r,
            OnboardConflict.NUMBER_IN_USE,
            numberHeld && numberHeld !== personKey
              ? "the certificate number is another person's at the hub"
              : "the record id is another person's at the hub",
          );
          return;
        }
        run.push({ i, personKey });
      });

      const settled = await deps.store.executeMany(
        run.map(({ i, personKey }) => {
          const r = req.records[i] as OnboardRecord;
          return {
            personKey,
            cmd: {
              kind: "onboard" as const,
              caller,
              recordId: r.recordId,
              identity: identityToJson(r.identity as NonNullable<OnboardRecord["identity"]>),
              certificateNumber: r.certificateNumber,
              doses: r.doses.map(doseToJson),
            },
            respond: (_state: unknown, events: readonly unknown[]) =>
              events.length > 0 ? OnboardOutcome.ONBOARDED : OnboardOutcome.ALREADY_ONBOARDED,
          };
        }),
      );
      settled.forEach((s, n) => {
        const { i } = run[n] as { i: number };
        const r = req.records[i] as OnboardRecord;
        verdicts[i] =
          s.status === "fulfilled"
            ? {
                recordId: r.recordId,
                outcome: s.value.response,
                conflict: OnboardConflict.UNSPECIFIED,
                holderProvinceCode: "",
                holderRecordId: "",
                detail: "",
              }
            : conflictOf(r, s.reason);
      });
      const results = verdicts.map((v) => create(OnboardResultSchema, v));
      const counts = new Map<OnboardOutcome, number>();
      for (const r of results) counts.set(r.outcome, (counts.get(r.outcome) ?? 0) + 1);
      for (const [outcome, n] of counts)
        deps.metrics.onboarded.inc({ province: caller, outcome: OnboardOutcome[outcome] }, n);
      return create(OnboardRecordsResponseSchema, { results });
    },
  };
}
