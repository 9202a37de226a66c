import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  CloseReason,
  type Dose,
  DoseSchema,
  RecordContentsSchema,
} from "@evc-interop/gen/evc/common/v1/record_pb";
import {
  type Directive,
  ReceiptOutcome,
  ReceiptRejection,
} from "@evc-interop/gen/evc/directive/v1/directive_pb";
import { syntheticIdentity } from "@evc-interop/runtime";
import fc from "fast-check";
import { CaseFailure } from "../case.js";
import type { Kit } from "../kit.js";
import {
  type Action,
  after,
  allowedKinds,
  describe,
  type Model,
  type ModelRecord,
  step,
} from "./model.js";
import { checkNoReceipt, checkReceipt, checkRecord, checkSame, receiptOf } from "./observe.js";

/** The province under test, as the commands reach it. */
export interface Real {
  kit: Kit;
  /** Whether the kit may kill and restart the province (it declared resilience). */
  restarts: boolean;
  /** The steps this history ran, as they ran (the report shows the failing history's). */
  steps: string[];
}

type Cmd = fc.AsyncCommand<Model, Real>;
type Kind = Action["kind"];

const MAX_RECORDS = 3;
const VACCINES = ["MMR", "DTaP", "HepB", "BCG", "IPV"];
const REASONS = [CloseReason.DECEASED, CloseReason.DELETED, CloseReason.MIGRATION_ABORTED];

function newDose(kit: Kit, n: number): Dose {
  return create(DoseSchema, {
    doseId: `gen-${crypto.randomUUID()}`,
    vaccineCode: VACCINES[n % VACCINES.length] ?? "MMR",
    doseNumber: (n % 5) + 1,
    administeredAt: timestampFromDate(new Date(Date.UTC(2021, n % 12, 1 + (n % 28)))),
    administeredProvinceCode: kit.virtual[n % 2],
    siteCode: `site-${n}`,
    lotNumber: `LOT${1000 + n}`,
  });
}

/** The action of a kind, with fresh or repeated doses as the generator chose. */
function actionOf(kit: Kit, kind: Kind, rec: ModelRecord, repeat: boolean, n: number): Action {
  switch (kind) {
    case "suspend":
      return { kind };
    case "revoke":
      return { kind, reason: REASONS[n % REASONS.length] ?? CloseReason.DECEASED };
    case "append": {
      const held = rec.doses[n % Math.max(1, rec.doses.length)];
      return { kind, dose: repeat && held ? held : newDose(kit, n) };
    }
    case "restore":
      return {
        kind,
        doses: Array.from({ length: n % 3 }, (_, i) => {
          const held = rec.doses[i];
          return repeat && held ? held : newDose(kit, n + i);
        }),
      };
  }
}

function directiveFor(kit: Kit, rec: ModelRecord, a: Action, init: Partial<Directive> = {}) {
  const seq = BigInt(rec.issued.length + 1);
  const action: Directive["action"] =
    a.kind === "suspend"
      ? {
          case: "suspendForMigration",
          value: {
            $typeName: "evc.directive.v1.SuspendForMigration",
            migrationId: crypto.randomUUID(),
            targetProvinceCode: kit.virtual[1],
          },
        }
      : a.kind === "restore"
        ? {
            case: "restoreRecord",
            value: {
              $typeName: "evc.directive.v1.RestoreRecord",
              migrationId: crypto.randomUUID(),
              doses: a.doses,
            },
          }
        : a.kind === "revoke"
          ? {
              case: "revokeCertificate",
              value: {
                $typeName: "evc.directive.v1.RevokeCertificate",
                reason: a.reason,
                mergedIntoRecordId: "",
              },
            }
          : {
              case: "appendDose",
              value: { $typeName: "evc.directive.v1.AppendDose", dose: a.dose },
            };
  return kit.directive({
    recordId: rec.recordId,
    recordSequence: seq,
    streamVersion: seq + 1n,
    action,
    ...init,
  });
}

