import { toBinary } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { type Receipt, ReceiptSchema } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import {
  type DirectiveService,
  ReceiptDisposition,
} from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import type { Logger } from "pino";
import { FlushLoop } from "./flush-loop.js";
import type { ProvinceMetrics } from "./metrics.js";
import type { ProvinceStore } from "./store/store.js";

/**
 * Bytes of receipts per SubmitReceipts call at most: well under the hub's request limit
 * (EVC_READ_MAX_BYTES, 16 MiB by default) even when suspend receipts carry large records.
 */
const RECEIPT_CALL_BYTES = 4 * 1024 * 1024;

/** Splits receipts into runs of at most `max` encoded bytes (a larger one travels alone). */
function bySize(receipts: Receipt[], max: number): Receipt[][] {
  const out: Receipt[][] = [];
  let run: Receipt[] = [];
  let bytes = 0;
  for (const r of receipts) {
    const size = toBinary(ReceiptSchema, r).length;
    if (run.length > 0 && bytes + size > max) {
      out.push(run);
      run = [];
      bytes = 0;
    }
    run.push(r);
    bytes += size;
  }
  if (run.length > 0) out.push(run);
  return out;
}

/**
 * Submits receipts to the hub in batches, retrying until each is answered. A batch the hub
 * refuses as invalid (InvalidArgument names one receipt's field) is split in halves until the
 * invalid receipts travel alone; each of those is dead-lettered (table poison, alarmed) and the
 * rest is recorded: one bad receipt must not hold back every other receipt of the province.
 */
export class ReceiptSubmitter {
  /** Receipts applied while the hub was answering go in the next batch at once. */
  private readonly loop: FlushLoop;

  constructor(
    private readonly store: ProvinceStore,
    private readonly hub: Client<typeof DirectiveService>,
    private readonly log: Logger,
    private readonly metrics: ProvinceMetrics,
    pollMs: number,
  ) {
    this.loop = new FlushLoop(
      () => this.flush(),
      pollMs,
      log,
      "submitting receipts failed; retrying",
    );
  }

  wake(): void {
    this.loop.wake();
  }

  start(): void {
    this.loop.start();
  }

  /** Sends every pending receipt once; returns how many the hub answered. */
  async flush(): Promise<number> {
    let total = 0;
    for (;;) {
      const batch = await this.store.unsubmitted(500);
      if (batch.length === 0) return total;
      for (const part of bySize(batch, RECEIPT_CALL_BYTES)) await this.submit(part);
      total += batch.length;
      if (batch.length < 500) return total;
    }
  }

  /** Submits one batch; an invalid one is split until what is invalid travels alone. */
  private async submit(part: Receipt[]): Promise<void> {
    let res: Awaited<ReturnType<Client<typeof DirectiveService>["submitReceipts"]>>;
    try {
      res = await this.hub.submitReceipts({ receipts: part });
    } catch (err) {
      if (!(err instanceof ConnectError) || err.code !== Code.InvalidArgument) throw err;
      const [only] = part;
      if (part.length === 1 && only) return this.deadLetter(only, err);
      const half = Math.ceil(part.length / 2);
      await this.submit(part.slice(0, half));
      await this.submit(part.slice(half));
      return;
    }
    await this.store.markSubmitted(part.map((r) => r.directiveId));
    for (const r of res.results) {
      if (r.disposition === ReceiptDisposition.REFUSED)
        this.log.info({ directiveId: r.directiveId, detail: r.detail }, "hub refused a receipt");
    }
  }

  private async deadLetter(receipt: Receipt, err: ConnectError): Promise<void> {
    const reason = `the hub refused the receipt as invalid: ${err.rawMessage}`;
    await this.store.deadLetterReceipt(receipt, reason);
    this.metrics.receiptsDeadLettered.inc();
    // The hub's message names the field, never its value: no personal data is logged.
    this.log.error(
      { directiveId: receipt.directiveId, why: err.rawMessage },
      "receipt dead-lettered: the hub refused it as invalid; its directive waits at the hub for an operator",
    );
  }

  /** Stops the loop; with `flush`, sends what is still pending once more. */
  async stop(flush = true): Promise<void> {
    await this.loop.stop();
    if (flush) await this.flush().catch(() => undefined);
  }
}
