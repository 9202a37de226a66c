import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  ControlService,
  GetFeaturesResponseSchema,
} from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { generateCredential, provinceConsumer } from "@evc-interop/runtime";
import { dropSchema, TEST_DATABASE_URL, uniqueName } from "@evc-interop/testing";
import { jetstream } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "./cli.js";
import { loadConfig, parseConfig } from "./config.js";

/**
 * The kit never hangs and always says why (#17 part 2): against nothing, a server that never
 * answers, one that speaks something else, or a province process that dies, it fails within
 * ready_timeout_ms with one line saying what it tried, what it saw and what to check.
 */
const NATS_URL = process.env.EVC_TEST_NATS_URL ?? "nats://127.0.0.1:4222";
let dir: string;
const schemas: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "evc-kit-cli-"));
  const { publicJwk } = await generateCredential("province:110000");
  writeFileSync(join(dir, "province.jwk"), JSON.stringify(publicJwk));
});

afterAll(async () => {
  for (const s of schemas) await dropSchema(s);
  rmSync(dir, { recursive: true, force: true });
});

function config(url: string, extra: Record<string, unknown> = {}): string {
  const id = uniqueName("kitcli");
  schemas.push(id);
  const file = join(dir, `${id}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      province: {
        code: "110000",
        url,
        public_key: "province.jwk",
        ready_timeout_ms: 1500,
        ...extra,
      },
      kit: {
        hub_listen: "127.0.0.1:0",
        database_url: TEST_DATABASE_URL,
        schema: id,
        stream: id.toUpperCase(),
        subject_prefix: `t.${id}`,
        call_timeout_ms: 500,
        nats_url: NATS_URL,
        nats_anonymous: true,
        directive_keys_dir: join(dir, "keys"),
      },
    }),
  );
  return file;
}

async function failure(file: string): Promise<{ message: string; ms: number }> {
  const t0 = Date.now();
  const message = await main(["--config", file, "--log", join(dir, "kit.log")]).then(
    (code) => `resolved with ${code}`,
    (err: unknown) => (err instanceof Error ? err.message : String(err)),
  );
  return { message, ms: Date.now() - t0 };
}

function listening(onSocket: (s: Socket) => void): Promise<{ url: string; server: Server }> {
  return new Promise((resolve) => {
    const server = createServer(onSocket);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      resolve({ url: `http://127.0.0.1:${port}`, server });
    });
  });
}

describe("the kit never hangs, and says why", () => {
  it("nothing listening: fails within the ready timeout, naming the URL and what to check", async () => {
    const { url, server } = await listening(() => undefined);
    server.close();
    const { message, ms } = await failure(config(url));
    expect(message).toMatch(/no answer to GetFeatures at http:\/\/127\.0\.0\.1:\d+ over grpc/);
    expect(message).toMatch(/nothing listens there/);
    expect(ms).toBeLessThan(10_000);
  });

  it("a server that accepts and never answers: the deadline fires", async () => {
    const held: Socket[] = [];
    const { url, server } = await listening((s) => held.push(s));
    try {
      const { message, ms } = await failure(config(url));
      expect(message).toMatch(/no answer to GetFeatures/);
      expect(ms).toBeLessThan(10_000);
    } finally {
      for (const s of held) s.destroy();
      server.close();
    }
  });

  it("a server speaking something else: told to check the protocol", async () => {
    const { url, server } = await listening((s) =>
      s.end("HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"),
    );
    try {
      const { message } = await failure(config(url));
      expect(message).toMatch(/no answer to GetFeatures/);
      expect(message).toMatch(/protocol|never answered|nothing listens/);
    } finally {
      server.close();
    }
  });

  it("a province process that exits, or dies of SIGTERM's default action, never hangs the kit", async () => {
    const exits = await failure(config("http://127.0.0.1:9", { start_command: "exit 3" }));
    expect(exits.message).toMatch(/province process \(start_command\) exited with code 3/);
    // `sleep` dies of the default action of SIGTERM (exit code null): the kit stops it and ends.
    const pidFile = join(dir, "sleep.pid");
    const sleeps = await failure(
      config("http://127.0.0.1:9", { start_command: `echo $$ > ${pidFile}; exec sleep 300` }),
    );
    expect(sleeps.message).toMatch(/no answer to GetFeatures/);
    const alive = spawnSync("sh", ["-c", `kill -0 $(cat ${pidFile})`]).status === 0;
    expect(alive).toBe(false);
  });
});

