import type { Edit } from "@evc-interop/testing";

/**
 * The self-test's deliberately broken provinces: each is one realistic bug, written as edits to a
 * temporary copy of province-reference's build (never a switch in the reference itself). The kit
 * must catch every one with at least one case (its mutation score).
 */
export interface Mutant {
  name: string;
  /** The bug, as a vendor would write it. */
  bug: string;
  edits: Edit[];
}

const OPTIMISTIC_ISSUE = [
  "if (req.identity) {",
  "  const identity = req.identity;",
  "  const recordId = globalThis.crypto.randomUUID();",
  "  await store.sql.begin(async (tx) => {",
  '    await tx.unsafe("INSERT INTO records (record_id, id_type, id_number, identity, status)" +',
  "      \" VALUES ($1, $2, $3, $4::jsonb, 'ACTIVE') ON CONFLICT DO NOTHING\",",
  "      [recordId, String(identity.idType), identity.idNumber,",
  "       JSON.stringify(store.identityJson(identity))]);",
  "    await store.insertCertificate(tx, { number: store.newCertificateNumber(), recordId,",
  '      status: "NORMAL", owner: store.code, hubVersion: 0, cause: "optimistic issuance" });',
  "  });",
  "}",
].join("\n");

export const MUTANTS: readonly Mutant[] = [
  {
    name: "no-dedupe",
    bug: "applies a redelivered directive again and overwrites its stored receipt",
    edits: [
      {
        file: "domain/decide.js",
        find: "if (s.storedReceipt) return",
        replace: "if (false) return",
      },
      {
        file: "store/write-effects.js",
        find: "SELECT directive_id, record_id, action, decode(receipt, 'base64') FROM u`",
        replace:
          "SELECT directive_id, record_id, action, decode(receipt, 'base64') FROM u ON CONFLICT (directive_id) DO UPDATE SET receipt = EXCLUDED.receipt, submitted_at = NULL`",
      },
    ],
  },
  {
    name: "ack-before-commit",
    bug: "acknowledges the bus message first and applies later from memory: what waits is lost",
    edits: [
      {
        file: "agent.js",
        find: "const outcome = await this.applyOrPark(d, m.data);",
        replace:
          "m.ack(); await new Promise((r) => setTimeout(r, 300)); const outcome = await this.applyOrPark(d, m.data);",
      },
      {
        file: "agent.js",
        find: 'const result = await this.store.apply(d); if (result.kind === "wait") {',
        replace:
          'const result = await this.store.apply(d); if (result.kind === "wait") return "parked"; if (false) {',
      },
    ],
  },
  {
    name: "suspend-ignored",
    bug: "answers a suspension APPLIED without suspending the certificate",
    edits: [
      {
        file: "domain/decide.js",
        find: 'if (!already) { effects.push({ kind: "record-status", recordId: rec.recordId, status: "MIGRATED_OUT" });',
        replace:
          'if (false) { effects.push({ kind: "record-status", recordId: rec.recordId, status: "MIGRATED_OUT" });',
      },
    ],
  },
  {
    name: "issue-before-suspend-receipt",
    bug: "issues the incoming child's certificate before the hub says the source suspended",
    edits: [
      {
        file: "api/control-service.js",
        find: "const migrationId = await local(() => intents.migrateIn(req.identity));",
        replace: `const migrationId = await local(() => intents.migrateIn(req.identity));\n${OPTIMISTIC_ISSUE}`,
      },
    ],
  },
  {
    name: "accept-other-province",
    bug: "acts on a directive addressed to another province",
    edits: [
      {
        file: "domain/decide.js",
        find: "return d.targetProvinceCode === code",
        replace: "return true",
      },
    ],
  },
  {
    name: "wrong-receipt-outcome",
    bug: "answers APPLIED where it refused the directive",
    edits: [
      {
        file: "domain/decide.js",
        find: "outcome: ReceiptOutcome.REJECTED, rejection, detail });",
        replace: "outcome: ReceiptOutcome.APPLIED });",
      },
    ],
  },
  {
    name: "reconcile-never-repairs",
    bug: "reconciliation reports differences and repairs none",
    edits: [
      {
        file: "reconcile.js",
        find: "await store.sql.begin(async (tx) => { store.cache.willChange(row.certificate_number);",
        replace:
          "if (false) await store.sql.begin(async (tx) => { store.cache.willChange(row.certificate_number);",
      },
      {
        file: "reconcile.js",
        find: "if (added.length + corrected.length === 0) return;",
        replace: "return;",
      },
    ],
  },
  {
    name: "watch-never-pushes",
    bug: "WatchCertificate sends the first status and never a change",
    edits: [
      {
        file: "api/province-service.js",
        find: "certificate: publicCertificate(last, reader), }); while (!ctx.signal.aborted) {",
        replace:
          'certificate: publicCertificate(last, reader), }); await new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true })); return; while (!ctx.signal.aborted) {',
      },
    ],
  },
  {
    name: "watch-stale-after-first-change",
    bug: "the watch compares each change with the first status it sent: a change back to it is never pushed",
    edits: [
      {
        file: "api/province-service.js",
        find: "last = now; yield create(WatchCertificateResponseSchema, {",
        replace: "yield create(WatchCertificateResponseSchema, {",
      },
    ],
  },
  {
    name: "receipts-not-retried",
    bug: "marks receipts submitted before sending them: one the hub could not take is never sent again",
    edits: [
      {
        file: "receipt-submitter.js",
        find: "let res; try { res = await this.hub.submitReceipts({ receipts: part });",
        replace:
          "await this.store.markSubmitted(part.map((r) => r.directiveId)); let res; try { res = await this.hub.submitReceipts({ receipts: part });",
      },
    ],
  },
  {
    name: "no-gap-resync",
    bug: "waits on a sequence gap for ever: a record whose answered directives were lost with a restored backup never moves again",
    edits: [
      {
        file: "agent.js",
        find: "if (!this.opts.resync || this.stopping) return;",
        replace: "return;",
      },
    ],
  },
  // The variants below break rules no named case exercised: only the generated histories
  // (generated/directive-histories) catch them.
  {
    name: "revoke-skips-suspended",
    bug: "revokes only NORMAL certificates: a record revoked while migrating out keeps a SUSPENDED one",
    edits: [
      {
        file: "domain/decide.js",
        find: "for (const c of live) {",
        replace: 'for (const c of live.filter((x) => x.status === "NORMAL")) {',
      },
    ],
  },
  {
    name: "suspend-closed-record",
    bug: "forgets the closed check: a suspend of a CLOSED record is APPLIED and reopens it as migrating",
    edits: [
      {
        file: "domain/decide.js",
        find: 'return reject(ReceiptRejection.INVALID_STATE, "record is closed");',
        replace: "{ }",
      },
    ],
  },
  {
    name: "dose-fields-dropped",
    bug: "stores the fields of a dose its own schema has: site and lot number are lost",
    edits: [
      {
        file: "store/rows.js",
        find: "dose: JSON.stringify(toJson(DoseSchema, d)),",
        replace:
          "dose: JSON.stringify({ ...toJson(DoseSchema, d), siteCode: undefined, lotNumber: undefined }),",
      },
    ],
  },
  {
    name: "old-redelivery-reapplied",
    bug: "dedupes only a record's latest directive: an older one redelivered after newer ones is applied again",
    edits: [
      {
        file: "domain/decide.js",
        find: "if (s.storedReceipt)",
        replace:
          "if (s.storedReceipt && Number(d.recordSequence) >= (s.record?.lastSequence ?? 0))",
      },
    ],
  },
  {
    name: "reconcile-keeps-unknown",
    bug: "reconciliation adds and corrects, but never removes a certificate the hub does not know",
    edits: [
      {
        file: "reconcile.js",
        find: "DELETE FROM certificates WHERE certificate_number",
        replace: "SELECT 1 FROM certificates WHERE certificate_number",
      },
    ],
  },
  {
    name: "reconcile-ignores-owner",
    bug: "reconciliation keeps a record ACTIVE here when the hub says another province owns it now",
    edits: [
      {
        file: "reconcile.js",
        find: 'e.ownerProvinceCode === store.code && hubStatus === "ACTIVE"',
        replace: 'hubStatus === "ACTIVE"',
      },
    ],
  },
  {
    name: "reconcile-status-only",
    bug: "reconciliation compares certificates only: a record's identity and doses are never repaired",
    edits: [
      {
        file: "reconcile-contents.js",
        find: "for (const recordId of this.differing)",
        replace: "for (const recordId of [])",
      },
    ],
  },
];