/** The record a command's pick names, and the action kind its choice names among the allowed. */
function chosen(m: Readonly<Model>, pick: number, choice: number) {
  const rec = m.records[pick % m.records.length];
  const kinds = rec ? allowedKinds(rec.status) : [];
  return { rec, kind: kinds[choice % kinds.length] };
}

/** A new record migrating in: activate, answered APPLIED with a certificate of this province. */
class Activate implements Cmd {
  constructor(
    readonly doses: number,
    readonly copies: number,
  ) {}
  check = (m: Readonly<Model>) => m.records.length < MAX_RECORDS;
  async run(m: Model, { kit }: Real) {
    const recordId = crypto.randomUUID();
    const identity = syntheticIdentity("Generated Child");
    const doses = Array.from({ length: this.doses }, (_, i) => newDose(kit, i));
    const d = kit.directive({
      recordId,
      action: {
        case: "activateMigratedRecord",
        value: {
          $typeName: "evc.directive.v1.ActivateMigratedRecord",
          migrationId: crypto.randomUUID(),
          sourceProvinceCode: kit.virtual[0],
          record: create(RecordContentsSchema, { recordId, identity, doses }),
        },
      },
    });
    await kit.deliver(d, this.copies);
    const [first, ...rest] = await receiptOf(kit, d);
    if (!first) return;
    const certificate =
      first.result.case === "activated" ? first.result.value.certificateNumber : "";
    if (
      first.outcome !== ReceiptOutcome.APPLIED ||
      !certificate.startsWith(`${kit.config.province.code}-`)
    ) {
      throw new CaseFailure(
        `activation of ${recordId} APPLIED with a certificate number of this province`,
        `${ReceiptOutcome[first.outcome]} ${certificate || "without a number"}`,
      );
    }
    const rec: ModelRecord = {
      recordId,
      identity,
      status: "ACTIVE",
      certificate,
      certificateStatus: "NORMAL",
      revocationReason: CloseReason.UNSPECIFIED,
      statusChanges: 0,
      doses: [...doses],
      issued: [d],
      answered: new Map([[d.directiveId, first]]),
    };
    m.records.push(rec);
    await settle(kit, d, this.copies);
    checkSame(first, [...rest, ...kit.receipts(d.directiveId)], d);
    await checkRecord(kit, rec);
  }
  toString = () => `activate(${this.doses} doses${copies(this.copies)})`;
}

