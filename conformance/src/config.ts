import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { nkeySeedFromEnv } from "@evc-interop/national/bus/nats-auth";
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
    natsUrl: string;
    natsUser: string;
    natsPassword: string;
    /** NKey seed text of the kit's NATS user (from the file nats_nkey_seed names). */
    natsNkeySeed: string;
    stream: string;
    subjectPrefix: string;
    /** PostgreSQL the kit's own hub uses. */
    databaseUrl: string;
    schema: string;
    /** Per-case timeout. */
    caseTimeoutMs: number;
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

function str(o: Record<string, unknown>, key: string, fallback?: string): string {
  const v = o[key];
  if (v === undefined || v === null) {
    if (fallback === undefined) throw new Error(`config: ${key} is required`);
    return fallback;
  }
  if (typeof v !== "string" && typeof v !== "number")
    throw new Error(`config: ${key} must be a string`);
  return String(v);
}

function obj(o: Record<string, unknown>, key: string): Record<string, unknown> {
  const v = o[key];
  if (v === undefined) return {};
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new Error(`config: ${key} must be a mapping`);
  return v as Record<string, unknown>;
}

/** A path relative to the config file; empty stays empty. */
function path(base: string, p: string): string {
  return p ? resolve(base, p) : "";
}

export function loadConfig(file: string): KitConfig {
  const raw = parse(readFileSync(file, "utf8")) as unknown;
  if (typeof raw !== "object" || raw === null) throw new Error(`config: ${file} is not a mapping`);
  const root = raw as Record<string, unknown>;
  const base = dirname(resolve(file));
  const p = obj(root, "province");
  const k = obj(root, "kit");
  const code = str(p, "code");
  if (!/^[1-8][0-9]0000$/.test(code))
    throw new Error(`config: province.code "${code}" is not a GB/T 2260 province code`);
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(obj(p, "env"))) env[key] = String(value);
  return {
    province: {
      code,
      url: str(p, "url"),
      controlUrl: str(p, "control_url", str(p, "url")),
      publicKeyFile: resolve(base, str(p, "public_key")),
      controlToken: str(p, "control_token", ""),
      startCommand: str(p, "start_command", ""),
      restartCommand: str(p, "restart_command", ""),
      env,
      readyTimeoutMs: Number(str(p, "ready_timeout_ms", "30000")),
      caFile: path(base, str(p, "ca_file", "")),
      clientCertFile: path(base, str(p, "client_cert", "")),
      clientKeyFile: path(base, str(p, "client_key", "")),
    },
    kit: {
      hubListen: str(k, "hub_listen", "127.0.0.1:8090"),
      natsUrl: str(k, "nats_url", "nats://127.0.0.1:4222"),
      natsUser: str(k, "nats_user", ""),
      natsPassword: str(k, "nats_password", ""),
      natsNkeySeed: nkeySeedFromEnv({
        EVC_NATS_NKEY_SEED: path(base, str(k, "nats_nkey_seed", "")),
      }),
      stream: str(k, "stream", "EVC_CONFORMANCE"),
      subjectPrefix: str(k, "subject_prefix", "evc.conformance"),
      databaseUrl: str(k, "database_url", "postgres://postgres@127.0.0.1:5432/postgres"),
      schema: str(k, "schema", "evc_conformance"),
      caseTimeoutMs: Number(str(k, "case_timeout_ms", "20000")),
      directiveKeysDir: resolve(base, str(k, "directive_keys_dir", ".evc-kit-keys")),
      tlsCertFile: path(base, str(k, "tls_cert", "")),
      tlsKeyFile: path(base, str(k, "tls_key", "")),
      tlsCaFile: path(base, str(k, "tls_ca", "")),
    },
  };
}
