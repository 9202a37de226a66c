import { parentPort, workerData } from "node:worker_threads";
import { type ConnectionOptions, openConnection } from "@evc-interop/runtime/db";
import { replayRange, type StateForm, type StreamRange } from "./replay.js";

/**
 * A rebuild worker: replays one range of streams on its own connection, in the rebuild's
 * exported snapshot, and hands the COPY text to the main thread, which writes it into the
 * scratch tables. It waits for each chunk to be taken before sending the next.
 */
interface Data {
  connection: ConnectionOptions;
  schema: string;
  snapshot: string;
  range: StreamRange;
  states: StateForm;
}

const data = workerData as Data;
const port = parentPort;
if (!port) throw new Error("replay-worker runs as a worker thread");
const sql = openConnection(data.connection);

let taken: (() => void) | undefined;
port.on("message", (m: { taken: true }) => {
  if (m.taken) taken?.();
});

replayRange(sql, data.schema, data.snapshot, data.range, data.states, (text) => {
  const wait = new Promise<void>((resolve) => {
    taken = resolve;
  });
  // The chunk's memory moves to the main thread instead of being copied.
  port.postMessage(
    { text },
    Object.values(text).map((bytes) => bytes.buffer),
  );
  return wait;
})
  .then(
    (done) => port.postMessage({ done }),
    (err: unknown) => port.postMessage({ error: err instanceof Error ? err.message : String(err) }),
  )
  .finally(() => sql.end({ timeout: 5 }).finally(() => port.close()));
