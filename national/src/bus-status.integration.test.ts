import { Writable } from "node:stream";
import { logBusStatus } from "@evc-interop/runtime";
import { startNatsServer, until } from "@evc-interop/testing";
import { connect } from "@nats-io/transport-node";
import { pino } from "pino";
import { describe, expect, it } from "vitest";

/** #29: the hub logged nothing when the bus dropped or came back. */
describe("the bus connection's changes", () => {
  it("are logged once each: lost (with the server), and the watch ends with the connection", async () => {
    const lines: { level: number; msg: string; server?: string }[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(JSON.parse(String(chunk)));
        done();
      },
    });
    const nats = await startNatsServer();
    const nc = await connect({
      servers: nats.url,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 50,
    });
    const watching = logBusStatus(nc, pino({ level: "info" }, sink));
    await nats.stop();
    await until("the loss logged", async () =>
      lines.some((l) => l.msg.startsWith("bus connection lost")) ? true : undefined,
    );
    // Reconnect attempts go on; the loss is said once.
    await new Promise((r) => setTimeout(r, 500));
    expect(lines.filter((l) => l.msg.startsWith("bus connection lost"))).toEqual([
      expect.objectContaining({ level: 40, server: expect.stringContaining("127.0.0.1") }),
    ]);
    await nc.close();
    await watching;
  });
});
