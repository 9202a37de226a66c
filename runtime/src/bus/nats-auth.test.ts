import { describe, expect, it } from "vitest";
import { natsCredentials, newNkeyUser } from "./nats-auth.js";

describe("NATS credentials", () => {
  it("are required: none is a configuration error unless anonymity is asked for", () => {
    expect(() => natsCredentials({ natsUser: "", natsPassword: "" })).toThrow(
      /no NATS credential: set EVC_NATS_NKEY_SEED .* EVC_NATS_ANONYMOUS=1/,
    );
    expect(natsCredentials({ natsUser: "", natsPassword: "", natsAnonymous: true })).toEqual({});
  });

  it("prefer an NKey to a password", () => {
    const { seed } = newNkeyUser();
    const c = natsCredentials({ natsUser: "u", natsPassword: "p", natsNkeySeed: seed });
    expect(c.authenticator).toBeTypeOf("function");
    expect(c.user).toBeUndefined();
    expect(natsCredentials({ natsUser: "u", natsPassword: "p" })).toEqual({ user: "u", pass: "p" });
  });
});
