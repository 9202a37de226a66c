import type * as http from "node:http";
import type * as http2 from "node:http2";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ConnectRouterOptions,
  createConnectRouter,
  createContextValues,
} from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import { peerCommonName, peerKey } from "../tls.js";

type NodeRequest = http.IncomingMessage | http2.Http2ServerRequest;
type NodeResponse = http.ServerResponse | http2.Http2ServerResponse;

export interface AdapterOptions extends Partial<ConnectRouterOptions> {
  routes: (router: ConnectRouter) => void;
  fallback: (req: NodeRequest, res: NodeResponse) => void;
  /** Largest request message accepted, checked while reading and decompressing, before auth. */
  readMaxBytes: number;
  /** A failure to write a response (not a refusal: those are answered). */
  onError: (err: unknown, method: string) => void;
}

/**
 * connectNodeAdapter, with two changes every evc-interop server needs: request bodies are
 * bounded (readMaxBytes, which connect-es applies while reading and decompressing, before any
 * interceptor), and a request body that is not a valid protobuf message is answered
 * InvalidArgument, as a malformed JSON body already is — connect-es calls it Internal, which
 * tells a vendor the server failed when their input was wrong.
 */
export function nodeAdapter(
  options: AdapterOptions,
): (req: NodeRequest, res: NodeResponse) => void {
  const router = createConnectRouter({
    acceptCompression: [compressionGzip, compressionBrotli],
    ...options,
  });
  options.routes(router);
  const paths = new Map<string, UniversalHandler>();
  for (const h of router.handlers) paths.set(h.requestPath, malformedAsInvalid(h));
  return (req, res) => {
    const handler = paths.get(req.url?.split("?", 2)[0] ?? "");
    if (!handler) {
      options.fallback(req, res);
      return;
    }
    const peer = peerCommonName(req.socket);
    const values = peer ? createContextValues().set(peerKey, peer) : undefined;
    handler(universalRequestFromNodeRequest(req, res, undefined, values))
      .then((u) => universalResponseToNodeResponse(u, res))
      .catch((err: unknown) => {
        // A client that went away is reported as Aborted: nothing to answer, nothing to say.
        if (ConnectError.from(err).code === Code.Aborted) return;
        options.onError(err, `${handler.service.typeName}/${handler.method.name}`);
      });
  };
}

const PARSE = "parse binary:";

function malformedAsInvalid(h: UniversalHandler): UniversalHandler {
  const wrapped = async (req: Parameters<UniversalHandler>[0]) => rewrite(await h(req));
  return Object.assign(wrapped, {
    protocolNames: h.protocolNames,
    service: h.service,
    method: h.method,
    requestPath: h.requestPath,
    allowedMethods: h.allowedMethods,
    supportedContentType: h.supportedContentType,
  });
}

/** Rewrites a "parse binary" Internal error of any of the three protocols to InvalidArgument. */
async function rewrite(res: UniversalServerResponse): Promise<UniversalServerResponse> {
  const type = res.header?.get("content-type") ?? "";
  const body = res.body;
  if (!body) return res;
  if (type.startsWith("application/json") && res.status === 500) return connectUnary(res, body);
  if (type.startsWith("application/grpc-web")) return { ...res, body: grpcWebTrailer(body) };
  if (type.startsWith("application/grpc")) return { ...res, body: grpcTrailer(res, body) };
  if (type.startsWith("application/connect+")) return { ...res, body: connectEndStream(body) };
  return res;
}

/**
 * A Connect unary error is read whole before the response starts: its status is the first
 * thing written (rewriting it while the body streams came too late: the client got HTTP 500).
 */
async function connectUnary(
  res: UniversalServerResponse,
  body: AsyncIterable<Uint8Array> | Uint8Array,
): Promise<UniversalServerResponse> {
  const chunks: Uint8Array[] = [];
  if (body instanceof Uint8Array) chunks.push(body);
  else for await (const c of body) chunks.push(c);
  const text = Buffer.concat(chunks).toString("utf8");
  const err = tryJson(text) as { code?: string; message?: string } | undefined;
  if (err?.code === "internal" && err.message?.startsWith(PARSE)) {
    const out = Buffer.from(
      JSON.stringify({ code: "invalid_argument", message: invalidText(err.message) }),
    );
    res.header?.set("content-length", String(out.length));
    return { ...res, status: 400, body: once(out) };
  }
  return { ...res, body: once(Buffer.concat(chunks)) };
}

async function* once(chunk: Uint8Array): AsyncIterable<Uint8Array> {
  yield chunk;
}

async function* grpcTrailer(
  res: UniversalServerResponse,
  body: AsyncIterable<Uint8Array>,
): AsyncIterable<Uint8Array> {
  yield* body;
  // The adapter writes the trailers after the body: they are final here.
  const t = res.trailer;
  const message = decodeURIComponent(t?.get("grpc-message") ?? "");
  if (t?.get("grpc-status") === String(Code.Internal) && message.startsWith(PARSE)) {
    t.set("grpc-status", String(Code.InvalidArgument));
    t.set("grpc-message", encodeURIComponent(invalidText(message)));
  }
}

async function* grpcWebTrailer(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  for await (const chunk of body) {
    // A trailer frame: flag 0x80, then the trailers as HTTP/1 header lines.
    if (chunk[0] === 0x80 && chunk.length >= 5) {
      const text = Buffer.from(chunk.subarray(5)).toString("latin1");
      const message = decodeURIComponent(/grpc-message: ([^\r\n]*)/.exec(text)?.[1] ?? "");
      if (/grpc-status: 13\r\n/.test(text) && message.startsWith(PARSE)) {
        yield frame(
          0x80,
          Buffer.from(
            `grpc-message: ${encodeURIComponent(invalidText(message))}\r\ngrpc-status: ${Code.InvalidArgument}\r\n`,
            "latin1",
          ),
        );
        continue;
      }
    }
    yield chunk;
  }
}

async function* connectEndStream(body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  for await (const chunk of body) {
    // The end-of-stream frame: flag 0x02, then JSON with the error.
    if (chunk[0] === 0x02 && chunk.length >= 5) {
      const end = tryJson(Buffer.from(chunk.subarray(5)).toString("utf8")) as
        | { error?: { code?: string; message?: string } }
        | undefined;
      if (end?.error?.code === "internal" && end.error.message?.startsWith(PARSE)) {
        const error = { code: "invalid_argument", message: invalidText(end.error.message) };
        yield frame(0x02, Buffer.from(JSON.stringify({ ...end, error })));
        continue;
      }
    }
    yield chunk;
  }
}

function invalidText(message: string): string {
  return `request body is not a valid protobuf message of this method (${message})`;
}

function frame(flag: number, payload: Buffer): Uint8Array {
  const out = Buffer.alloc(5 + payload.length);
  out[0] = flag;
  out.writeUInt32BE(payload.length, 1);
  payload.copy(out, 5);
  return out;
}

function tryJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
