import type { ServerResponse } from "node:http";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { Sql } from "postgres";
import type { Registry } from "prom-client";

/** How long a readiness probe waits for PostgreSQL or NATS to answer. */
const PROBE_MS = 2000;

function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("timeout")), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** What keeps a process from serving: empty when PostgreSQL and NATS both answer. */
export async function readinessProblems(sql: Sql, nc: NatsConnection): Promise<string[]> {
  const problems: string[] = [];
  try {
    await within(sql`SELECT 1`.execute(), PROBE_MS);
  } catch (err) {
    problems.push(`postgresql: ${String(err)}`);
  }
  try {
    if (nc.isClosed()) throw new Error("connection closed");
    await within(nc.flush(), PROBE_MS);
  } catch (err) {
    problems.push(`nats: ${String(err)}`);
  }
  return problems;
}

export interface OpsEndpoints {
  readiness: () => Promise<string[]>;
  registry: Registry;
  log: Logger;
}

/**
 * Serves `/healthz` (the process runs), `/readyz` (200, or 503 with one problem a line) and
 * `/metrics` (Prometheus text); anything else is 404.
 */
export async function serveOps(ops: OpsEndpoints, url: string, res: ServerResponse): Promise<void> {
  const path = url.split("?")[0];
  try {
    if (path === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    } else if (path === "/readyz") {
      const problems = await ops.readiness();
      res
        .writeHead(problems.length === 0 ? 200 : 503, { "content-type": "text/plain" })
        .end(problems.length === 0 ? "ready\n" : `${problems.join("\n")}\n`);
    } else if (path === "/metrics") {
      const body = await ops.registry.metrics();
      res.writeHead(200, { "content-type": ops.registry.contentType }).end(body);
    } else {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    }
  } catch (err) {
    ops.log.error({ err, path }, "ops endpoint failed");
    res.writeHead(500, { "content-type": "text/plain" }).end("internal error\n");
  }
}