/** One action on a record (one its state allows), delivered once or as several copies. */
class Act implements Cmd {
  private done = "";
  constructor(
    readonly pick: number,
    readonly choice: number,
    readonly repeat: boolean,
    readonly n: number,
    readonly copies: number,
  ) {}
  check = (m: Readonly<Model>) => m.records.length > 0;
  async run(m: Model, { kit }: Real) {
    this.done = ""; // described by this run only (the same command runs again while shrinking)
    const { rec, kind } = chosen(m, this.pick, this.choice);
    if (!rec || !kind) return;
    const a = actionOf(kit, kind, rec, this.repeat, this.n);
    this.done = `${describe(a)} on record #${m.records.indexOf(rec)} (${rec.status})`;
    const d = directiveFor(kit, rec, a);
    const want = step(rec, a);
    rec.issued.push(d);
    await kit.deliver(d, this.copies);
    const [first] = await receiptOf(kit, d);
    if (!first) return;
    rec.answered.set(d.directiveId, first);
    checkReceipt(first, d, want, rec);
    await settle(kit, d, this.copies);
    checkSame(first, kit.receipts(d.directiveId), d);
    await checkRecord(kit, rec);
  }
  toString = () => `${this.done || `act(#${this.pick}, ${this.choice})`}${copies(this.copies)}`;
}

/**
 * Two actions on a record, the later delivered first: it must wait for its predecessor (and,
 * with `hold`, send no receipt until then), then both apply in record order.
 */
class Reordered implements Cmd {
  private done = "";
  constructor(
    readonly pick: number,
    readonly first: number,
    readonly second: number,
    readonly hold: boolean,
  ) {}
  check = (m: Readonly<Model>) => m.records.length > 0;
  async run(m: Model, { kit }: Real) {
    this.done = ""; // described by this run only (the same command runs again while shrinking)
    const { rec, kind: k1 } = chosen(m, this.pick, this.first);
    if (!rec || !k1) return;
    const kinds2 = allowedKinds(after(k1, rec.status));
    const k2 = kinds2[this.second % kinds2.length];
    if (!k2) return;
    const a1 = actionOf(kit, k1, rec, false, rec.issued.length);
    this.done = `reordered(${describe(a1)} then ${k2} on record #${m.records.indexOf(rec)} (${rec.status}), the second delivered first${this.hold ? " and held" : ""})`;
    const d1 = directiveFor(kit, rec, a1);
    const want1 = step(rec, a1);
    rec.issued.push(d1);
    const a2 = actionOf(kit, k2, rec, false, rec.issued.length + 7);
    const d2 = directiveFor(kit, rec, a2);
    rec.issued.push(d2);
    await kit.deliver(d2);
    if (this.hold) {
      await checkNoReceipt(
        kit,
        d2,
        600,
        `no receipt for directive ${d2.directiveId} (sequence ${d2.recordSequence}) while sequence ${d1.recordSequence} is missing: held until the gap is filled`,
      );
    }
    await kit.deliver(d1);
    const [r1] = await receiptOf(kit, d1);
    const [r2] = await receiptOf(kit, d2);
    if (!r1 || !r2) return;
    checkReceipt(r1, d1, want1, rec);
    // The second is expected on the state after the first, as the province must apply them.
    const want2 = step(rec, a2);
    checkReceipt(r2, d2, want2, rec);
    rec.answered.set(d1.directiveId, r1).set(d2.directiveId, r2);
    await checkRecord(kit, rec);
  }
  toString = () => this.done || `reordered(#${this.pick}, ${this.first}, ${this.second})`;
}

/** A directive answered before, delivered again: the stored receipt, nothing changes (I4). */
class Redeliver implements Cmd {
  private done = "";
  constructor(
    readonly pick: number,
    readonly which: number,
  ) {}
  check = (m: Readonly<Model>) => m.records.length > 0;
  async run(m: Model, { kit }: Real) {
    this.done = ""; // described by this run only (the same command runs again while shrinking)
    const rec = m.records[this.pick % m.records.length];
    const d = rec?.issued[this.which % rec.issued.length];
    const first = d && rec.answered.get(d.directiveId);
    if (!rec || !d || !first) return;
    this.done = `redeliver directive ${d.recordSequence} (${d.action.case}) of record #${m.records.indexOf(rec)}`;
    const before = kit.receipts(d.directiveId).length;
    await kit.deliver(d);
    const rs = await receiptOf(kit, d, before + 1);
    checkSame(first, rs, d);
    await checkRecord(kit, rec);
  }
  toString = () => this.done || `redeliver(#${this.pick}, ${this.which})`;
}

/** A directive for another province on this province's subject: never applied nor answered (I7). */
class Foreign implements Cmd {
  private done = "";
  constructor(readonly pick: number) {}
  check = (m: Readonly<Model>) => m.records.length > 0;
  async run(m: Model, { kit }: Real) {
    this.done = ""; // described by this run only (the same command runs again while shrinking)
    const rec = m.records[this.pick % m.records.length];
    if (!rec) return;
    this.done = `foreign(a revoke of record #${m.records.indexOf(rec)} addressed to another province)`;
    const d = directiveFor(
      kit,
      rec,
      { kind: "revoke", reason: CloseReason.DELETED },
      { targetProvinceCode: kit.virtual[1] },
    );
    await kit.deliver(d);
    await checkNoReceipt(
      kit,
      d,
      800,
      `no receipt for directive ${d.directiveId}, addressed to ${kit.virtual[1]} (I7)`,
    );
    await checkRecord(kit, rec);
  }
  toString = () => this.done || `foreign(#${this.pick})`;
}

/** Any action for a record this province never held: REJECTED, RECORD_NOT_FOUND. */
class UnknownRecord implements Cmd {
  constructor(
    readonly kind: Kind,
    readonly n: number,
  ) {}
  check = () => true;
  async run(_m: Model, { kit }: Real) {
    const ghost: ModelRecord = {
      recordId: crypto.randomUUID(),
      identity: syntheticIdentity("Nobody"),
      status: "ACTIVE",
      certificate: "",
      certificateStatus: "NORMAL",
      revocationReason: CloseReason.UNSPECIFIED,
      statusChanges: 0,
      doses: [],
      issued: [],
      answered: new Map(),
    };
    const d = directiveFor(kit, ghost, actionOf(kit, this.kind, ghost, false, this.n));
    await kit.deliver(d);
    const [r] = await receiptOf(kit, d);
    if (!r) return;
    checkReceipt(
      r,
      d,
      { outcome: ReceiptOutcome.REJECTED, rejection: ReceiptRejection.RECORD_NOT_FOUND },
      ghost,
    );
  }
  toString = () => `${this.kind} of a record never held here`;
}

/** The province killed and started again: everything acknowledged is still there. */
class Restart implements Cmd {
  check = (m: Readonly<Model>) => m.records.length > 0;
  async run(m: Model, { kit }: Real) {
    await kit.restartProvince();
    for (const rec of m.records) await checkRecord(kit, rec);
  }
  toString = () => "restart";
}

/** The activation every history starts with (one record, one dose). */
export const firstRecord = (): Cmd => new Activate(1, 1);

/** Waits a moment for the receipts of the other copies of a directive. */
async function settle(kit: Kit, d: Directive, copies: number): Promise<void> {
  if (copies > 1) await kit.waitReceipts(d.directiveId, copies, 1500);
}

const copies = (n: number) => (n > 1 ? `, ${n} copies` : "");

/**
 * The commands a history is made of, weighted toward actions on records; `restarts` adds the
 * restart (resilience declared).
 */
export function commandArbitraries(restarts: boolean): fc.Arbitrary<Cmd>[] {
  const pick = fc.nat({ max: MAX_RECORDS - 1 });
  const choice = fc.nat({ max: 11 });
  const copiesArb = fc.oneof(
    { weight: 4, arbitrary: fc.constant(1) },
    { weight: 1, arbitrary: fc.integer({ min: 2, max: 3 }) },
  );
  const weighted: fc.WeightedArbitrary<Cmd>[] = [
    {
      weight: 6,
      arbitrary: fc
        .tuple(pick, choice, fc.boolean(), fc.nat({ max: 50 }), copiesArb)
        .map(([p, k, r, n, c]) => new Act(p, k, r, n, c)),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(pick, choice, choice, fc.boolean())
        .map(([p, a, b, h]) => new Reordered(p, a, b, h)),
    },
    {
      weight: 2,
      arbitrary: fc.tuple(pick, fc.nat({ max: 9 })).map(([p, w]) => new Redeliver(p, w)),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(fc.nat({ max: 3 }), copiesArb).map(([d, c]) => new Activate(d, c)),
    },
    { weight: 1, arbitrary: pick.map((p) => new Foreign(p)) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom<Kind>("suspend", "restore", "revoke", "append"), fc.nat({ max: 50 }))
        .map(([k, n]) => new UnknownRecord(k, n)),
    },
  ];
  if (restarts) weighted.push({ weight: 1, arbitrary: fc.constant(new Restart()) });
  return [fc.oneof(...weighted).map(traced)];
}

/** A command that names itself in the case's trace before it runs. */
function traced(cmd: Cmd): Cmd {
  return {
    check: (m) => cmd.check(m),
    run: async (m, real) => {
      try {
        await cmd.run(m, real);
      } finally {
        // Described after it ran: what it did depends on the model it ran on.
        real.steps.push(cmd.toString());
        real.kit.trace(`· step ${cmd.toString()}`);
      }
    },
    toString: () => cmd.toString(),
  };
}
