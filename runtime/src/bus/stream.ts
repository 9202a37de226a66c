import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiError,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";

/** Where directives travel on NATS JetStream (see proto/evc/directive/v1/directive.proto). */
export interface BusLayout {
  /** Stream name, default EVC_DIRECTIVES. */
  stream: string;
  /** Subject prefix, default evc.directives; a province's subject is `<prefix>.<code>`. */
  subjectPrefix: string;
  /** Nats-Msg-Id duplicate window. */
  duplicateWindowMs: number;
}

export const DEFAULT_LAYOUT: BusLayout = {
  stream: "EVC_DIRECTIVES",
  subjectPrefix: "evc.directives",
  duplicateWindowMs: 120_000,
};

export function provinceSubject(layout: BusLayout, province: string): string {
  return `${layout.subjectPrefix}.${province}`;
}

/** Durable consumer name of a province. */
export function provinceConsumer(province: string): string {
  return `province-${province}`;
}

/**
 * Creates (or updates) the file-backed directive stream, with `replicas` copies (3 on a
 * three-node cluster: losing a node then loses nothing). Provisioning is separate from
 * publishing and consuming: workers only look the stream up.
 */
export async function provisionStream(
  jsm: JetStreamManager,
  layout: BusLayout,
  replicas = 1,
): Promise<void> {
  const config = {
    name: layout.stream,
    // Said on every start, so a restart keeps what the operator configured (EVC_STREAM_REPLICAS).
    num_replicas: replicas,
    subjects: [`${layout.subjectPrefix}.>`],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    duplicate_window: nanos(layout.duplicateWindowMs),
    max_age: nanos(30 * 24 * 3600 * 1000),
  };
  // JetStream's own create-or-update: creating a stream that exists with this very config is
  // a no-op; one that exists with another (an older duplicate window, say) is updated.
  try {
    await jsm.streams.add(config);
  } catch (err) {
    if (!isApiError(err, STREAM_NAME_IN_USE)) throw err;
    await jsm.streams.update(layout.stream, config);
  }
}

/** JetStream API error codes the provisioning handles (see nats-server's errors.json). */
const STREAM_NAME_IN_USE = 10058;
const CONSUMER_ALREADY_EXISTS = 10148;

/**
 * Creates (or updates) the durable pull consumer of one province: explicit ack, filtered on
 * that province's subject only. The hub provisions these; a province's NATS credential may
 * then use its own consumer and nothing else (I7).
 */
export async function provisionProvinceConsumer(
  jsm: JetStreamManager,
  layout: BusLayout,
  province: string,
  ackWaitMs = 30_000,
): Promise<void> {
  const name = provinceConsumer(province);
  const config = {
    durable_name: name,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: provinceSubject(layout, province),
    ack_wait: nanos(ackWaitMs),
    max_ack_pending: 1000,
  };
  // Creating a consumer that exists with this very config is a no-op; one made with other
  // settings (an older ack_wait) has those that may change updated.
  try {
    await jsm.consumers.add(layout.stream, config);
  } catch (err) {
    if (!isApiError(err, CONSUMER_ALREADY_EXISTS)) throw err;
    await jsm.consumers.update(layout.stream, name, {
      ack_wait: config.ack_wait,
      max_ack_pending: config.max_ack_pending,
    });
  }
}

/** A JetStream API error with this code (e.g. JetStreamApiCodes.ConsumerNotFound). */
export function isApiError(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code;
}
