import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { create, type DescFile, toBinary } from "@bufbuild/protobuf";
import { type FileDescriptorProto, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { file_evc_common_v1_error_details } from "@evc-interop/gen/evc/common/v1/error_details_pb";
import { file_evc_common_v1_identity } from "@evc-interop/gen/evc/common/v1/identity_pb";
import { file_evc_common_v1_record } from "@evc-interop/gen/evc/common/v1/record_pb";
import { file_evc_conformance_v1_control_service } from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { file_evc_conformance_v1_kit_config } from "@evc-interop/gen/evc/conformance/v1/kit_config_pb";
import { file_evc_conformance_v1_suite } from "@evc-interop/gen/evc/conformance/v1/suite_pb";
import { file_evc_directive_v1_directive } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import { file_evc_national_v1_audit_service } from "@evc-interop/gen/evc/national/v1/audit_service_pb";
import { file_evc_national_v1_certificate_service } from "@evc-interop/gen/evc/national/v1/certificate_service_pb";
import { file_evc_national_v1_directive_service } from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import { file_evc_national_v1_dose_service } from "@evc-interop/gen/evc/national/v1/dose_service_pb";
import { file_evc_national_v1_migration_service } from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { file_evc_national_v1_onboarding_service } from "@evc-interop/gen/evc/national/v1/onboarding_service_pb";
import { file_evc_national_v1_operator_service } from "@evc-interop/gen/evc/national/v1/operator_service_pb";
import { file_evc_national_v1_privacy_service } from "@evc-interop/gen/evc/national/v1/privacy_service_pb";
import { file_evc_national_v1_record_service } from "@evc-interop/gen/evc/national/v1/record_service_pb";
import { file_evc_national_v1_snapshot_service } from "@evc-interop/gen/evc/national/v1/snapshot_service_pb";
import { file_evc_province_v1_access_log_service } from "@evc-interop/gen/evc/province/v1/access_log_service_pb";
import { file_evc_province_v1_clinic_service } from "@evc-interop/gen/evc/province/v1/clinic_service_pb";
import { file_evc_province_v1_province_service } from "@evc-interop/gen/evc/province/v1/province_service_pb";

/**
 * The contract the kit was built with: every file of `proto/evc`, as compiled into the kit's
 * generated code. A test checks that this list names every file of `proto/`.
 */
const CONTRACT_FILES: readonly DescFile[] = [
  file_evc_common_v1_error_details,
  file_evc_common_v1_identity,
  file_evc_common_v1_record,
  file_evc_conformance_v1_control_service,
  file_evc_conformance_v1_kit_config,
  file_evc_conformance_v1_suite,
  file_evc_directive_v1_directive,
  file_evc_national_v1_audit_service,
  file_evc_national_v1_certificate_service,
  file_evc_national_v1_directive_service,
  file_evc_national_v1_dose_service,
  file_evc_national_v1_migration_service,
  file_evc_national_v1_onboarding_service,
  file_evc_national_v1_operator_service,
  file_evc_national_v1_privacy_service,
  file_evc_national_v1_record_service,
  file_evc_national_v1_snapshot_service,
  file_evc_province_v1_access_log_service,
  file_evc_province_v1_clinic_service,
  file_evc_province_v1_province_service,
];

/** The `.proto` names (`evc/common/v1/record.proto`, …) of the contract's own files. */
export const contractFileNames = (): string[] => CONTRACT_FILES.map((f) => f.proto.name);

/**
 * The contract image (`evc.binpb`): a FileDescriptorSet of the contract with every import
 * (protovalidate's `buf/validate/validate.proto`, `google/protobuf/*`), dependencies first, as
 * `protoc --descriptor_set_in` and `buf generate` take it. Built from the descriptors embedded in
 * the kit's generated code, so its digest names exactly the contract the kit checks against.
 * It carries no comments: those are in the `.proto` files written beside it.
 */
export function contractImage(): Uint8Array {
  const files: FileDescriptorProto[] = [];
  const seen = new Set<string>();
  const walk = (file: DescFile) => {
    if (seen.has(file.name)) return;
    seen.add(file.name);
    for (const dep of file.dependencies) walk(dep);
    files.push(file.proto);
  };
  for (const file of CONTRACT_FILES) walk(file);
  return toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: files }));
}

/** SHA-256 (hex) of the contract image: the report names the contract by it. */
export const contractSha256 = (): string =>
  createHash("sha256").update(contractImage()).digest("hex");

/**
 * Where the contract's `.proto` sources are: `contract/proto` in the installed kit (copied there
 * when the kit is packed), the repository's `proto/` in a checkout.
 */
function protoSources(): string {
  const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
  for (const dir of [join(packageRoot, "contract", "proto"), join(packageRoot, "..", "proto")]) {
    if (existsSync(join(dir, "evc"))) return dir;
  }
  throw new Error(
    `the contract's .proto files are not in this kit (looked in ${packageRoot}/contract/proto): reinstall it`,
  );
}

/** Writes `evc.binpb` and the `.proto` files of the contract into `dir`; returns what it wrote. */
export function writeContract(dir: string): { image: string; protoDir: string; sha256: string } {
  mkdirSync(dir, { recursive: true });
  const image = join(dir, "evc.binpb");
  writeFileSync(image, contractImage());
  const protoDir = join(dir, "proto");
  cpSync(join(protoSources(), "evc"), join(protoDir, "evc"), {
    recursive: true,
    filter: (src) => !src.endsWith(".md"),
  });
  return { image, protoDir, sha256: contractSha256() };
}
