import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { afterAll, describe, expect, it } from "vitest";
import { contractFileNames, contractImage, contractSha256, writeContract } from "./contract.js";

const repoProto = join(import.meta.dirname, "..", "..", "proto");

function protoFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith(".proto")) out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

describe("the contract shipped in the kit", () => {
  const out = mkdtempSync(join(tmpdir(), "evc-contract-"));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it("names every file of proto/, so a new file cannot be left out of the image", () => {
    expect([...contractFileNames()].sort()).toEqual(protoFiles(repoProto));
  });

  it("is one image with every import, dependencies before the files that use them", () => {
    const set = fromBinary(FileDescriptorSetSchema, contractImage());
    const names = set.file.map((f) => f.name);
    expect(names).toContain("buf/validate/validate.proto");
    expect(names).toContain("google/protobuf/descriptor.proto");
    for (const name of contractFileNames()) expect(names).toContain(name);
    for (const [i, file] of set.file.entries()) {
      for (const dep of file.dependency) expect(names.indexOf(dep)).toBeLessThan(i);
    }
    expect(contractSha256()).toBe(contractSha256());
  });

  it("`contract --out` writes the image and the .proto files; protoc generates from the image", () => {
    const { image, protoDir, sha256 } = writeContract(out);
    expect(createHash("sha256").update(readFileSync(image)).digest("hex")).toBe(sha256);
    expect(protoFiles(protoDir)).toEqual(protoFiles(repoProto));
    const py = join(out, "py");
    execFileSync("mkdir", ["-p", py]);
    execFileSync("protoc", [
      `--descriptor_set_in=${image}`,
      `--python_out=${py}`,
      "evc/province/v1/province_service.proto",
      "buf/validate/validate.proto",
    ]);
    expect(existsSync(join(py, "evc", "province", "v1", "province_service_pb2.py"))).toBe(true);
  });
});
