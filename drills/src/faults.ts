import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Cluster } from "./cluster.js";
import type { Random } from "./random.js";

const run = promisify(execFile);

/**
 * What a drill does to the system while its load runs: kill -9 one process (the hub, a
 * province, nats-server), or put a province back in time — its database restored from a
 * backup taken when the drill began, or lost altogether — or the hub (#28). Either way the
 * process is started again, as an operator would after the runbook's restore.
 */
export type Fault =
  | { kind: "kill"; target: string }
  | { kind: "restore"; province: string }
  | { kind: "lose"; province: string }
  | { kind: "restore-hub" };

/** Three kills for each province restore, each lost database and each hub restore. */
export function pickFault(rnd: Random, provinces: readonly string[]): Fault {
  const kind = rnd.pick(["kill", "kill", "kill", "restore", "lose", "restore-hub"] as const);
  if (kind === "kill")
    return {
      kind,
      target: rnd.pick(["hub", "nats-server", ...provinces.map((c) => `province ${c}`)]),
    };
  if (kind === "restore-hub") return { kind };
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
    case "restore-hub":
      return "restore the hub from an older backup";
  }
}

const schemaOf = (province: string) => `evc_province_${province}`;
const HUB_SCHEMA = "evc_hub";
/** How long the hub's sealer may take to seal (and pin) what the load did since the backup. */
const SEAL_WAIT_MS = 10_000;

/**
 * A fault ready to strike: for a restore, the backup is taken now (pg_dump of the province's
 * schema, as its operator would), before the drill's load changes anything.
 */
export async function prepare(cluster: Cluster, f: Fault, dir: string) {
  let backup: string | undefined;
  const dump = async (schema: string, file: string) =>
    run("pg_dump", ["-Fc", "-n", schema, "-f", file, cluster.databaseUrl]);
  if (f.kind === "restore") {
    backup = join(dir, `backup-${f.province}.dump`);
    await dump(schemaOf(f.province), backup);
  } else if (f.kind === "restore-hub") {
    backup = join(dir, "backup-hub.dump");
    await dump(HUB_SCHEMA, backup);
  }
  /** The hub's sealed chain head and its last event, now. */
  const hubHead = async () => {
    const { stdout } = await run("psql", [
      cluster.databaseUrl,
      "-Atc",
      `SELECT coalesce((SELECT max(seq) FROM ${HUB_SCHEMA}.event_chain), 0) || ' ' ||
              coalesce((SELECT max(position) FROM ${HUB_SCHEMA}.events), 0)`,
    ]);
    const [sealed = 0, events = 0] = stdout.trim().split(" ").map(Number);
    return { sealed, events };
  };
  const backedUp = f.kind === "restore-hub" ? await hubHead() : undefined;
  const restore = (file: string) =>
    run("pg_restore", ["--clean", "--if-exists", "-d", cluster.databaseUrl, file]);
  return {
    /**
     * Kills the process; a province's database is then restored or dropped while it is down.
     * The hub's is restored from the older backup, the hub started on it and seen fenced (or
     * not: the result), then the runbook's answer — its newest state restored — before it
     * starts again for good.
     */
    async strike(): Promise<"fenced" | "not fenced" | "nothing to detect" | undefined> {
      if (f.kind === "kill") {
        await processOf(cluster, f.target).kill9();
        return undefined;
      }
      if (f.kind === "restore-hub") {
        if (!backup || !backedUp) throw new Error("no backup of the hub was taken");
        // The pin follows the sealer (about a second behind): the hub is struck once what the
        // load did since the backup is pinned (evc_hub_chain_pin), or when the wait is over.
        const end = Date.now() + SEAL_WAIT_MS;
        while ((await pinned(cluster)) <= backedUp.sealed && Date.now() < end)
          await new Promise((r) => setTimeout(r, 200));
        await cluster.hub.kill9();
        const newest = join(dir, "newest-hub.dump");
        await dump(HUB_SCHEMA, newest);
        await restore(backup);
        await cluster.hub.start();
        const ready = await fetch(`${cluster.hubUrl}/readyz`).then((r) => r.text());
        await cluster.hub.kill9();
        await restore(newest);
        if (/^fenced: /m.test(ready)) return "fenced";
        return (await hubHead()).events > backedUp.events ? "not fenced" : "nothing to detect";
      }
      await processOf(cluster, `province ${f.province}`).kill9();
      if (f.kind === "restore" && backup) {
        await restore(backup);
      } else {
        await run("psql", [
          cluster.databaseUrl,
          "-qc",
          `DROP SCHEMA IF EXISTS ${schemaOf(f.province)} CASCADE`,
        ]);
      }
      return undefined;
    },
  };
}

/** The chain sequence the hub says it pinned (its metric), 0 when it cannot be read. */
async function pinned(cluster: Cluster): Promise<number> {
  const text = await fetch(`${cluster.hubUrl}/metrics`)
    .then((r) => r.text())
    .catch(() => "");
  return Number(/^evc_hub_chain_pin (\d+)$/m.exec(text)?.[1] ?? 0);
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
