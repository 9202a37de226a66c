import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { BusUser } from "@evc-interop/runtime";

/** The bus users `npm run credentials` made (nats-users.json), all and by user name. */
export function busUsers(credentialsDir: string): {
  all: BusUser[];
  of: (user: string) => { natsNkeySeed: string };
} {
  const all = JSON.parse(
    readFileSync(join(credentialsDir, "nats-users.json"), "utf8"),
  ) as BusUser[];
  return {
    all,
    of: (name) => {
      const u = all.find((x) => x.user === name);
      if (!u) throw new Error(`${credentialsDir}/nats-users.json has no user ${name}`);
      if (!u.seedFile) throw new Error(`${credentialsDir}/nats-users.json: ${name} has no NKey`);
      return { natsNkeySeed: readFileSync(u.seedFile, "utf8").trim() };
    },
  };
}
