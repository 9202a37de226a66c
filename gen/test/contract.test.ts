import { create, fromBinary, fromJson, toBinary, toJson } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createValidator } from "@bufbuild/protovalidate";
import { describe, expect, it } from "vitest";
import { IdType } from "../src/evc/common/v1/identity_pb.js";
import { CloseReason, RecordContentsSchema } from "../src/evc/common/v1/record_pb.js";
import {
  AppendDoseSchema,
  type Directive,
  DirectiveSchema,
  ReceiptOutcome,
  ReceiptRejection,
  ReceiptSchema,
} from "../src/evc/directive/v1/directive_pb.js";
import { RequestMigrationRequestSchema } from "../src/evc/national/v1/migration_service_pb.js";
import { RegisterRecordRequestSchema } from "../src/evc/national/v1/record_service_pb.js";
import { dose, identity, residentId, residentIdCheck } from "./fixtures.js";

const validator = createValidator();
const DIRECTIVE_ID = "5f0c7a4e-2b1d-4c3e-9a8f-0123456789ab";
const MIGRATION_ID = "9b2e6d1a-7c4f-4e8a-b3d2-fedcba987654";

function directive(action: Directive["action"]): Directive {
  return create(DirectiveSchema, {
    directiveId: DIRECTIVE_ID,
    targetProvinceCode: "110000",
    correlationId: MIGRATION_ID,
    causationEventId: "evt-1",
    issuedAt: timestampFromDate(new Date("2026-11-27T08:00:00Z")),
    recordId: "rec-1",
    recordSequence: 3n,
    attempt: 2,
    streamVersion: 5n,
    action,
  });
}

const record = create(RecordContentsSchema, {
  recordId: "rec-1",
  identity: identity(),
  doses: [dose(), dose({ doseId: "dose-0002", doseNumber: 2 })],
});

const actions: Directive["action"][] = [
  {
    case: "suspendForMigration",
    value: {
      $typeName: "evc.directive.v1.SuspendForMigration",
      migrationId: MIGRATION_ID,
      targetProvinceCode: "440000",
    },
  },
  {
    case: "activateMigratedRecord",
    value: {
      $typeName: "evc.directive.v1.ActivateMigratedRecord",
      migrationId: MIGRATION_ID,
      sourceProvinceCode: "110000",
      record,
    },
  },
  { case: "appendDose", value: { $typeName: "evc.directive.v1.AppendDose", dose: dose() } },
  {
    case: "restoreRecord",
    value: {
      $typeName: "evc.directive.v1.RestoreRecord",
      migrationId: MIGRATION_ID,
      doses: [dose()],
    },
  },
  {
    case: "revokeCertificate",
    value: {
      $typeName: "evc.directive.v1.RevokeCertificate",
      reason: CloseReason.DECEASED,
      mergedIntoRecordId: "",
    },
  },
];

describe("directive envelope", () => {
  it.each(actions.map((a) => [a.case, a] as const))(
    "%s round-trips through binary and JSON and is valid",
    (_name, action) => {
      const d = directive(action);
      expect(validator.validate(DirectiveSchema, d).kind).toBe("valid");
      const fromBin = fromBinary(DirectiveSchema, toBinary(DirectiveSchema, d));
      expect(fromBin).toEqual(d);
      const json = toJson(DirectiveSchema, d);
      expect(fromJson(DirectiveSchema, json)).toEqual(d);
      expect(JSON.stringify(json)).toContain(_name);
    },
  );

  it("requires an action", () => {
    const result = validator.validate(DirectiveSchema, directive({ case: undefined }));
    expect(result.kind).toBe("invalid");
    expect(result.kind === "invalid" && result.violations.map((v) => v.toString()).join()).toMatch(
      /action/,
    );
  });

  it("rejects a target province that is not a GB/T 2260 province code", () => {
    const d = directive({ case: "appendDose", value: create(AppendDoseSchema, { dose: dose() }) });
    d.targetProvinceCode = "11000";
    const result = validator.validate(DirectiveSchema, d);
    expect(result.kind).toBe("invalid");
    expect(result.kind === "invalid" && result.violations[0]?.toString()).toMatch(
      /target_province_code/,
    );
  });
});

