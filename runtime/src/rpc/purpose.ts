import { Code, ConnectError } from "@connectrpc/connect";

const PURPOSE = /^[a-z0-9][a-z0-9:._-]{0,63}$/;

/**
 * What a read of person-level data is for, from the caller's `evc-purpose` header (written to
 * the access log with the read); `fallback` if the caller sent none; InvalidArgument naming the
 * header if it is malformed.
 */
export function purposeOf(headers: Headers, fallback: string): string {
  const given = headers.get("evc-purpose");
  if (given === null) return fallback;
  if (!PURPOSE.test(given))
    throw new ConnectError(
      "evc-purpose: 1 to 64 of a-z 0-9 : . _ - (e.g. school-entry)",
      Code.InvalidArgument,
    );
  return given;
}
