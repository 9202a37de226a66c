import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import {
  KitConfigSchema,
  type KitConfig as KitFile,
} from "@evc-interop/gen/evc/conformance/v1/kit_config_pb";
import { nkeySeedFromEnv } from "@evc-interop/runtime";
import { parse } from "yaml";

/** The kit's configuration file (YAML or JSON); see conformance/README.md. */
export interface KitConfig {
  province: {
    /** GB/T 2260 code of the province under test. */
    code: string;
    /** Base URL of its evc.province.v1.ProvinceService and evc.conformance.v1.ControlService. */
    url: string;
    /** Public JWK (file path) the province signs its hub tokens with; kid `province:<code>`. */
    publicKeyFile: string;
    /** Base URL of its ControlService, if not `url` (the reference serves it on its own port). */
    controlUrl: string;
    /** How the kit calls it (default grpc, what vendors' gRPC servers speak). */
    protocol: "grpc" | "connect" | "grpc-web";
    httpVersion: "1.1" | "2";
    /** Bearer token for its ControlService, if it requires one. */
    controlToken: string;
    /** If set, the kit starts the province with this shell command once its hub is up. */
    startCommand: string;
    /** Shell command that restarts the province (resilience profile), if the kit does not start it. */
    restartCommand: string;
    /** Extra environment for start/restart commands. */
    env: Record<string, string>;
    readyTimeoutMs: number;
    /** For an https:// url: the CA that signed the province's certificate (empty: the system's). */
    caFile: string;
    /** A client certificate and key for a province that wants mutual TLS (empty: none). */
    clientCertFile: string;
    clientKeyFile: string;
  };
  kit: {
    /** host:port where the kit serves the hub API; point the province's hub URL here. */
    hubListen: string;
    /** The bus; empty: a nats-server the kit starts, every user authenticated (services.ts). */
    natsUrl: string;
    natsUser: string;
    natsPassword: string;
    /** NKey seed text of the kit's NATS user (from the file nats_nkey_seed names). */
    natsNkeySeed: string;
    /** Connect to NATS with no credential (kit.nats_anonymous). */
    natsAnonymous: boolean;
    stream: string;
    subjectPrefix: string;
    /** PostgreSQL the kit's own hub uses (not answering: an embedded one, services.ts). */
    databaseUrl: string;
    schema: string;
    /** Per-case timeout. */
    caseTimeoutMs: number;
    /** Deadline of every call to the province. */
    callTimeoutMs: number;
    /**
     * Which of the stream and schema are this run's own (the config named them not): removed
     * when the run ends, so two runs on one machine never share or leave them.
     */
    ownNames: { stream: boolean; schema: boolean };
    /**
     * Where the kit keeps the key it signs directives with (created if absent) and the key set
     * the province must trust (`hub-directive-keys.json`: point EVC_DIRECTIVE_KEYS, or your
     * system's equivalent, at it; a province the kit starts gets that variable).
     */
    directiveKeysDir: string;
    /** Serve the kit's hub over HTTPS with this certificate and key (empty: cleartext). */
    tlsCertFile: string;
    tlsKeyFile: string;
    /** The CA that signed tls_cert: the kit's own clients verify its hub with it. */
    tlsCaFile: string;
  };
}

/** A path relative to the config file; empty stays empty. */
function path(base: string, p: string): string {
  return p ? resolve(base, p) : "";
}

/**
 * The config file as the kit's own proto message (evc.conformance.v1.KitConfig): an unknown or
 * misspelt key is an error that names it, and the message's rules are checked (protovalidate).
 */
