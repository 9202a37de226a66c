import { createContextKey } from "@connectrpc/connect";

/** Who is calling, as established by the credential alone (I7). */
export type Principal =
  | { kind: "province"; code: string; subject: string }
  | { kind: "operator"; name: string; subject: string };

/** Per-request principal, set by the authentication interceptor. */
export const principalKey = createContextKey<Principal | undefined>(undefined, {
  description: "authenticated caller",
});

export function describePrincipal(p: Principal): string {
  return p.kind === "province" ? `province ${p.code}` : `operator ${p.name}`;
}
