import type { DescMessage, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { FuzzRandom, fuzzMessage, isServerFault, rawBodies, sendRaw } from "./fuzz.js";

/** One answer that said the server failed, for the test's report. */
export interface Fault {
  method: string;
  input: string;
  code: string;
}

type AnyClient = Record<string, (req: unknown, opts?: { signal?: AbortSignal }) => unknown>;

/**
 * Calls every method of `services` with `perMethod` fuzzed messages through `transport`, and
 * with every raw body of rawBodies(); returns the answers that were Internal or Unknown.
 */
export async function fuzzServices(opts: {
  services: readonly DescService[];
  transport: Transport;
  baseUrl: string;
  authHeaders: Record<string, string>;
  perMethod: number;
  seed: number;
}): Promise<{ calls: number; faults: Fault[] }> {
  const rnd = new FuzzRandom(opts.seed);
  const faults: Fault[] = [];
  let calls = 0;
  for (const service of opts.services) {
    const client = createClient(service, opts.transport) as unknown as AnyClient;
    for (const method of service.methods) {
      const name = `${service.typeName}/${method.name}`;
      for (let i = 0; i < opts.perMethod; i++) {
        const input = fuzzMessage(method.input as DescMessage, rnd);
        calls += 1;
        const code = await callOnce(client, method.localName, method.methodKind, input);
        if (code === Code.Internal || code === Code.Unknown) {
          faults.push({ method: name, input: `fuzzed #${i}`, code: Code[code] });
        }
      }
      for (const raw of rawBodies()) {
        calls += 1;
        const a = await sendRaw(
          opts.baseUrl,
          `/${service.typeName}/${method.name}`,
          raw,
          opts.authHeaders,
        );
        if (isServerFault(a))
          faults.push({ method: name, input: raw.name, code: `${a.status}/${a.code}` });
      }
    }
  }
  return { calls, faults };
}

async function callOnce(
  client: AnyClient,
  localName: string,
  kind: string,
  input: unknown,
): Promise<Code | undefined> {
  const fn = client[localName];
  if (!fn) throw new Error(`no method ${localName}`);
  try {
    const signal = AbortSignal.timeout(5000);
    if (kind === "server_streaming") {
      for await (const _ of fn(input, { signal }) as AsyncIterable<unknown>) break;
    } else {
      await fn(input, { signal });
    }
    return undefined;
  } catch (err) {
    return ConnectError.from(err).code;
  }
}
