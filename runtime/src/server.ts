import * as http from "node:http";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import * as net from "node:net";
import type { ServerTls } from "./tls.js";

export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** A listening server and how to stop it. */
export interface RunningServer {
  /** Base URL, e.g. http://127.0.0.1:8080. */
  url: string;
  port: number;
  /** Stops accepting, lets in-flight requests finish up to `graceMs`, then closes the rest. */
  close(graceMs?: number): Promise<void>;
}

/**
 * Serves one handler on one port for both HTTP/1.1 (Connect, gRPC-Web, curl) and cleartext
 * HTTP/2 with prior knowledge (gRPC, Connect over h2c): the first bytes of a connection tell
 * which (the HTTP/2 preface starts with "PRI ").
 */
export async function listen(
  handler: RequestHandler,
  host: string,
  port: number,
  tls?: ServerTls,
): Promise<RunningServer> {
  if (tls) return listenTls(handler, host, port, tls);
  const h1 = http.createServer(handler);
  const h2 = http2.createServer({}, handler);
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (s) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.once("data", (chunk: Buffer) => {
      socket.pause();
      socket.unshift(chunk);
      // Both servers pick up the unshifted bytes: http2 reads what is buffered on its next
      // tick (the socket must stay paused until then), http reads on resume.
      if (chunk.subarray(0, 4).toString("latin1") === "PRI ") {
        h2.emit("connection", socket);
      } else {
        h1.emit("connection", socket);
        socket.resume();
      }
    });
  });
  const at = await bind(server, host, port, "http");
  return {
    ...at,
    close: (graceMs = 5000) =>
      closeGracefully(server, sessions, sockets, graceMs, () => h1.closeIdleConnections()),
  };
}

/**
 * HTTPS: HTTP/2 and HTTP/1.1 chosen by ALPN (gRPC, Connect and gRPC-Web alike). With a client
 * CA, the handshake refuses a client without a certificate signed by it (mutual TLS).
 */
async function listenTls(
  handler: RequestHandler,
  host: string,
  port: number,
  tls: ServerTls,
): Promise<RunningServer> {
  const server = http2.createSecureServer(
    {
      cert: tls.cert,
      key: tls.key,
      allowHTTP1: true,
      minVersion: "TLSv1.2",
      ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
    },
    handler,
  );
  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("secureConnection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  server.on("session", (s) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  const at = await bind(server, host, port, "https");
  return { ...at, close: (graceMs = 5000) => closeGracefully(server, sessions, sockets, graceMs) };
}

/** Listens, and says where: the base URL and the port (the one picked, for port 0). */
async function bind(
  server: net.Server,
  host: string,
  port: number,
  scheme: "http" | "https",
): Promise<{ url: string; port: number }> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  return { url: `${scheme}://${shownHost}:${addr.port}`, port: addr.port };
}

/**
 * Stops accepting, asks HTTP/2 sessions to finish (and idle HTTP/1.1 connections to close),
 * and destroys whatever is still open after `graceMs`.
 */
async function closeGracefully(
  server: net.Server,
  sessions: Set<http2.ServerHttp2Session>,
  sockets: Set<net.Socket>,
  graceMs: number,
  closeIdle?: () => void,
): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  for (const s of sessions) s.close();
  closeIdle?.();
  const timer = setTimeout(() => {
    for (const s of sessions) s.destroy();
    for (const s of sockets) s.destroy();
  }, graceMs);
  await closed;
  clearTimeout(timer);
}

/** A TCP port on 127.0.0.1 that was free a moment ago (for a child process to listen on). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}
