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

/** Tests only: the error a call failed with (as a ConnectError), or undefined if it succeeded. */
export async function errorOf(p: Promise<unknown>): Promise<ConnectError | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return ConnectError.from(err);
  }
}
