import { readFile } from "node:fs/promises";
import { Code, ConnectError, createContextKey, type Interceptor } from "@connectrpc/connect";
import { AccessLogService } from "@evc-interop/gen/evc/province/v1/access_log_service_pb";
import { ClinicService } from "@evc-interop/gen/evc/province/v1/clinic_service_pb";
import { ProvinceService } from "@evc-interop/gen/evc/province/v1/province_service_pb";
import {
  ConfigError,
  purposeOf,
  readerAudience,
  SCOPE_ACCESS_LOG,
  SCOPE_HOLDER,
  SCOPE_RECORDS,
  SCOPE_WRITE,
} from "@evc-interop/runtime";
import { createLocalJWKSet, type JSONWebKeySet, jwtVerify } from "jose";
import type { RateLimiter } from "./rate-limit.js";

/**
 * The phone tier's access model (documented in province_service.proto): reads by certificate
 * number are open; reads by identity, full records and the access log need a reader token —
 * a JWT signed (EdDSA) by a token issuer the province trusts, for audience
 * `evc-province:<code>`, with the caller in `sub` and what it may do in `scope`.
 */

/** The oldest a reader token may be (from its iat), whatever its exp says. */
const MAX_TOKEN_AGE_S = 15 * 60;

/** A verified phone-tier caller. */
export interface Reader {
  caller: string;
  scopes: ReadonlySet<string>;
  /** The one record a holder token may read. */
  holderRecord?: string;
  /** What for (header `evc-purpose`, default the first scope). */
  purpose: string;
}

export const readerKey = createContextKey<Reader | undefined>(undefined, {
  description: "the verified phone-tier caller",
});

/** Methods that read person-level data or write, so need a token, and the scopes that may. */
const GUARDED = new Map<string, readonly string[]>([
  [`${ProvinceService.typeName}/GetCertificateStatusByIdentity`, [SCOPE_RECORDS, SCOPE_HOLDER]],
  [`${ProvinceService.typeName}/GetRecord`, [SCOPE_RECORDS, SCOPE_HOLDER]],
  [`${AccessLogService.typeName}/ListReads`, [SCOPE_ACCESS_LOG]],
  ...ClinicService.methods.map((m): [string, string[]] => [
    `${ClinicService.typeName}/${m.name}`,
    [SCOPE_WRITE],
  ]),
]);

/** Methods open to anyone, which still learn who the caller is if a token is sent. */
const OPEN = new Set([
  `${ProvinceService.typeName}/GetCertificateStatus`,
  `${ProvinceService.typeName}/WatchCertificate`,
]);

export class ReaderTokenError extends Error {}

/** Verifies reader tokens against the trusted issuers' keys (none: every token is refused). */
export class ReaderVerifier {
  private jwks: ReturnType<typeof createLocalJWKSet> | undefined;

  constructor(
    trust: JSONWebKeySet | undefined,
    private readonly provinceCode: string,
    private readonly clock: () => number = Date.now,
  ) {
    this.setTrust(trust);
  }

  /** Replaces the trusted issuers' keys: a key removed is refused from the next call on. */
  setTrust(trust: JSONWebKeySet | undefined): void {
    this.jwks = trust && trust.keys.length > 0 ? createLocalJWKSet(trust) : undefined;
  }

  async verify(token: string): Promise<Omit<Reader, "purpose">> {
    if (!this.jwks)
      throw new ReaderTokenError(
        "this province trusts no reader token issuer (EVC_READER_KEYS is not set up)",
      );
    let payload: Awaited<ReturnType<typeof jwtVerify>>["payload"];
    try {
      ({ payload } = await jwtVerify(token, this.jwks, {
        audience: readerAudience(this.provinceCode),
        algorithms: ["EdDSA", "ES256"],
        maxTokenAge: MAX_TOKEN_AGE_S,
        requiredClaims: ["exp", "iat", "sub"],
        currentDate: new Date(this.clock()),
      }));
    } catch (err) {
      throw new ReaderTokenError(
        `invalid reader token: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    const caller = payload.sub ?? "";
    if (caller.length === 0 || caller.length > 128)
      throw new ReaderTokenError("invalid reader token: sub must be 1 to 128 characters");
    const scopes = new Set(
      (typeof payload.scope === "string" ? payload.scope : "").split(" ").filter(Boolean),
    );
    const record = payload.evc_record;
    if (scopes.has(SCOPE_HOLDER) && (typeof record !== "string" || record.length === 0))
      throw new ReaderTokenError(`invalid reader token: scope ${SCOPE_HOLDER} needs evc_record`);
    return {
      caller,
      scopes,
      ...(typeof record === "string" && record ? { holderRecord: record } : {}),
    };
  }
}

/** The trusted issuers' keys from a JWKS file; undefined if there is no such file. */
export async function loadReaderKeys(file: string): Promise<JSONWebKeySet | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new ConfigError(`cannot read reader keys ${file} (EVC_READER_KEYS): ${String(err)}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`reader keys ${file} (EVC_READER_KEYS) is not JSON: ${String(err)}`);
  }
  const keys = (parsed as { keys?: unknown }).keys;
  if (!Array.isArray(keys))
    throw new ConfigError(`reader keys ${file} (EVC_READER_KEYS) is not a JWKS ({"keys": [...]})`);
  return parsed as JSONWebKeySet;
}

function bearerOf(header: string | null): string | undefined {
  return /^Bearer\s+(\S+)$/i.exec(header ?? "")?.[1];
}

/**
 * Authenticates phone-tier callers: a guarded method without a valid token is Unauthenticated;
 * every authenticated caller is rate-limited (ResourceExhausted). Open methods need no token.
 */
export function readerAuthInterceptor(verifier: ReaderVerifier, limiter: RateLimiter): Interceptor {
  return (next) => async (req) => {
    const method = `${req.service.typeName}/${req.method.name}`;
    const guarded = GUARDED.get(method);
    if (!guarded && !OPEN.has(method)) return next(req);
    const token = bearerOf(req.header.get("authorization"));
    if (!token) {
      if (!guarded) return next(req);
      throw new ConnectError(
        `${req.method.name} needs a reader token: send Authorization: Bearer <token>`,
        Code.Unauthenticated,
      );
    }
    let verified: Omit<Reader, "purpose">;
    try {
      verified = await verifier.verify(token);
    } catch (err) {
      if (err instanceof ReaderTokenError)
        throw new ConnectError(err.message, Code.Unauthenticated);
      throw err;
    }
    // Authorization before validation: a caller who may not call this learns nothing from it.
    if (guarded && !guarded.some((scope) => verified.scopes.has(scope)))
      throw new ConnectError(
        `${req.method.name} needs a token with scope ${guarded.join(" or ")}`,
        Code.PermissionDenied,
      );
    const purpose = purposeOf(req.header, [...verified.scopes][0] ?? "unspecified");
    const wait = limiter.take(verified.caller);
    if (wait > 0)
      throw new ConnectError(
        `caller ${verified.caller}: read rate exceeded; retry in ${Math.ceil(wait / 1000)} s`,
        Code.ResourceExhausted,
      );
    req.contextValues.set(readerKey, { ...verified, purpose });
    return next(req);
  };
}
