import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";

/**
 * SQLSTATEs of a PostgreSQL that cannot serve right now (the caller should retry later, as
 * with any Unavailable): class 08 (connection exceptions), too_many_connections (53300: the
 * server's or the role's limit), and the server shutting down or starting (57P01-57P03).
 */
const UNAVAILABLE_SQLSTATES = /^(08...|53300|57P0[123])$/;

/** Codes of postgres.js and of Node.js for a connection that could not be made or was lost. */
const UNAVAILABLE_CONNECTION_CODES = new Set([
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECTION_ENDED",
  "ECONNREFUSED",
  "ECONNRESET",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "EPIPE",
  "ETIMEDOUT",
]);

/** System calls of an open socket whose failure means the connection was lost. */
const SOCKET_CALLS = new Set(["read", "write"]);

/** The reason `err` says the database cannot serve, if it does. */
function unavailableReason(err: unknown): string | undefined {
  if (!(err instanceof Error) || !("code" in err) || typeof err.code !== "string") return undefined;
  // A PostgreSQL server's refusal (postgres.js PostgresError, with the SQLSTATE as code) ...
  if (err.name === "PostgresError")
    return UNAVAILABLE_SQLSTATES.test(err.code) ? err.code : undefined;
  // ... or a connection that failed: postgres.js and Node.js both give the server's address
  // when connecting; a pooled connection the server dropped fails its next read or write on
  // the socket (seen: "read ECONNRESET" from a query, after the server terminated it).
  const onSocket = "address" in err || ("syscall" in err && SOCKET_CALLS.has(String(err.syscall)));
  if (onSocket && UNAVAILABLE_CONNECTION_CODES.has(err.code)) return err.code;
  return undefined;
}

/**
 * When `err` (or what caused it) says the database cannot be reached or refuses connections,
 * the Unavailable error to answer with, naming the reason and never the query; else undefined.
 * A refused connection is the server's limit, not a fault of the request or of this program:
 * `Internal` would tell a client not to retry, and hide from operators what to fix.
 */
export function databaseUnavailable(err: unknown): ConnectError | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e !== undefined && e !== null; depth++) {
    const code = unavailableReason(e);
    if (code) {
      return new ConnectError(
        `the database is unavailable (${code}); try again later`,
        Code.Unavailable,
        undefined,
        undefined,
        err,
      );
    }
    e = e instanceof Error ? e.cause : undefined;
  }
  return undefined;
}

/**
 * Answers Unavailable when a handler failed because the database is unavailable, after telling
 * `onUnavailable` (to log it: method and reason, never the request).
 */
export function databaseUnavailableInterceptor(
  onUnavailable: (method: string, reason: string) => void,
): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (err) {
      const down = databaseUnavailable(err);
      if (!down) throw err;
      onUnavailable(`${req.service.typeName}/${req.method.name}`, down.rawMessage);
      throw down;
    }
  };
}
