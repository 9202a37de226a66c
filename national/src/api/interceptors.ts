import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import {
  databaseUnavailable,
  type Principal,
  peerKey,
  principalKey,
  TokenError,
  type TokenVerifier,
} from "@evc-interop/runtime";
import type { Logger } from "pino";
import type { HubMetrics } from "../metrics.js";
import { toConnectError } from "./errors.js";

/**
 * Outermost: translates business refusals into Connect errors (and a database that refuses
 * connections or cannot be reached into Unavailable), counts requests by method and code, and
 * logs failures (server faults at error level with the cause, an unavailable database at warn,
 * refusals at debug).
 */
export function observeInterceptor(log: Logger, metrics: HubMetrics): Interceptor {
  return (next) => async (req) => {
    const method = `${req.service.typeName}/${req.method.name}`;
    const failed = (err: unknown): unknown => {
      const down = databaseUnavailable(err);
      const translated = down ?? toConnectError(err);
      const ce = ConnectError.from(translated);
      const code = Code[ce.code] ?? "unknown";
      metrics.requests.inc({ method, code });
      if (ce.code === Code.Internal || ce.code === Code.Unknown) {
        log.error({ method, err }, "request failed");
      } else if (down) {
        log.warn(
          { method, reason: down.rawMessage },
          "request failed: the database is unavailable",
        );
      } else {
        log.debug({ method, code, message: ce.rawMessage }, "request refused");
      }
      return translated;
    };
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await next(req);
    } catch (err) {
      throw failed(err);
    }
    if (!res.stream) {
      metrics.requests.inc({ method, code: "ok" });
      return res;
    }
    // A server stream fails while it is read (StreamSnapshot's pages): its errors pass here too.
    const messages = res.message;
    async function* observed() {
      try {
        yield* messages;
      } catch (err) {
        throw failed(err);
      }
      metrics.requests.inc({ method, code: "ok" });
    }
    return { ...res, message: observed() };
  };
}

/** Authenticates the caller from `Authorization: Bearer <token>` (I7: never from the body). */
export function authInterceptor(verifier: TokenVerifier, mutualTls = false): Interceptor {
  return (next) => async (req) => {
    const header = req.header.get("authorization") ?? "";
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match?.[1]) {
      throw new ConnectError(
        "missing credential: send Authorization: Bearer <token>",
        Code.Unauthenticated,
      );
    }
    let principal: Principal;
    try {
      principal = await verifier.verify(match[1]);
    } catch (err) {
      if (err instanceof TokenError) throw new ConnectError(err.message, Code.Unauthenticated);
      throw err;
    }
    // Mutual TLS binds the connection to the credential: the client certificate's CN must be
    // the token's subject, so a stolen token is useless without its holder's certificate.
    const peer = req.contextValues.get(peerKey);
    if (mutualTls && peer === undefined)
      throw new ConnectError("mutual TLS: no verified client certificate", Code.Unauthenticated);
    if (peer !== undefined && peer !== principal.subject)
      throw new ConnectError(
        `the client certificate is ${peer}'s, the token is ${principal.subject}'s`,
        Code.PermissionDenied,
      );
    req.contextValues.set(principalKey, principal);
    return next(req);
  };
}
