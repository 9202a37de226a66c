import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";

/**
 * Logs the bus connection's changes an operator needs to see (#29: the hub said nothing when
 * the bus dropped or came back): lost (warn, with the server), back (info), a server error
 * (error). Reconnect attempts and pings are not logged: one line per change. Ends when the
 * connection closes.
 */
export async function logBusStatus(nc: NatsConnection, log: Logger): Promise<void> {
  try {
    await watch(nc, log);
  } catch (err) {
    log.warn({ err }, "watching the bus connection stopped");
  }
}

async function watch(nc: NatsConnection, log: Logger): Promise<void> {
  let down = false;
  for await (const s of nc.status()) {
    switch (s.type) {
      case "disconnect":
        if (!down) log.warn({ server: s.server }, "bus connection lost: reconnecting");
        down = true;
        break;
      case "reconnect":
        log.info({ server: s.server }, "bus connection back");
        down = false;
        break;
      case "error":
        log.error({ err: s.error }, "the bus server reported an error");
        break;
      case "ldm":
        log.warn(
          { server: s.server },
          "the bus server is going away (lame duck): reconnecting soon",
        );
        break;
      default:
        break;
    }
  }
}