describe("receipt", () => {
  const receipts = [
    create(ReceiptSchema, {
      directiveId: DIRECTIVE_ID,
      attempt: 1,
      outcome: ReceiptOutcome.APPLIED,
      appliedAt: timestampFromDate(new Date("2026-11-27T08:00:01Z")),
      result: {
        case: "suspended",
        value: {
          $typeName: "evc.directive.v1.SuspendResult",
          record,
          suspendedCertificateNumber: "110000-ABCD1234",
        },
      },
    }),
    create(ReceiptSchema, {
      directiveId: DIRECTIVE_ID,
      attempt: 1,
      outcome: ReceiptOutcome.ALREADY_APPLIED,
      result: {
        case: "activated",
        value: {
          $typeName: "evc.directive.v1.ActivateResult",
          certificateNumber: "440000-XYZ98765",
        },
      },
    }),
    create(ReceiptSchema, {
      directiveId: DIRECTIVE_ID,
      attempt: 1,
      outcome: ReceiptOutcome.REJECTED,
      rejection: ReceiptRejection.INVALID_STATE,
      detail: "record is closed",
    }),
  ];
  it.each(receipts.map((r) => [ReceiptOutcome[r.outcome], r] as const))(
    "%s round-trips through binary and JSON and is valid",
    (_name, r) => {
      expect(validator.validate(ReceiptSchema, r).kind).toBe("valid");
      expect(fromBinary(ReceiptSchema, toBinary(ReceiptSchema, r))).toEqual(r);
      expect(fromJson(ReceiptSchema, toJson(ReceiptSchema, r))).toEqual(r);
    },
  );

  it("rejects an unspecified outcome, naming the field", () => {
    const r = create(ReceiptSchema, { directiveId: DIRECTIVE_ID, attempt: 1 });
    const result = validator.validate(ReceiptSchema, r);
    expect(result.kind === "invalid" && result.violations.map((v) => v.toString()).join()).toMatch(
      /outcome/,
    );
  });
});

describe("validation declared in the contract", () => {
  const good = create(RequestMigrationRequestSchema, {
    idempotencyKey: "key-00000001",
    identity: identity(),
  });

  function violations(msg: typeof good): string[] {
    const result = validator.validate(RequestMigrationRequestSchema, msg);
    return result.kind === "invalid" ? result.violations.map((v) => v.toString()) : [];
  }

  it("accepts good input", () => {
    expect(validator.validate(RequestMigrationRequestSchema, good).kind).toBe("valid");
  });

  it("computes resident ID check characters including X", () => {
    // 11010519491231002X is the widely published specimen number with check character X.
    expect(residentIdCheck("11010519491231002")).toBe("X");
    const withX = identity({ idNumber: "11010519491231002X" });
    expect(violations({ ...good, identity: withX })).toEqual([]);
  });

  it("rejects a resident ID with a wrong check character", () => {
    const id = residentId();
    const last = id.at(-1) === "0" ? "1" : "0";
    const v = violations({ ...good, identity: identity({ idNumber: id.slice(0, 17) + last }) });
    expect(v.join()).toMatch(/identity.*resident_id_check|check character/);
  });

  it("does not apply the check character rule to passports", () => {
    const v = violations({
      ...good,
      identity: identity({ idType: IdType.PASSPORT, idNumber: "E12345678" }),
    });
    expect(v).toEqual([]);
  });

  it("rejects an unspecified enum, naming the field", () => {
    const v = violations({ ...good, identity: identity({ idType: IdType.UNSPECIFIED }) });
    expect(v.join()).toMatch(/identity\.id_type/);
  });

  it("rejects a missing required field, naming it", () => {
    expect(violations({ ...good, identity: undefined }).join()).toMatch(/identity/);
    expect(violations({ ...good, idempotencyKey: "" }).join()).toMatch(/idempotency_key/);
  });

  it("rejects a bad province code, naming the field", () => {
    const req = create(RegisterRecordRequestSchema, {
      idempotencyKey: "key-00000001",
      identity: identity(),
      certificateNumber: "110000-ABCD1234",
      doses: [dose({ administeredProvinceCode: "999999" })],
    });
    const ok = create(RegisterRecordRequestSchema, { ...req, doses: [dose()] });
    expect(validator.validate(RegisterRecordRequestSchema, ok).kind).toBe("valid");
    const result = validator.validate(RegisterRecordRequestSchema, req);
    expect(result.kind === "invalid" && result.violations.map((v) => v.toString()).join()).toMatch(
      /doses\[0\]\.administered_province_code/,
    );
  });
});
