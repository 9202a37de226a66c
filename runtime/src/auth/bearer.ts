import type { Interceptor } from "@connectrpc/connect";

/**
 * Adds `Authorization: Bearer <token>` to every call: a fixed token (a control API's), or one
 * asked for per call (a TokenSigner's, which reuses a token until shortly before it expires).
 */
export function bearer(token: string | (() => string | Promise<string>)): Interceptor {
  return (next) => async (req) => {
    req.header.set("authorization", `Bearer ${typeof token === "string" ? token : await token()}`);
    return next(req);
  };
}
