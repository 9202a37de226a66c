import { randomUUID } from "node:crypto";
import { CloseReason } from "@evc-interop/gen/evc/common/v1/record_pb";
import { type Directive, ReceiptOutcome } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import { activateDirective, newDose, nextDirective } from "@evc-interop/testing";
import type { Sql } from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openTestStore, type TestStore } from "../testing/store.js";
import type { ProvinceStore } from "./store.js";

/**
 * Group commit of directive applies: concurrent directives of different records share a
 * transaction, yet each is applied exactly once and a failing one fails alone (I4).
 */
const CODE = "440000";
let t: TestStore;
let sql: Sql;
let store: ProvinceStore;

beforeAll(async () => {
  t = await openTestStore(CODE, "prov_store");
  ({ sql, store } = t);
});

afterAll(async () => {
  await t?.close();
});

const activate = (name?: string) => activateDirective(CODE, name);

describe("province store group commit", () => {
  it("applies concurrent directives in shared transactions, each exactly once", async () => {
    const directives = Array.from({ length: 30 }, () => activate());
    // Every directive twice, at once: the copy is a duplicate, never a second application.
    const results = await Promise.all([...directives, ...directives].map((d) => store.apply(d)));
    const applied = results.filter((r) => r.kind === "applied" && !r.duplicate);
    const duplicates = results.filter((r) => r.kind === "applied" && r.duplicate);
    expect(applied).toHaveLength(30);
    expect(duplicates).toHaveLength(30);
    for (const r of applied) {
      if (r.kind === "applied") expect(r.receipt.outcome).toBe(ReceiptOutcome.APPLIED);
    }
    const ids = directives.map((d) => d.directiveId);
    const [counts] = await sql<{ inbox: number; transactions: number; certificates: number }[]>`
      SELECT count(*)::int AS inbox, count(DISTINCT xmin::text)::int AS transactions,
        (SELECT count(*)::int FROM certificates
         WHERE record_id = ANY(${directives.map((d) => d.recordId)}::text[])) AS certificates
      FROM inbox WHERE directive_id = ANY(${ids}::uuid[])`;
    expect(counts?.inbox).toBe(30);
    expect(counts?.certificates).toBe(30);
    expect(counts?.transactions).toBeLessThan(30);
  });

  it("a dose id another record holds is stored on the activated record too (scoped per record)", async () => {
    const first = activate();
    await store.apply(first);
    const shared =
      first.action.case === "activateMigratedRecord"
        ? first.action.value.record?.doses[0]
        : undefined;
    if (!shared) throw new Error("the activation carries a dose");
    const second = activate();
    if (second.action.case !== "activateMigratedRecord" || !second.action.value.record)
      throw new Error("an activation");
    second.action.value.record.doses = [shared];
    const r = await store.apply(second);
    expect(r.kind === "applied" && r.receipt.outcome).toBe(ReceiptOutcome.APPLIED);
    const held = await sql<{ record_id: string }[]>`
      SELECT record_id FROM doses WHERE dose_id = ${shared.doseId} ORDER BY record_id`;
    expect(held.map((h) => h.record_id)).toEqual([first.recordId, second.recordId].sort());
    // An append of that dose id to the second record is a duplicate there, not elsewhere.
    const append = nextDirective(second, 2n, { case: "appendDose", value: { dose: shared } });
    const again = await store.apply(append);
    expect(again.kind === "applied" && again.receipt.outcome).toBe(ReceiptOutcome.ALREADY_APPLIED);
  });

  it("a directive the database refuses fails alone; the others of its batch are applied", async () => {
    const good = Array.from({ length: 10 }, () => activate());
    // PostgreSQL's jsonb cannot hold U+0000: the insert of this record fails.
    const bad = activate("Bad\u0000Name");
    const results = await Promise.allSettled([...good, bad].map((d) => store.apply(d)));
    expect(results.slice(0, 10).map((r) => r.status)).toEqual(good.map(() => "fulfilled"));
    expect(results[10]?.status).toBe("rejected");
    const [inbox] = await sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM inbox
      WHERE directive_id = ANY(${[...good, bad].map((d) => d.directiveId)}::uuid[])`;
    expect(inbox?.n).toBe(10);
  });

  it("applies a batch of different actions in one transaction, each as it would alone", async () => {
    const [a, b, c] = [activate(), activate(), activate()];
    await Promise.all([a, b, c].map((d) => store.apply(d)));
    const dose = newDose("440000");
    const migrationId = randomUUID();
    const batch = [
      nextDirective(a, 2n, {
        case: "suspendForMigration",
        value: { migrationId, targetProvinceCode: "510000" },
      }),
      nextDirective(b, 2n, { case: "appendDose", value: { dose } }),
      nextDirective(c, 2n, { case: "revokeCertificate", value: { reason: CloseReason.DECEASED } }),
      activate(),
    ];
    const results = await Promise.all(batch.map((d) => store.apply(d)));
    expect(results.map((r) => (r.kind === "applied" ? r.receipt.outcome : r.kind))).toEqual([
      ReceiptOutcome.APPLIED,
      ReceiptOutcome.APPLIED,
      ReceiptOutcome.APPLIED,
      ReceiptOutcome.APPLIED,
    ]);
    const suspended = results[0];
    if (suspended?.kind !== "applied" || suspended.receipt.result.case !== "suspended")
      throw new Error("no suspend result");
    // The suspend receipt carries the record's contents as the source held them.
    expect(suspended.receipt.result.value.record?.doses.map((x) => x.doseId)).toEqual(
      a.action.case === "activateMigratedRecord"
        ? a.action.value.record?.doses.map((x) => x.doseId)
        : [],
    );
    const [tx] = await sql<{ transactions: number }[]>`
      SELECT count(DISTINCT xmin::text)::int AS transactions FROM inbox
      WHERE directive_id = ANY(${batch.map((d) => d.directiveId)}::uuid[])`;
    expect(tx?.transactions).toBe(1);

    const state = async (d: Directive) => {
      const [rec] = await sql<{ status: string; last_sequence: number; doses: number }[]>`
        SELECT status, last_sequence::int,
          (SELECT count(*)::int FROM doses WHERE record_id = r.record_id) AS doses
        FROM records r WHERE record_id = ${d.recordId}`;
      const certs = await sql<{ status: string; owner_province: string; reason: string | null }[]>`
        SELECT status, owner_province, revocation_reason AS reason FROM certificates
        WHERE record_id = ${d.recordId}`;
      const [history] = await sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM certificate_history h JOIN certificates c USING (certificate_number)
        WHERE c.record_id = ${d.recordId}`;
      return { ...rec, certs, history: history?.n };
    };
    expect(await state(a)).toEqual({
      status: "MIGRATED_OUT",
      last_sequence: 2,
      doses: 1,
      certs: [{ status: "SUSPENDED", owner_province: "510000", reason: null }],
      history: 2,
    });
    expect(await state(b)).toMatchObject({ status: "ACTIVE", last_sequence: 2, doses: 2 });
    expect(await state(c)).toEqual({
      status: "CLOSED",
      last_sequence: 2,
      doses: 1,
      certs: [{ status: "REVOKED", owner_province: CODE, reason: "DECEASED" }],
      history: 2,
    });
    expect(await state(batch[3] as Directive)).toMatchObject({
      status: "ACTIVE",
      last_sequence: 1,
      certs: [{ status: "NORMAL", owner_province: CODE, reason: null }],
    });

    // The compensation and a second copy of the dose (as a new directive), together.
    const [restored, again] = await Promise.all([
      store.apply(
        nextDirective(a, 3n, {
          case: "restoreRecord",
          value: { migrationId, doses: [newDose("510000")] },
        }),
      ),
      store.apply(nextDirective(b, 3n, { case: "appendDose", value: { dose } })),
    ]);
    expect(restored?.kind === "applied" && restored.receipt.outcome).toBe(ReceiptOutcome.APPLIED);
    expect(again?.kind === "applied" && again.receipt.outcome).toBe(ReceiptOutcome.ALREADY_APPLIED);
    expect(await state(a)).toEqual({
      status: "ACTIVE",
      last_sequence: 3,
      doses: 2,
      certs: [{ status: "NORMAL", owner_province: CODE, reason: null }],
      history: 3,
    });
    expect(await state(b)).toMatchObject({ last_sequence: 3, doses: 2 });
  });

  it("keeps a directive that comes before its predecessor waiting, and changes nothing", async () => {
    const a = activate();
    await store.apply(a);
    const early = nextDirective(a, 3n, { case: "appendDose", value: { dose: newDose("440000") } });
    const result = await store.apply(early);
    expect(result).toEqual({ kind: "wait", lastSequence: 1 });
    const [rows] = await sql<{ inbox: number; doses: number }[]>`
      SELECT (SELECT count(*)::int FROM inbox WHERE directive_id = ${early.directiveId}) AS inbox,
        (SELECT count(*)::int FROM doses WHERE record_id = ${a.recordId}) AS doses`;
    expect(rows).toEqual({ inbox: 0, doses: 1 });
  });
});
