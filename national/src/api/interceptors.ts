import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { principalKey } from "../auth/principal.js";
import { TokenError, type TokenVerifier } from "../auth/tokens.js";
import type { HubMetrics } from "../metrics.js";
import { toConnectError } from "./errors.js";

/**
 * Outermost: translates business refusals into Connect errors, counts requests by method and
 * code, and logs failures (server faults at error level with the cause, refusals at debug).
 */
export function observeInterceptor(log: Logger, metrics: HubMetrics): Interceptor {
  return (next) => async (req) => {
    const method = `${req.service.typeName}/${req.method.name}`;
    try {
      const res = await next(req);
      metrics.requests.inc({ method, code: "ok" });
      return res;
    } catch (err) {
      const translated = toConnectError(err);
      const ce = ConnectError.from(translated);
      const code = Code[ce.code] ?? "unknown";
      metrics.requests.inc({ method, code });
      if (ce.code === Code.Internal || ce.code === Code.Unknown) {
        log.error({ method, err }, "request failed");
      } else {
        log.debug({ method, code, message: ce.rawMessage }, "request refused");
      }
      throw translated;
    }
  };
}

/** Authenticates the caller from `Authorization: Bearer <token>` (I7: never from the body). */
export function authInterceptor(verifier: TokenVerifier): Interceptor {
  return (next) => async (req) => {
    const header = req.header.get("authorization") ?? "";
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match?.[1]) {
      throw new ConnectError(
        "missing credential: send Authorization: Bearer <token>",
        Code.Unauthenticated,
      );
    }
    try {
      req.contextValues.set(principalKey, await verifier.verify(match[1]));
    } catch (err) {
      if (err instanceof TokenError) throw new ConnectError(err.message, Code.Unauthenticated);
      throw err;
    }
    return next(req);
  };
}
