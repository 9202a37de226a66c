import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { IdentitySchema, IdType, Sex } from "@evc-interop/gen/evc/common/v1/identity_pb";
import {
  CertificateStatus,
  CloseReason,
  DoseSchema,
} from "@evc-interop/gen/evc/common/v1/record_pb";
import { ControlService } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import type { Hub } from "@evc-interop/national";
import type { Province } from "@evc-interop/province-reference";
import { PhoneClient } from "@evc-interop/province-reference";
import { bearer, provinceName, residentId } from "@evc-interop/runtime";
import { Ledger } from "@evc-interop/testing";
import { checkInvariants, type InvariantResult } from "./invariants.js";

/** A resident ID for a child born in Beijing's Dongcheng district on `born`. */
function newResidentId(born: Date): string {
  const ymd = born.toISOString().slice(0, 10).replaceAll("-", "");
  return residentId(`110101${ymd}${String(Math.floor(Math.random() * 1000)).padStart(3, "0")}`);
}

type Print = (line: string) => void;

interface DirectiveRow {
  directive_id: string;
  province: string;
  action: string;
  record_sequence: number;
  state: string;
  receipt_outcome: string | null;
  disposition: string | null;
}

/** Prints every directive as the hub publishes it and every receipt as the hub records it. */
function tapBus(hub: Hub, print: Print): { stop(): Promise<void> } {
  const seen = new Map<string, string>();
  const started = new Date();
  let running = true;
  const loop = (async () => {
    while (running) {
      const rows = await hub.sql<DirectiveRow[]>`
        SELECT directive_id, province, action, record_sequence, state, receipt_outcome, disposition
        FROM directives WHERE created_at >= ${started} ORDER BY created_at, record_sequence`;
      for (const r of rows) {
        const before = seen.get(r.directive_id);
        if (!before && r.state !== "PENDING") {
          print(
            `    → directive ${r.action} to ${r.province} ${provinceName(r.province)} (record sequence ${r.record_sequence})`,
          );
        }
        if (before !== "ACKNOWLEDGED" && r.state === "ACKNOWLEDGED") {
          print(
            `    ← receipt from ${r.province}: ${r.receipt_outcome} for ${r.action} (hub: ${r.disposition})`,
          );
        }
        if (r.state !== "PENDING") seen.set(r.directive_id, r.state);
      }
      await new Promise((res) => setTimeout(res, 30));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
    },
  };
}

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`demo: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Plays both scenarios of the paper on screen along a life: a child registered in Beijing at
 * birth, linked to their resident ID weeks later, vaccinated while travelling in Guangdong, then
 * moving to Sichuan, and dying there; then checks the invariants.
 */
export async function runDemo(
  hub: Hub,
  provinces: Province[],
  print: Print,
): Promise<InvariantResult[]> {
  const [bj, gd, sc] = provinces;
  if (!bj || !gd || !sc) throw new Error("the demo needs three provinces");
  const control = (p: Province) =>
    createClient(
      ControlService,
      createConnectTransport({
        baseUrl: p.controlUrl,
        httpVersion: "2",
        interceptors: [bearer(p.config.controlToken)],
      }),
    );
  const tag = (p: Province) => `[${p.code} ${provinceName(p.code)}]`;
  const born = new Date(
    Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate()),
  );
  const identity = create(IdentitySchema, {
    idType: IdType.RESIDENT_ID,
    idNumber: newResidentId(born),
    name: "Wang Xiaoming",
    birthDate: timestampFromDate(born),
    sex: Sex.MALE,
  });
  /** At birth the child has only the birth medical certificate (出生医学证明). */
  const birthCertificate = create(IdentitySchema, {
    ...identity,
    idType: IdType.BIRTH_CERTIFICATE,
    idNumber: `O${identity.idNumber.slice(-9, -1)}`,
  });
  const dose = (province: string, vaccine: string, n: number) =>
    create(DoseSchema, {
      doseId: `${province}-${Date.now().toString(36)}-${vaccine}-${n}`,
      vaccineCode: vaccine,
      doseNumber: n,
      administeredAt: timestampFromDate(new Date()),
      administeredProvinceCode: province,
    });
  const tap = tapBus(hub, print);
  /** What the demo was told succeeded: the oracle checks the system against it. */
  const ledger = new Ledger();
  /** Waits until every directive is answered and the tap has printed it. */
  const settled = async () => {
    await until("receipts answered", async () => {
      const [r] = await hub.sql<
        { n: number }[]
      >`SELECT count(*)::int AS n FROM directives WHERE state IN ('PENDING', 'DELIVERED')`;
      return r?.n === 0 ? true : undefined;
    });
    await new Promise((r) => setTimeout(r, 150));
  };
  const watchAbort = new AbortController();
  let watching: Promise<void> = Promise.resolve();
  try {
    print("");
    print(
      `1. A child is born in ${provinceName(bj.code)}: the province registers the record, the hub checks one person, one record`,
    );
    const birthDoses = [dose(bj.code, "HepB", 1), dose(bj.code, "BCG", 1)];
    const reg = await control(bj).registerRecord({
      identity: birthCertificate,
      doses: birthDoses,
    });
    ledger.registered(birthCertificate.idNumber, bj.code, true);
    for (const d of birthDoses) ledger.dose(birthCertificate.idNumber, d.doseId, bj.code, true);
    print(
      `  ${tag(bj)} registered ${identity.name} (birth medical certificate ${birthCertificate.idNumber}): record ${reg.recordId}`,
    );
    print(`  ${tag(bj)} certificate ${reg.certificateNumber} issued, NORMAL, with 2 birth doses`);
    const phone = new PhoneClient(createConnectTransport({ baseUrl: bj.url, httpVersion: "2" }));
    let firstSeen: () => void = () => {};
    const ready = new Promise<void>((r) => {
      firstSeen = r;
    });
    watching = (async () => {
      for await (const c of phone.watch(reg.certificateNumber, watchAbort.signal)) {
        print(
          `  [phone] ${c.certificateNumber} is ${CertificateStatus[c.status]} (pushed by ${provinceName(bj.code)})`,
        );
        firstSeen();
      }
    })().catch(() => undefined);
    await ready;

    print("");
    print(
      "2. Weeks later the child gets a resident ID (居民身份证): registered under it with the birth certificate on file, still one person",
    );
    const linked = await control(bj).registerRecord({
      identity,
      knownAs: [birthCertificate],
    });
    ledger.linked(identity.idNumber, birthCertificate.idNumber);
    print(
      `  hub: resident ID ${identity.idNumber} linked to the same person; record ${linked.recordId === reg.recordId ? "the same" : `NEW ${linked.recordId}`}, certificate ${linked.certificateNumber === reg.certificateNumber ? "the same" : `NEW ${linked.certificateNumber}`}`,
    );

    print("");
    print(
      `3. Vaccinated while travelling in ${provinceName(gd.code)} (跨省不迁入): the dose goes to the owner, the certificate stays`,
    );
    const travelDose = dose(gd.code, "HepB", 2);
    const reported = await control(gd).recordDose({ identity, dose: travelDose });
    ledger.dose(identity.idNumber, travelDose.doseId, gd.code, true);
    print(
      `  ${tag(gd)} gave ${travelDose.vaccineCode} dose ${travelDose.doseNumber}; reported to the hub: ${reported.reportedToHub}`,
    );
    const bjRecord = await until("the dose at the owner", async () => {
      const r = await bj.store.record(reg.recordId);
      return r && r.contents.doses.length === 3 ? r : undefined;
    });
    await settled();
    print(
      `  ${tag(bj)} record now holds ${bjRecord.contents.doses.length} doses; certificate still ${bjRecord.certificate?.status}`,
    );

    print("");
    print(
      `4. The family moves to ${provinceName(sc.code)} (跨省迁入): suspend at the source first, then issue at the target`,
    );
    const { migrationId } = await control(sc).migrateIn({ identity });
    ledger.migrated(identity.idNumber, migrationId, sc.code);
    print(`  ${tag(sc)} asked the hub to migrate the record in: migration ${migrationId}`);
    const migration = await until("the migration", async () => {
      const state = await hub.store.load(
        (
          await hub.sql<
            { person_key: string }[]
          >`SELECT person_key FROM migrations WHERE migration_id = ${migrationId}`
        )[0]?.person_key ?? "",
      );
      const m = state.migrations[migrationId];
      return m && m.state !== "REQUESTED" && m.state !== "SOURCE_SUSPENDED" ? m : undefined;
    });
    await settled();
    print(
      `  hub: migration ${migration.state}; owner now ${migration.target} ${provinceName(migration.target)}`,
    );
    const scCert = await until("the new certificate", async () => {
      const c = await sc.store.certificate(migration.targetCertificateNumber ?? "");
      return c ?? undefined;
    });
    const scRecord = await sc.store.record(reg.recordId);
    print(
      `  ${tag(sc)} certificate ${scCert.certificate_number} is ${scCert.status}; record holds ${scRecord?.contents.doses.length} doses`,
    );
    await settled();

    print("");
    print(
      `5. Years later the child dies in ${provinceName(sc.code)} (注销): every certificate of the person is revoked, the former owner's too`,
    );
    await control(sc).closeRecord({ recordId: reg.recordId, reason: CloseReason.DECEASED });
    ledger.closed(identity.idNumber, reg.recordId, true);
    print(`  ${tag(sc)} closed the record as DECEASED`);
    const oldCert = await until("the former owner's certificate revoked", async () => {
      const c = await bj.store.certificate(reg.certificateNumber);
      return c?.status === "REVOKED" ? c : undefined;
    });
    await settled();
    const newCert = await sc.store.certificate(scCert.certificate_number);
    print(
      `  ${tag(sc)} certificate ${newCert?.certificate_number} is ${newCert?.status}; ${tag(bj)} certificate ${oldCert.certificate_number} is ${oldCert.status}`,
    );
  } finally {
    watchAbort.abort();
    await watching;
    await tap.stop();
  }

  print("");
  print("Invariants (checked against the hub and every province store)");
  const results = await checkInvariants(hub.sql, provinces, ledger);
  for (const r of results)
    print(`  ${r.ok ? "✓ held" : "✗ BROKEN"}  ${r.id} ${r.name}: ${r.detail}`);
  return results;
}
