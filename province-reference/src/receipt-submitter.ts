import { toBinary } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { type Receipt, ReceiptSchema } from "@evc-interop/gen/evc/directive/v1/directive_pb";
import {
  type DirectiveService,
  ReceiptDisposition,
} from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import type { Logger } from "pino";
import { FlushLoop } from "./flush-loop.js";
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

/** Submits receipts to the hub in batches, retrying until each is answered. */
export class ReceiptSubmitter {
  /** Receipts applied while the hub was answering go in the next batch at once. */
  private readonly loop: FlushLoop;

  constructor(
    private readonly store: ProvinceStore,
    private readonly hub: Client<typeof DirectiveService>,
    private readonly log: Logger,
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
      for (const part of bySize(batch, RECEIPT_CALL_BYTES)) {
        const res = await this.hub.submitReceipts({ receipts: part });
        await this.store.markSubmitted(part.map((r) => r.directiveId));
        for (const r of res.results) {
          if (r.disposition === ReceiptDisposition.REFUSED)
            this.log.info(
              { directiveId: r.directiveId, detail: r.detail },
              "hub refused a receipt",
            );
        }
      }
      total += batch.length;
      if (batch.length < 500) return total;
    }
  }

  /** Stops the loop; with `flush`, sends what is still pending once more. */
  async stop(flush = true): Promise<void> {
    await this.loop.stop();
    if (flush) await this.flush().catch(() => undefined);
  }
}
