import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import type { Certificate } from "@evc-interop/gen/evc/common/v1/record_pb";
import { ProvinceService } from "@evc-interop/gen/evc/province/v1/province_service_pb";

export interface PhoneClientOptions {
  /** How long a cached status is served without asking the province (default 30 s). */
  cacheTtlMs?: number;
  /** Poll interval when the watch stream is not available (default 15 s). */
  pollMs?: number;
}

/**
 * What an app on a phone needs (the user-terminal tier): the certificate's status from a light
 * local cache, pushed updates over the watch stream, and polling when streaming fails (a proxy
 * that buffers, a flaky network). The province stays the source of truth.
 */
export class PhoneClient {
  private readonly client: Client<typeof ProvinceService>;
  private readonly cache = new Map<string, { certificate: Certificate; at: number }>();
  private readonly ttl: number;
  private readonly pollMs: number;

  constructor(transport: Transport, opts: PhoneClientOptions = {}) {
    this.client = createClient(ProvinceService, transport);
    this.ttl = opts.cacheTtlMs ?? 30_000;
    this.pollMs = opts.pollMs ?? 15_000;
  }

  /** The certificate, from the cache while fresh, else from the province. */
  async status(certificateNumber: string): Promise<Certificate> {
    const hit = this.cache.get(certificateNumber);
    if (hit && Date.now() - hit.at < this.ttl) return hit.certificate;
    const res = await this.client.getCertificateStatus({ certificateNumber });
    if (!res.certificate) throw new ConnectError("province returned no certificate", Code.Internal);
    this.remember(res.certificate);
    return res.certificate;
  }

  /** The last status seen, without any network (undefined if never seen). */
  cached(certificateNumber: string): Certificate | undefined {
    return this.cache.get(certificateNumber)?.certificate;
  }

  private remember(c: Certificate): void {
    this.cache.set(c.certificateNumber, { certificate: c, at: Date.now() });
  }

  /**
   * Yields the certificate's current status, then every change. Uses the server stream; if it
   * fails with anything but NotFound or InvalidArgument, falls back to polling (and tries the
   * stream again on the next call). Stops when `signal` aborts.
   */
  async *watch(certificateNumber: string, signal: AbortSignal): AsyncGenerator<Certificate> {
    let last: Certificate | undefined;
    try {
      for await (const msg of this.client.watchCertificate({ certificateNumber }, { signal })) {
        if (!msg.certificate) continue;
        this.remember(msg.certificate);
        last = msg.certificate;
        yield msg.certificate;
      }
      return;
    } catch (err) {
      const ce = ConnectError.from(err);
      if (signal.aborted || ce.code === Code.NotFound || ce.code === Code.InvalidArgument) {
        if (signal.aborted) return;
        throw ce;
      }
    }
    while (!signal.aborted) {
      try {
        const res = await this.client.getCertificateStatus({ certificateNumber }, { signal });
        const c = res.certificate;
        if (c && (last === undefined || c.status !== last.status)) {
          this.remember(c);
          last = c;
          yield c;
        }
      } catch (err) {
        if (signal.aborted) return;
        const ce = ConnectError.from(err);
        if (ce.code === Code.NotFound) throw ce;
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.pollMs);
        signal.addEventListener(
          "abort",
          () => {
            clearTimeout(t);
            resolve();
          },
          { once: true },
        );
      });
    }
  }
}
