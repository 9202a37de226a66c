import { createHash } from "node:crypto";
import {
  type DescMessage,
  fromBinary,
  type MessageShape,
  toBinary,
  toJson,
} from "@bufbuild/protobuf";

/** Hash of a request's canonical JSON, for idempotency-key payload checks. */
export function requestHash<D extends DescMessage>(schema: D, msg: MessageShape<D>): string {
  return createHash("sha256")
    .update(JSON.stringify(toJson(schema, msg)))
    .digest("hex");
}

export function codecOf<D extends DescMessage>(schema: D) {
  return {
    encode: (m: MessageShape<D>) => toBinary(schema, m),
    decode: (b: Uint8Array) => fromBinary(schema, b),
  };
}