export function parseConfig(text: string, file: string): KitFile {
  let raw: unknown;
  try {
    raw = parse(text) as unknown;
  } catch (err) {
    throw new ConfigFileError(`${file} is not YAML or JSON: ${String(err)}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw new ConfigFileError(`${file} is not a mapping`);
  // YAML reads `EVC_X: 0` as a number; the environment is text.
  const province = (raw as { province?: { env?: unknown } }).province;
  if (province?.env && typeof province.env === "object")
    province.env = Object.fromEntries(
      Object.entries(province.env).map(([k, v]) => [k, v === null ? "" : String(v)]),
    );
  let msg: KitFile;
  try {
    msg = fromJson(KitConfigSchema, raw as JsonValue);
  } catch (err) {
    const m = err instanceof Error ? err.message : String(err);
    throw new ConfigFileError(
      `${file}: ${m.replace(/^cannot decode message evc\.conformance\.v1\./, "")}`,
    );
  }
  const result = createValidator().validate(KitConfigSchema, msg);
  if (result.kind === "invalid")
    throw new ConfigFileError(
      `${file}: ${result.violations.map((v) => `${fieldPath(v.field)}: ${v.message}`).join("; ")}`,
    );
  if (result.kind === "error") throw result.error;
  return msg;
}

export class ConfigFileError extends Error {}

/** A violation's field path as the file spells it, e.g. province.code. */
function fieldPath(path: readonly unknown[]): string {
  return path
    .map((f) => {
      const e = f as { kind?: string; name?: string; index?: number; key?: unknown };
      if (e.kind === "list_sub") return `[${e.index}]`;
      if (e.kind === "map_sub") return `[${String(e.key)}]`;
      return e.name ?? "?";
    })
    .join(".")
    .replaceAll(".[", "[");
}

export function loadConfig(file: string): KitConfig {
  const base = dirname(resolve(file));
  const f = parseConfig(readFileSync(file, "utf8"), file);
  const p = f.province;
  if (!p) throw new ConfigFileError(`${file}: province is required`);
  const k = f.kit;
  const protocol = (p.protocol || "grpc") as KitConfig["province"]["protocol"];
  // Names of this run's own, where the config gives none.
  const run = `${process.pid.toString(36)}${randomBytes(3).toString("hex")}`;
  const httpVersion = (p.httpVersion || "2") as "1.1" | "2";
  if (protocol === "grpc" && httpVersion !== "2")
    throw new ConfigFileError(`${file}: province.http_version: gRPC needs HTTP/2, not "1.1"`);
  return {
    province: {
      code: p.code,
      url: p.url,
      controlUrl: p.controlUrl || p.url,
      protocol,
      httpVersion,
      publicKeyFile: resolve(base, p.publicKey),
      controlToken: p.controlToken,
      startCommand: p.startCommand,
      restartCommand: p.restartCommand,
      env: { ...p.env },
      readyTimeoutMs: p.readyTimeoutMs || 30_000,
      caFile: path(base, p.caFile),
      clientCertFile: path(base, p.clientCert),
      clientKeyFile: path(base, p.clientKey),
    },
    kit: {
      // Unset: a free port (printed), so two runs never collide.
      hubListen: k?.hubListen || "127.0.0.1:0",
      // Unset: the kit starts its own nats-server (services.ts).
      natsUrl: k?.natsUrl ?? "",
      natsUser: k?.natsUser ?? "",
      natsPassword: k?.natsPassword ?? "",
      natsNkeySeed: nkeySeedFromEnv({ EVC_NATS_NKEY_SEED: path(base, k?.natsNkeySeed ?? "") }),
      natsAnonymous: k?.natsAnonymous ?? false,
      stream: k?.stream || `EVC_CONFORMANCE_${run.toUpperCase()}`,
      subjectPrefix: k?.subjectPrefix || `evc.conformance.${run}`,
      databaseUrl: k?.databaseUrl || "postgres://postgres@127.0.0.1:5432/postgres",
      schema: k?.schema || `evc_conformance_${run}`,
      ownNames: { stream: !k?.stream, schema: !k?.schema },
      caseTimeoutMs: k?.caseTimeoutMs || 20_000,
      callTimeoutMs: k?.callTimeoutMs || 10_000,
      directiveKeysDir: resolve(base, k?.directiveKeysDir || ".evc-kit-keys"),
      tlsCertFile: path(base, k?.tlsCert ?? ""),
      tlsKeyFile: path(base, k?.tlsKey ?? ""),
      tlsCaFile: path(base, k?.tlsCa ?? ""),
    },
  };
}
