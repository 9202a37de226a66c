import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Cluster } from "./cluster.js";
import type { Random } from "./random.js";

const run = promisify(execFile);

/**
 * What a drill does to the system while its load runs: kill -9 one process (the hub, a
 * province, nats-server), or put a province back in time — its database restored from a
 * backup taken when the drill began, or lost altogether (#28). Either way the process is
 * started again, as an operator would after the runbook's restore.
 */
export type Fault =
  | { kind: "kill"; target: string }
  | { kind: "restore"; province: string }
  | { kind: "lose"; province: string };

/** Three kills for each restore and each lost database. */
export function pickFault(rnd: Random, provinces: readonly string[]): Fault {
  const kind = rnd.pick(["kill", "kill", "kill", "restore", "lose"] as const);
  if (kind === "kill")
    return {
      kind,
      target: rnd.pick(["hub", "nats-server", ...provinces.map((c) => `province ${c}`)]),
    };
  return { kind, province: rnd.pick(provinces) };
}

export function faultName(f: Fault): string {
  switch (f.kind) {
    case "kill":
      return `kill -9 ${f.target}`;
    case "restore":
      return `restore province ${f.province} from an older backup`;
    case "lose":
      return `lose province ${f.province}'s database`;
  }
}

const schemaOf = (province: string) => `evc_province_${province}`;

/**
 * A fault ready to strike: for a restore, the backup is taken now (pg_dump of the province's
 * schema, as its operator would), before the drill's load changes anything.
 */
export async function prepare(cluster: Cluster, f: Fault, dir: string) {
  let backup: string | undefined;
  if (f.kind === "restore") {
    backup = join(dir, `backup-${f.province}.dump`);
    await run("pg_dump", ["-Fc", "-n", schemaOf(f.province), "-f", backup, cluster.databaseUrl]);
  }
  return {
    /** Kills the process; a province's database is then restored or dropped while it is down. */
    async strike(): Promise<void> {
      if (f.kind === "kill") {
        await processOf(cluster, f.target).kill9();
        return;
      }
      await processOf(cluster, `province ${f.province}`).kill9();
      if (f.kind === "restore" && backup) {
        await run("pg_restore", ["--clean", "--if-exists", "-d", cluster.databaseUrl, backup]);
      } else {
        await run("psql", [
          cluster.databaseUrl,
          "-qc",
          `DROP SCHEMA IF EXISTS ${schemaOf(f.province)} CASCADE`,
        ]);
      }
    },
  };
}

function processOf(cluster: Cluster, target: string) {
  const p =
    target === "hub"
      ? cluster.hub
      : target === "nats-server"
        ? cluster.nats
        : cluster.provinces.get(target.slice("province ".length));
  if (!p) throw new Error(`no process ${target}`);
  return p;
}
