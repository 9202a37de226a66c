// Vendors do not use TypeScript: prove that the contract compiles with Debian's protoc for
// another language and that messages cross the language boundary intact in both directions.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DirectiveSchema,
  ReceiptOutcome,
  ReceiptSchema,
} from "../src/evc/directive/v1/directive_pb.js";

const root = resolve(import.meta.dirname, "..", "..");
const python = "/usr/bin/python3";
let work = "";

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "evc-foreign-"));
  const image = join(work, "evc.binpb");
  execFileSync("node", [join(root, "scripts/proto-image.mjs"), "--out", image], { stdio: "pipe" });
  const out = join(work, "py");
  execFileSync("mkdir", ["-p", out, join(work, "java")]);
  // Every file of the image, imports included, as a vendor's protoc would see them.
  const files = execFileSync(python, [
    "-c",
    "import sys\nfrom google.protobuf import descriptor_pb2\ns=descriptor_pb2.FileDescriptorSet()\ns.ParseFromString(open(sys.argv[1],'rb').read())\nprint('\\n'.join(f.name for f in s.file if not f.name.startswith('google/protobuf/')))",
    image,
  ])
    .toString()
    .trim()
    .split("\n");
  execFileSync("protoc", [
    `--descriptor_set_in=${image}`,
    `--python_out=${out}`,
    `--java_out=${join(work, "java")}`,
    ...files,
  ]);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("a non-JavaScript toolchain (protoc --python_out, --java_out)", () => {
  it("generates Java sources for every service", () => {
    const javaFiles = execFileSync("find", [join(work, "java"), "-name", "*.java"]).toString();
    expect(javaFiles).toMatch(/DirectiveOuterClass\.java/);
    expect(javaFiles).toMatch(/MigrationServiceOuterClass\.java/);
  });

  it("decodes in TypeScript a directive encoded in Python", () => {
    expect(readdirSync(join(work, "py", "evc", "directive", "v1"))).toContain("directive_pb2.py");
    const script = join(work, "encode.py");
    writeFileSync(
      script,
      [
        "import sys",
        `sys.path.insert(0, ${JSON.stringify(join(work, "py"))})`,
        "from evc.directive.v1 import directive_pb2",
        "d = directive_pb2.Directive(directive_id='5f0c7a4e-2b1d-4c3e-9a8f-0123456789ab', target_province_code='440000', correlation_id='m-1', causation_event_id='e-1', record_id='rec-9', record_sequence=7, attempt=2)",
        "d.issued_at.seconds = 1795000000",
        "d.append_dose.dose.dose_id = 'dose-py-1'",
        "d.append_dose.dose.dose_number = 2",
        "sys.stdout.write(d.SerializeToString().hex())",
      ].join("\n"),
    );
    const hex = execFileSync(python, [script]).toString();
    const d = fromBinary(DirectiveSchema, Buffer.from(hex, "hex"));
    expect(d.targetProvinceCode).toBe("440000");
    expect(d.recordSequence).toBe(7n);
    expect(d.attempt).toBe(2);
    expect(d.action.case).toBe("appendDose");
    expect(d.action.case === "appendDose" && d.action.value.dose?.doseId).toBe("dose-py-1");
  });

  it("decodes in Python a receipt encoded in TypeScript", () => {
    const receipt = create(ReceiptSchema, {
      directiveId: "5f0c7a4e-2b1d-4c3e-9a8f-0123456789ab",
      attempt: 3,
      outcome: ReceiptOutcome.ALREADY_APPLIED,
      appliedAt: timestampFromDate(new Date("2026-11-27T08:00:00Z")),
      result: {
        case: "activated",
        value: {
          $typeName: "evc.directive.v1.ActivateResult",
          certificateNumber: "440000-ABCDEF12",
        },
      },
    });
    const script = join(work, "decode.py");
    writeFileSync(
      script,
      [
        "import sys",
        `sys.path.insert(0, ${JSON.stringify(join(work, "py"))})`,
        "from evc.directive.v1 import directive_pb2",
        "r = directive_pb2.Receipt()",
        "r.ParseFromString(bytes.fromhex(sys.argv[1]))",
        "print(directive_pb2.ReceiptOutcome.Name(r.outcome), r.attempt, r.activated.certificate_number)",
      ].join("\n"),
    );
    const hex = Buffer.from(toBinary(ReceiptSchema, receipt)).toString("hex");
    expect(execFileSync(python, [script, hex]).toString().trim()).toBe(
      "RECEIPT_OUTCOME_ALREADY_APPLIED 3 440000-ABCDEF12",
    );
  });
});
