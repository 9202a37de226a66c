import type { DescMessage, Message } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/** Seconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range RFC 3339 can write. */
const MIN_SECONDS = -62_135_596_800n;
const MAX_SECONDS = 253_402_300_799n;

/**
 * The first field of `message` that no store could keep: a string holding U+0000 (PostgreSQL
 * text cannot), or a google.protobuf.Timestamp outside 0001-9999 or with nanos out of range.
 * Returns the field's path (e.g. `dose.administered_at`) and why, or undefined.
 */
export function findUnstorable(
  desc: DescMessage,
  message: Message,
  path = "",
): { field: string; why: string } | undefined {
  if (desc.typeName === "google.protobuf.Timestamp") {
    const t = message as unknown as { seconds: bigint; nanos: number };
    if (t.seconds < MIN_SECONDS || t.seconds > MAX_SECONDS)
      return { field: path, why: "must be between 0001-01-01 and 9999-12-31" };
    if (t.nanos < 0 || t.nanos > 999_999_999)
      return { field: path, why: "nanos must be between 0 and 999999999" };
    return undefined;
  }
  const m = message as unknown as Record<string, unknown>;
  for (const f of desc.fields) {
    const name = path ? `${path}.${f.name}` : f.name;
    let value: unknown;
    if (f.oneof) {
      const o = m[f.oneof.localName] as { case?: string; value?: unknown } | undefined;
      if (o?.case !== f.localName) continue;
      value = o.value;
    } else value = m[f.localName];
    const found = check(f, value, name);
    if (found) return found;
  }
  return undefined;
}

type Field = DescMessage["fields"][number];

function check(f: Field, value: unknown, name: string): { field: string; why: string } | undefined {
  switch (f.fieldKind) {
    case "scalar":
      return typeof value === "string" && value.includes("\u0000")
        ? { field: name, why: "must not contain NUL characters" }
        : undefined;
    case "message":
      return value ? findUnstorable(f.message, value as Message, name) : undefined;
    case "list":
      for (const [i, item] of ((value as unknown[]) ?? []).entries()) {
        const found =
          f.listKind === "message"
            ? findUnstorable(f.message, item as Message, `${name}[${i}]`)
            : f.listKind === "scalar" && typeof item === "string" && item.includes("\u0000")
              ? { field: `${name}[${i}]`, why: "must not contain NUL characters" }
              : undefined;
        if (found) return found;
      }
      return undefined;
    case "map":
      for (const [k, item] of Object.entries((value as Record<string, unknown>) ?? {})) {
        if (k.includes("\u0000"))
          return { field: name, why: "keys must not contain NUL characters" };
        const found =
          f.mapKind === "message"
            ? findUnstorable(f.message, item as Message, `${name}[${k}]`)
            : typeof item === "string" && item.includes("\u0000")
              ? { field: `${name}[${k}]`, why: "must not contain NUL characters" }
              : undefined;
        if (found) return found;
      }
      return undefined;
    default:
      return undefined;
  }
}

function refuse(found: { field: string; why: string }): ConnectError {
  return new ConnectError(`${found.field}: ${found.why}`, Code.InvalidArgument);
}

/**
 * Refuses requests carrying what no store could keep (see findUnstorable) with
 * InvalidArgument naming the field, before any handler runs: otherwise the database refuses
 * them deep inside a transaction and the caller is told the server failed.
 */
export function inputHygieneInterceptor(): Interceptor {
  return (next) => async (req) => {
    if (!req.stream) {
      const found = findUnstorable(req.method.input, req.message);
      if (found) throw refuse(found);
      return next(req);
    }
    const input = req.message;
    const desc = req.method.input;
    return next({
      ...req,
      message: (async function* () {
        for await (const m of input) {
          const found = findUnstorable(desc, m);
          if (found) throw refuse(found);
          yield m;
        }
      })(),
    });
  };
}
