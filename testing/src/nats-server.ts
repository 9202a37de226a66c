import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@evc-interop/runtime";

/** A private nats-server with JetStream (e.g. with per-province users), on a free port. */
export interface PrivateNats {
  url: string;
  stop(): Promise<void>;
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = tcpConnect(port, "127.0.0.1", () => {
        c.end();
        resolve(true);
      });
      c.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`nats-server did not listen on ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts `nats-server` from PATH with JetStream in a temporary directory and `extraConfig`. */
export async function startNatsServer(extraConfig = ""): Promise<PrivateNats> {
  const dir = mkdtempSync(join(tmpdir(), "evc-nats-"));
  const port = await freePort();
  const conf = join(dir, "nats.conf");
  writeFileSync(
    conf,
    `listen: 127.0.0.1:${port}\njetstream { store_dir: ${JSON.stringify(join(dir, "js"))} }\n${extraConfig}`,
  );
  const child: ChildProcess = spawn("nats-server", ["-c", conf], { stdio: "ignore" });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    await waitForPort(port, 10_000);
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    async stop() {
      child.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A cluster of `size` private nats-servers with JetStream (named n1…), routed to each other;
 * `url` names every node. Returns once JetStream answers (its meta leader elected).
 */
export async function startNatsCluster(size = 3): Promise<PrivateNats> {
  const routes = await Promise.all(Array.from({ length: size }, () => freePort()));
  const urls = routes.map((r) => `nats-route://127.0.0.1:${r}`).join(", ");
  const nodes = await Promise.all(
    routes.map((route, i) =>
      startNatsServer(
        `server_name: n${i + 1}\ncluster { name: evc-test, listen: 127.0.0.1:${route}, routes: [${urls}] }\n`,
      ),
    ),
  );
  const url = nodes.map((n) => n.url).join(",");
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  };
  const { connect } = await import("@nats-io/transport-node");
  const { jetstreamManager } = await import("@nats-io/jetstream");
  const end = Date.now() + 30_000;
  for (;;) {
    const nc = await connect({ servers: url.split(",") });
    try {
      await (await jetstreamManager(nc, { timeout: 2000 })).getAccountInfo();
      break;
    } catch (err) {
      if (Date.now() > end) {
        await stop();
        throw new Error(`the NATS cluster's JetStream did not come up: ${String(err)}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    } finally {
      await nc.close();
    }
  }
  return { url, stop };
}
