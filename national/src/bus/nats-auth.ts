import { type BusLayout, provinceConsumer, provinceSubject } from "./stream.js";

/** A NATS user of the directive bus. */
export interface BusUser {
  user: string;
  password: string;
  /** Province code, or undefined for the hub (full access to the account). */
  province?: string;
}

function quote(s: string): string {
  return JSON.stringify(s);
}

/**
 * The reply-subject prefix a province's NATS client uses (its `inboxPrefix`): with the shared
 * `_INBOX.>` a province allowed to subscribe there would receive every other province's pulled
 * directives (replies to their fetch requests travel on inbox subjects).
 */
export function provinceInbox(province: string): string {
  return `_INBOX_${province}`;
}

/**
 * The NATS authorization block that enforces I7 on the bus: the hub may do anything in the
 * account; a province may only read its own durable consumer (fetch, ack, info) and use its
 * reply inbox (provinceInbox). It cannot subscribe to another province's subject, read another province's
 * consumer, or create consumers at all (the hub provisions them).
 */
export function natsAccountsConfig(layout: BusLayout, users: BusUser[], account = "EVC"): string {
  const lines = users.map((u) => {
    if (!u.province) return `      { user: ${quote(u.user)}, password: ${quote(u.password)} }`;
    const consumer = provinceConsumer(u.province);
    const publish = [
      `$JS.API.CONSUMER.INFO.${layout.stream}.${consumer}`,
      `$JS.API.CONSUMER.MSG.NEXT.${layout.stream}.${consumer}`,
      `$JS.ACK.${layout.stream}.${consumer}.>`,
      `$JS.API.STREAM.INFO.${layout.stream}`,
    ];
    return [
      `      { user: ${quote(u.user)}, password: ${quote(u.password)}, permissions: {`,
      `          publish: { allow: [${publish.map(quote).join(", ")}] }`,
      `          subscribe: { allow: [${quote(`${provinceInbox(u.province)}.>`)}] }`,
      `          # delivers on ${provinceSubject(layout, u.province)} via ${consumer} only`,
      "      } }",
    ].join("\n");
  });
  return [
    "accounts {",
    `  ${account} {`,
    "    jetstream: enabled",
    "    users: [",
    lines.join(",\n"),
    "    ]",
    "  }",
    "}",
    "",
  ].join("\n");
}
