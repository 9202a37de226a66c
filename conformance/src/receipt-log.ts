import { toJsonString } from "@bufbuild/protobuf";
import { type Receipt, ReceiptSchema } from "@evc-interop/gen/evc/directive/v1/directive_pb";

/** Every receipt the province sent the kit's hub, by directive id, in arrival order. */
export class ReceiptLog {
  private readonly byDirective = new Map<string, Receipt[]>();
  private readonly waiters = new Set<() => void>();

  constructor(private readonly trace: (line: string) => void) {}

  record(r: Receipt): void {
    const list = this.byDirective.get(r.directiveId) ?? [];
    list.push(r);
    this.byDirective.set(r.directiveId, list);
    this.trace(`← receipt ${toJsonString(ReceiptSchema, r)}`);
    for (const w of this.waiters) w();
  }

  /** Receipts the province sent for a directive, in arrival order. */
  of(directiveId: string): Receipt[] {
    return this.byDirective.get(directiveId) ?? [];
  }

  /** Waits until `count` receipts for the directive arrived (or the timeout passes). */
  async wait(directiveId: string, count: number, timeoutMs: number): Promise<Receipt[]> {
    const end = Date.now() + timeoutMs;
    while (this.of(directiveId).length < count && Date.now() < end) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, Math.max(1, Math.min(200, end - Date.now())));
        const waiters = this.waiters;
        function done() {
          clearTimeout(t);
          waiters.delete(done);
          resolve();
        }
        this.waiters.add(done);
      });
    }
    return this.of(directiveId);
  }
}
