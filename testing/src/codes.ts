import { Code, ConnectError } from "@connectrpc/connect";

/** Tests only: "OK" if the call succeeded, else the name of its error code ("NotFound", …). */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "OK";
  } catch (err) {
    return Code[ConnectError.from(err).code] ?? "?";
  }
}
