import { parentPort, workerData } from "node:worker_threads";
import { type ConnectionOptions, openConnection } from "@evc-interop/runtime/db";
import { checkPage, fetchPage } from "./chain.js";

/**
 * A chain verification worker: fetches the pages it is given on its own connection and checks
 * them (see verifyChain). One page at a time; the main thread hands out the next.
 */
interface Data {
  connection: ConnectionOptions;
  fromPosition: number;
  toPosition: number;
}

const data = workerData as Data;
const sql = openConnection(data.connection);

parentPort?.on("message", (m: { page: number; from: number; to: number } | { close: true }) => {
  if ("close" in m) {
    void sql.end({ timeout: 5 }).finally(() => parentPort?.close());
    return;
  }
  fetchPage(sql, m.from, m.to).then(
    (rows) => {
      parentPort?.postMessage({
        page: m.page,
        check: checkPage(rows, m.from, m.to, data.fromPosition, data.toPosition),
      });
    },
    (err: unknown) => {
      parentPort?.postMessage({
        page: m.page,
        error: err instanceof Error ? err.message : String(err),
      });
    },
  );
});
