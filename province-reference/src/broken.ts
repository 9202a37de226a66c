/**
 * Deliberately broken behaviours, for the conformance kit's self-test only: each is one
 * realistic bug the kit must catch (its mutation score). Selected with EVC_BROKEN; never set
 * it in a real deployment.
 */
export const BROKEN_VARIANTS = [
  "no-dedupe",
  "ack-before-commit",
  "suspend-ignored",
  "issue-before-suspend-receipt",
  "accept-other-province",
  "wrong-receipt-outcome",
  "reconcile-never-repairs",
  "watch-never-pushes",
] as const;

export type BrokenVariant = (typeof BROKEN_VARIANTS)[number];

export function parseBroken(raw: string | undefined): BrokenVariant | undefined {
  if (!raw) return undefined;
  if (!(BROKEN_VARIANTS as readonly string[]).includes(raw)) {
    throw new Error(`EVC_BROKEN must be one of ${BROKEN_VARIANTS.join(", ")}, got "${raw}"`);
  }
  return raw as BrokenVariant;
}
