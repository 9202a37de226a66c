import { connect as h2connect } from "node:http2";
import { gzipSync } from "node:zlib";
import { create, type DescMessage, type Message, ScalarType } from "@bufbuild/protobuf";

/**
 * Test kit: bad input for any RPC of the contract, built from its descriptors — random values
 * at the edges (NUL characters, huge strings, timestamps outside 0001-9999, unknown enum
 * numbers, crafted tokens), and raw bodies no client library would send.
 */

/** A small seeded source (the same seed, the same inputs). */
export class FuzzRandom {
  constructor(private state: number) {}
  next(): number {
    this.state = (Math.imul(this.state, 1664525) + 1013904223) >>> 0;
    return this.state / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)] as T;
  }
}

const STRINGS = [
  "",
  "x\u0000y",
  "\u0000",
  "110000",
  "110000-ABCDEF123456",
  "11010519491231002X",
  "not-a-uuid",
  "00000000-0000-0000-0000-000000000000",
  "%%%|||",
  "MjAyNi0wMS0wMVQwMDowMDowMFp8bm90LWEtdXVpZA",
  "MDAwMC0wMS0wMXwwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA",
  "\uD800",
  "𝒱".repeat(100),
  "a".repeat(5000),
];

const BIG = [0, 1, -1, 2 ** 31 - 1, -(2 ** 31), 4294967295, 999_999_999];

/** A message of `desc` with fields filled at random from the edges above. */
export function fuzzMessage(desc: DescMessage, rnd: FuzzRandom, depth = 0): Message {
  if (desc.typeName === "google.protobuf.Timestamp") {
    return create(desc, {
      seconds: rnd.pick([
        0n,
        -1n,
        253402300800n,
        -62135596801n,
        1_000_000_000_000n,
        1_700_000_000n,
      ]),
      nanos: rnd.pick([0, -1, 1_000_000_000, 5]),
    } as never);
  }
  const init: Record<string, unknown> = {};
  for (const f of desc.fields) {
    if (rnd.next() < 0.3) continue;
    if (f.oneof) {
      if (init[f.oneof.localName] || rnd.next() < 0.5) continue;
      const v = value(f, rnd, depth);
      if (v !== undefined) init[f.oneof.localName] = { case: f.localName, value: v };
      continue;
    }
    const v = value(f, rnd, depth);
    if (v !== undefined) init[f.localName] = v;
  }
  return create(desc, init as never);
}

type Field = DescMessage["fields"][number];

function scalar(t: ScalarType, rnd: FuzzRandom): unknown {
  switch (t) {
    case ScalarType.STRING:
      return rnd.pick(STRINGS);
    case ScalarType.BOOL:
      return rnd.next() < 0.5;
    case ScalarType.BYTES:
      return rnd.pick([new Uint8Array(0), new Uint8Array([0, 1, 255]), new Uint8Array(300)]);
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return rnd.pick([0n, -1n, 9223372036854775807n, -9223372036854775808n]);
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return rnd.pick([0n, 1n, 18446744073709551615n]);
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return rnd.pick([0, Number.NaN, Number.POSITIVE_INFINITY, -1e300]);
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return rnd.pick([0, 1, 4294967295]);
    default:
      return rnd.pick(BIG);
  }
}

function value(f: Field, rnd: FuzzRandom, depth: number): unknown {
  switch (f.fieldKind) {
    case "scalar":
      return scalar(f.scalar, rnd);
    case "enum":
      return rnd.pick([0, 1, 2, 99, -5]);
    case "message":
      return depth > 3 ? undefined : fuzzMessage(f.message, rnd, depth + 1);
    case "list": {
      const n = depth > 3 ? 0 : rnd.pick([0, 1, 2, 3]);
      return Array.from({ length: n }, () =>
        f.listKind === "message"
          ? fuzzMessage(f.message, rnd, depth + 1)
          : f.listKind === "enum"
            ? rnd.pick([0, 1, 99])
            : scalar(f.scalar, rnd),
      );
    }
    case "map":
      return {};
  }
}

