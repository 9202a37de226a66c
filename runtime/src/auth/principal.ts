import { createContextKey } from "@connectrpc/connect";

/** Who is calling, as established by the credential alone (I7). */
export type Principal =
  | { kind: "province"; code: string; subject: string }
  /** A national operator: reads everything and acts on stuck work (operator:<name>). */
  | { kind: "operator"; name: string; subject: string }
  /**
   * A national viewer: watches the system (migrations, directives, log verification) and can
   * neither act nor read a person's data (viewer:<name>).
   */
  | { kind: "viewer"; name: string; subject: string };

/** Per-request principal, set by the authentication interceptor. */
export const principalKey = createContextKey<Principal | undefined>(undefined, {
  description: "authenticated caller",
});

export function describePrincipal(p: Principal): string {
  return p.kind === "province" ? `province ${p.code}` : `${p.kind} ${p.name}`;
}
