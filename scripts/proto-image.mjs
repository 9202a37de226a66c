// Builds the contract's descriptor image (.build/evc.binpb) with protoc, using the protovalidate
// definitions shipped inside the @bufbuild/protovalidate npm package (the Buf schema registry is
// not reachable from every machine, and validate.proto is never copied into this repo).
//
// Usage: node scripts/proto-image.mjs [--proto-dir DIR] [--out FILE]
// The image includes imports and source info, so it is a ready input for `buf lint`,
// `buf breaking`, `buf generate` and any vendor's own protoc/buf toolchain.
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { create, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? resolve(args[i + 1]) : fallback;
};
const protoDir = opt("--proto-dir", join(root, "proto"));
const out = opt("--out", join(root, ".build", "evc.binpb"));
const depsOut = join(dirname(out), "protovalidate-deps.binpb");

// 1. validate.proto and everything it imports, as FileDescriptorProtos, dependencies first.
const files = [];
const seen = new Set();
const walk = (file) => {
  if (seen.has(file.name)) return;
  seen.add(file.name);
  for (const dep of file.dependencies) walk(dep);
  files.push(file.proto);
};
walk(file_buf_validate_validate);
mkdirSync(dirname(depsOut), { recursive: true });
writeFileSync(
  depsOut,
  toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: files })),
);

// 2. Compile the contract against them.
const protos = [];
const collect = (dir) => {
  for (const entry of readdirSync(dir)) {
    const p = join(dir, entry);
    if (statSync(p).isDirectory()) collect(p);
    else if (entry.endsWith(".proto")) protos.push(relative(protoDir, p));
  }
};
collect(protoDir);
protos.sort();
mkdirSync(dirname(out), { recursive: true });
try {
  execFileSync(
    "protoc",
    [
      `--descriptor_set_in=${depsOut}`,
      `-I${protoDir}`,
      "--include_imports",
      "--include_source_info",
      `--descriptor_set_out=${out}`,
      ...protos,
    ],
    { stdio: ["ignore", "inherit", "inherit"] },
  );
} catch (err) {
  if (err && err.code === "ENOENT") {
    console.error(
      "protoc not found on PATH. Install it: `apt-get install protobuf-compiler` (Debian/Ubuntu), " +
        "`brew install protobuf` (macOS), or see https://protobuf.dev/installation/.",
    );
  }
  process.exit(1);
}
console.error(`proto image: ${protos.length} files -> ${relative(root, out)}`);
