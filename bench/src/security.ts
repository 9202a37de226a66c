import { randomBytes } from "node:crypto";
import { identityToJson, newDataKey, openIdentities, sealIdentities } from "@evc-interop/national";
import { DirectiveVerifier, generateSigningKey, syntheticIdentity } from "@evc-interop/runtime";
import { type Figure, figure } from "./measure.js";
import { progress, ROUNDS, rounds } from "./settings.js";

/**
 * What the protections that must cost cost, each on its own line, so that none is mistaken for
 * waste in the end-to-end figures: the hub signs every directive (Ed25519) and each province
 * verifies it; the hub seals every identity it writes into its event log (AES-256-GCM under the
 * person's data key, for crypto-shredding). Per migration: three directives (suspend, activate,
 * complete), two events carrying the identity (MigrationRequested, SourceSuspended).
 */
export const PER_MIGRATION = { signatures: 3, verifications: 3, sealings: 2 };

const ITERATIONS = 5_000;

/** Microseconds per call of `fn`, after as many calls untimed (the compiler's warm-up). */
function microseconds(fn: (i: number) => void): number {
  for (let i = 0; i < ITERATIONS; i++) fn(i);
  const start = performance.now();
  for (let i = 0; i < ITERATIONS; i++) fn(i);
  return ((performance.now() - start) * 1000) / ITERATIONS;
}

export async function securityFigures(): Promise<Figure[]> {
  progress("security: signing, verifying, sealing");
  const signer = generateSigningKey("bench");
  const verifier = new DirectiveVerifier({ keys: [signer.publicJwk()] });
  // A directive of the size the hub publishes for a migration's activation with a few doses.
  const payload = randomBytes(600);
  const header = signer.sign(payload);
  const key = newDataKey();
  const data = { identity: identityToJson(syntheticIdentity()), recordId: "r1", target: "510000" };
  const sealed = sealIdentities(data, key, "person-key");
  const sign = await rounds("Ed25519 directive signature, us", ROUNDS, async () =>
    microseconds(() => signer.sign(payload)),
  );
  const verify = await rounds("Ed25519 directive verification, us", ROUNDS, async () =>
    microseconds(() => {
      if (!verifier.verify(payload, header).ok) throw new Error("bench: signature refused");
    }),
  );
  const seal = await rounds("identity sealing (AES-256-GCM), us", ROUNDS, async () =>
    microseconds((i) => sealIdentities(data, key, `person-${i}`)),
  );
  const open = await rounds("identity opening, us", ROUNDS, async () =>
    microseconds(() => openIdentities(sealed, key, "person-key")),
  );
  const perMigration = sign.map(
    (s, i) =>
      (PER_MIGRATION.signatures * s +
        PER_MIGRATION.verifications * (verify[i] ?? 0) +
        PER_MIGRATION.sealings * (seal[i] ?? 0)) /
      1000,
  );
  return [
    figure("sec_sign", "Security: Ed25519 signature of a directive at the hub", "µs", sign),
    figure(
      "sec_verify",
      "Security: Ed25519 verification of a directive at a province",
      "µs",
      verify,
    ),
    figure(
      "sec_seal",
      "Security: sealing an identity in an event (AES-256-GCM, crypto-shredding)",
      "µs",
      seal,
    ),
    figure("sec_open", "Security: opening a sealed identity (replay, audit)", "µs", open),
    figure(
      "sec_migration",
      `Security per completed migration: ${PER_MIGRATION.signatures} signatures, ${PER_MIGRATION.verifications} verifications, ${PER_MIGRATION.sealings} sealings`,
      "ms CPU",
      perMigration,
    ),
  ];
}
