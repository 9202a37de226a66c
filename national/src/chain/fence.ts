import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { Sql } from "postgres";
import type { HubMetrics } from "../metrics.js";
import { behindPin, type ChainPin, chainHead } from "./pin.js";

/**
 * Keeps a hub whose database is behind its chain pin from acting (see pin.ts): checked at
 * start, and each time the sealer moves the pin on. While fenced, every RPC is answered
 * Unavailable — provinces keep their receipts, intents and records and try again; nothing is
 * refused for good, deleted or issued twice — and the background work stays idle.
 */
export class ChainFence {
  /** Why the hub is fenced, or undefined. */
  reason: string | undefined;

  constructor(
    private readonly sql: Sql,
    private readonly pin: ChainPin,
    private readonly log: Logger,
    private readonly metrics: HubMetrics,
  ) {}

  /** At start: fenced when the database lacks the pinned link, unless the operator accepted it. */
  async check(accept: number | undefined): Promise<void> {
    const pinned = await this.pin.read();
    if (pinned) this.metrics.chainPin.set(pinned.seq);
    const why = await behindPin(this.sql, pinned);
    if (why && pinned && accept === pinned.seq) {
      const head = await chainHead(this.sql);
      await this.pin.replace(head);
      this.metrics.chainPin.set(head?.seq ?? 0);
      this.log.warn(
        { pinned: pinned.seq, head: head?.seq ?? 0 },
        "restored database accepted by the operator (EVC_ACCEPT_RESTORED_CHAIN): what the hub did after its chain's head is lost to it; follow docs/operations.md, 'Restoring the hub'",
      );
      this.set(undefined);
      return;
    }
    this.set(why);
    if (why)
      this.log.error(
        { pinned: pinned?.seq, why },
        "hub fenced: it will answer nothing and publish nothing until a database holding the pinned link is restored, or the operator accepts the loss (EVC_ACCEPT_RESTORED_CHAIN); docs/operations.md, 'Restoring the hub'",
      );
  }

  /** After sealing: pins the chain's new head; a pin ahead of it that this chain lacks fences. */
  async advance(): Promise<void> {
    if (this.reason) return;
    const head = await chainHead(this.sql);
    if (!head) return;
    const pinned = await this.pin.read();
    if (pinned) this.metrics.chainPin.set(pinned.seq);
    if (pinned && pinned.seq >= head.seq) {
      const why = await behindPin(this.sql, pinned);
      if (why) {
        this.set(why);
        this.log.error({ pinned: pinned.seq, why }, "hub fenced while running");
      }
      return;
    }
    await this.pin.write(head);
    this.metrics.chainPin.set(head.seq);
  }

  /** Answers every RPC Unavailable while fenced. */
  interceptor(): Interceptor {
    return (next) => async (req) => {
      if (this.reason)
        throw new ConnectError(
          `the hub is fenced and acts on nothing (${this.reason}); try again later — an operator must restore the hub (docs/operations.md, "Restoring the hub")`,
          Code.Unavailable,
        );
      return next(req);
    };
  }

  private set(reason: string | undefined): void {
    this.reason = reason;
    this.metrics.fenced.set(reason ? 1 : 0);
  }
}
