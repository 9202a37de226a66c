import { importJWK, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { AUDIENCE, generateCredential, TokenSigner, TokenVerifier } from "./tokens.js";

/** A token as a province could mint it, with an iat and an exp of its choosing. */
async function token(privateJwk: Parameters<typeof importJWK>[0], iatS: number, expS: number) {
  return new SignJWT({})
    .setProtectedHeader({ alg: "EdDSA", kid: "province:110000", typ: "JWT" })
    .setSubject("province:110000")
    .setAudience(AUDIENCE)
    .setIssuedAt(iatS)
    .setExpirationTime(expS)
    .sign(await importJWK(privateJwk, "EdDSA"));
}

describe("token verification", () => {
  it("refuses a token past the 15-minute maximum age even after it was cached, whatever its exp", async () => {
    const { credential, publicJwk } = await generateCredential("province:110000");
    let now = Date.UTC(2026, 0, 1, 8, 0, 0);
    const verifier = new TokenVerifier({ keys: [publicJwk] }, () => now);
    const t = await token(credential.privateJwk, now / 1000, now / 1000 + 3600);
    expect((await verifier.verify(t)).subject).toBe("province:110000");
    now += 14 * 60 * 1000;
    expect((await verifier.verify(t)).subject).toBe("province:110000");
    now += 2 * 60 * 1000;
    await expect(verifier.verify(t)).rejects.toThrow(/invalid token/);
  });

  it("refuses an expired token and one for another audience", async () => {
    const { credential, publicJwk } = await generateCredential("province:110000");
    const now = Date.UTC(2026, 0, 1, 8, 0, 0);
    const verifier = new TokenVerifier({ keys: [publicJwk] }, () => now);
    const expired = await token(credential.privateJwk, now / 1000 - 600, now / 1000 - 1);
    await expect(verifier.verify(expired)).rejects.toThrow(/invalid token/);
    const other = await new SignJWT({})
      .setProtectedHeader({ alg: "EdDSA", kid: "province:110000" })
      .setSubject("province:110000")
      .setAudience("another-service")
      .setIssuedAt(now / 1000)
      .setExpirationTime(now / 1000 + 60)
      .sign(await importJWK(credential.privateJwk, "EdDSA"));
    await expect(verifier.verify(other)).rejects.toThrow(/invalid token/);
  });

  it("accepts a rotated key beside the old one, and refuses a removed key at once, cached tokens too", async () => {
    const old = await generateCredential("province:110000");
    const rotated = await generateCredential("province:110000");
    const newJwk = { ...rotated.credential.privateJwk, kid: "province:110000#2" };
    const newPub = { ...rotated.publicJwk, kid: "province:110000#2" };
    const verifier = new TokenVerifier({ keys: [old.publicJwk, newPub] });
    const oldToken = await new TokenSigner(old.credential).token();
    const newToken = await new TokenSigner({
      subject: "province:110000",
      privateJwk: newJwk,
    }).token();
    expect((await verifier.verify(oldToken)).subject).toBe("province:110000");
    expect((await verifier.verify(newToken)).subject).toBe("province:110000");
    verifier.setTrust({ keys: [newPub] });
    await expect(verifier.verify(oldToken)).rejects.toThrow(/invalid token/);
    expect((await verifier.verify(newToken)).subject).toBe("province:110000");
  });

  it("refuses a key id that names another subject", async () => {
    const { credential, publicJwk } = await generateCredential("province:110000");
    const pub = { ...publicJwk, kid: "province:440000#2" };
    const verifier = new TokenVerifier({ keys: [pub] });
    const t = await new TokenSigner({
      subject: "province:110000",
      privateJwk: { ...credential.privateJwk, kid: "province:440000#2" },
    }).token();
    await expect(verifier.verify(t)).rejects.toThrow(/does not match its key/);
  });
});
