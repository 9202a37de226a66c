import { Code, ConnectError } from "@connectrpc/connect";
import { LocalRefusal } from "../store/intents.js";

const LOCAL_CODES = {
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  resource_exhausted: Code.ResourceExhausted,
} as const;

/** Runs a flow, answering a local refusal with its code and the field it names. */
export async function local<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof LocalRefusal) {
      throw new ConnectError(`${err.field}: ${err.message}`, LOCAL_CODES[err.code]);
    }
    throw err;
  }
}