/** The answer to one raw request: HTTP status and the RPC code as the protocol reported it. */
export interface RawAnswer {
  status: number;
  /** gRPC status number, or the Connect error code name; "" when the call succeeded. */
  code: string;
}

const frame = (payload: Uint8Array, flags = 0) => {
  const f = Buffer.alloc(5 + payload.length);
  f[0] = flags;
  f.writeUInt32BE(payload.length, 1);
  Buffer.from(payload).copy(f, 5);
  return f;
};

/** Raw bodies no well-behaved client sends, for every protocol. */
export function rawBodies(): {
  name: string;
  contentType: string;
  body: Uint8Array;
  headers?: Record<string, string>;
}[] {
  const garbage = new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x07]);
  const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
  return [
    { name: "connect binary garbage", contentType: "application/proto", body: garbage },
    { name: "connect json garbage", contentType: "application/json", body: Buffer.from("{bad") },
    {
      name: "connect gzip bomb",
      contentType: "application/proto",
      body: bomb,
      headers: { "content-encoding": "gzip" },
    },
    {
      name: "grpc garbage",
      contentType: "application/grpc",
      body: frame(garbage),
      headers: { te: "trailers" },
    },
    {
      name: "grpc short frame",
      contentType: "application/grpc",
      body: Buffer.from([0, 0, 0]),
      headers: { te: "trailers" },
    },
    {
      name: "grpc bomb",
      contentType: "application/grpc",
      body: frame(bomb, 1),
      headers: { te: "trailers", "grpc-encoding": "gzip" },
    },
    { name: "grpc-web garbage", contentType: "application/grpc-web+proto", body: frame(garbage) },
    {
      name: "connect stream garbage",
      contentType: "application/connect+proto",
      body: frame(garbage),
    },
  ];
}

/** Sends one raw request over HTTP/2 and reads the RPC code from wherever the protocol puts it. */
export function sendRaw(
  baseUrl: string,
  path: string,
  req: { contentType: string; body: Uint8Array; headers?: Record<string, string> },
  auth: Record<string, string>,
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const session = h2connect(baseUrl);
    session.on("error", reject);
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": req.contentType,
      ...auth,
      ...(req.headers ?? {}),
    });
    let status = 0;
    let code = "";
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      if (h["grpc-status"] !== undefined) code = String(h["grpc-status"]);
    });
    stream.on("trailers", (t) => {
      if (t["grpc-status"] !== undefined) code = String(t["grpc-status"]);
    });
    stream.on("data", (d: Buffer) => chunks.push(d));
    stream.on("end", () => {
      const body = Buffer.concat(chunks);
      if (req.contentType.startsWith("application/grpc-web")) {
        code = /grpc-status: (\d+)/.exec(body.toString("latin1"))?.[1] ?? code;
      } else if (
        req.contentType === "application/json" ||
        req.contentType === "application/proto"
      ) {
        if (status !== 200)
          code = (JSON.parse(body.toString() || "{}") as { code?: string }).code ?? "";
      } else if (req.contentType.startsWith("application/connect+")) {
        code = /"code":"([a-z_]+)"/.exec(body.toString("latin1"))?.[1] ?? code;
      }
      session.close();
      resolve({ status, code: code === "0" ? "" : code });
    });
    stream.on("error", reject);
    stream.end(Buffer.from(req.body));
  });
}

/**
 * True when an answer says the server failed (Internal or Unknown) rather than the input — in
 * its code, or in its HTTP status: a 500 is a server's failure to every HTTP client and proxy,
 * whatever code its body carries (#29: bad protobuf bodies got 500 with invalid_argument).
 */
export function isServerFault(a: RawAnswer): boolean {
  if (["13", "2", "internal", "unknown"].includes(a.code)) return true;
  return a.status === 500 || (a.status > 500 && a.code === "");
}