/**
 * A province that answers GetFeatures over Connect (HTTP/1.1) and does nothing else on its
 * control port; with `consume`, it also takes every directive off its consumer and acks it,
 * and never sends a receipt.
 */
async function halfProvince(consume?: { stream: string }) {
  let nc: NatsConnection | undefined;
  let taken = 0;
  const handler = connectNodeAdapter({
    routes: (router) =>
      router.service(ControlService, {
        async getFeatures() {
          if (consume && !nc) {
            nc = await connect({ servers: NATS_URL });
            const consumer = await jetstream(nc).consumers.get(
              consume.stream,
              provinceConsumer("110000"),
            );
            const messages = await consumer.consume();
            void (async () => {
              for await (const m of messages) {
                taken += 1;
                m.ack();
              }
            })();
          }
          return create(GetFeaturesResponseSchema, {
            implementationName: "half-province",
            provinceCode: "110000",
          });
        },
      }),
  });
  const server = createHttpServer(handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    taken: () => taken,
    async close() {
      server.closeAllConnections();
      server.close();
      await nc?.close();
    },
  };
}

describe("the kit says which half of the bus is missing", () => {
  const asConnect = { protocol: "connect", http_version: "1.1" };

  it("a province that answers but takes no directive: no directive taken, naming the consumer", async () => {
    const p = await halfProvince();
    try {
      const { message, ms } = await failure(config(p.url, asConnect));
      expect(message).toMatch(
        /^no directive taken: .*pulled nothing from its durable consumer province-110000 on stream KITCLI_/,
      );
      expect(ms).toBeLessThan(15_000);
    } finally {
      await p.close();
    }
  });

  it("a province that takes directives and never answers: no receipt, naming the hub to call", async () => {
    const file = config("http://127.0.0.1:1", asConnect);
    const { stream } = loadConfig(file).kit;
    const p = await halfProvince({ stream });
    try {
      const cfg = JSON.parse(readFileSync(file, "utf8"));
      cfg.province.url = p.url;
      writeFileSync(file, JSON.stringify(cfg));
      const { message, ms } = await failure(file);
      expect(message).toMatch(/^no receipt: the province took directive [0-9a-f-]{36} off the bus/);
      expect(message).toMatch(/SubmitReceipts at EVC_HUB_URL/);
      expect(p.taken()).toBe(1);
      expect(ms).toBeLessThan(15_000);
    } finally {
      await p.close();
    }
  });
});

describe("the kit's config file", () => {
  const base = { code: "110000", url: "http://127.0.0.1:1", public_key: "k.jwk" };
  it("names an unknown or misspelt key", () => {
    expect(() =>
      parseConfig(JSON.stringify({ province: { ...base, protcol: "grpc" } }), "kit.yaml"),
    ).toThrow(/kit\.yaml: .*"protcol" is unknown/);
    expect(() => parseConfig(JSON.stringify({ province: base, kitt: {} }), "kit.yaml")).toThrow(
      /"kitt" is unknown/,
    );
  });

  it("gives each run a stream, schema and hub port of its own unless the file names them", () => {
    const file = join(dir, "bare.yaml");
    writeFileSync(
      file,
      `province:\n  code: "110000"\n  url: http://127.0.0.1:1\n  public_key: k.jwk\n`,
    );
    const [a, b] = [loadConfig(file), loadConfig(file)];
    expect(a.kit.stream).not.toBe(b.kit.stream);
    expect(a.kit.schema).not.toBe(b.kit.schema);
    expect(a.kit.hubListen).toBe("127.0.0.1:0");
    expect(a.kit.ownNames).toEqual({ stream: true, schema: true });
    expect(a.province.protocol).toBe("grpc");
  });

  it("checks values by the schema and names the field", () => {
    expect(() =>
      parseConfig(JSON.stringify({ province: { ...base, code: "123" } }), "kit.yaml"),
    ).toThrow(/kit\.yaml: province\.code: /);
    expect(() =>
      parseConfig(JSON.stringify({ province: { ...base, protocol: "soap" } }), "kit.yaml"),
    ).toThrow(/province\.protocol: /);
    // YAML's numbers in the province's environment are text to the process.
    const ok = parseConfig(
      `province:\n  code: "110000"\n  url: http://127.0.0.1:1\n  public_key: k.jwk\n  env:\n    EVC_X: 0\n`,
      "kit.yaml",
    );
    expect(ok.province?.env).toEqual({ EVC_X: "0" });
  });
});
