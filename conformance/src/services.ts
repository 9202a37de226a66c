import { mkdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureNats, ensurePostgres, type Service } from "@evc-interop/local-services";
import {
  type BusUser,
  DEFAULT_LAYOUT,
  natsAccountsConfig,
  newNkeyUser,
  provinceInbox,
} from "@evc-interop/runtime";
import type { KitConfig } from "./config.js";

/** What the kit runs on: the configured PostgreSQL and NATS, or ones it started itself. */
export interface KitServices {
  /** The config with the addresses of the services in use and the kit's own NATS credential. */
  config: KitConfig;
  /**
   * For a province the kit starts, about services the kit started: `fallback` (DATABASE_URL)
   * yields to province.env, `imposed` (EVC_NATS_NKEY_SEED, for the kit's own bus) does not.
   */
  provinceEnv: { fallback: Record<string, string>; imposed: Record<string, string> };
  /** One line per service, saying what is used. */
  notes: string[];
  stop(): Promise<void>;
}

/** The file, in kit.directive_keys_dir, holding the province's NKey seed for the kit's own bus. */
function provinceSeedFile(config: KitConfig): string {
  return join(config.kit.directiveKeysDir, `nats-province-${config.province.code}.nk`);
}

/**
 * PostgreSQL for the kit's hub: kit.database_url when it answers, else an embedded PostgreSQL.
 * NATS: kit.nats_url when the config names one, else a nats-server from PATH that the kit starts
 * with two users, itself (the hub) and the province under test, limited like any province to its
 * own consumer and inbox; the province's NKey seed is written to provinceSeedFile.
 */
export async function startServices(config: KitConfig): Promise<KitServices> {
  const started: Service[] = [];
  /** Stops what was started, last first, once (a second call finds nothing left). */
  const stop = async () => {
    for (let s = started.pop(); s; s = started.pop()) await s.stop();
  };
  try {
    let kit = config.kit;
    const fallback: Record<string, string> = {};
    const imposed: Record<string, string> = {};
    const notes: string[] = [];

    const pg = await ensurePostgres(kit.databaseUrl, tmpdir());
    started.push(pg);
    notes.push(pg.note.replace(/^PostgreSQL: /, "PostgreSQL (the kit's hub): "));
    if (pg.url !== kit.databaseUrl) {
      kit = { ...kit, databaseUrl: pg.url };
      fallback.DATABASE_URL = `${pg.url}?sslmode=disable`;
    }

    if (!kit.natsUrl) {
      const hub = newNkeyUser();
      const province = newNkeyUser();
      const code = config.province.code;
      const users: BusUser[] = [
        { user: "evc-conformance", nkey: hub.nkey },
        { user: `province-${code}`, nkey: province.nkey, province: code },
      ];
      const layout = { ...DEFAULT_LAYOUT, stream: kit.stream, subjectPrefix: kit.subjectPrefix };
      const nats = await ensureNats(undefined, natsAccountsConfig(layout, users), "kit.nats_url");
      started.push(nats);
      const seedFile = provinceSeedFile(config);
      await mkdir(kit.directiveKeysDir, { recursive: true, mode: 0o700 });
      await writeFile(seedFile, `${province.seed}\n`, { mode: 0o600 });
      kit = {
        ...kit,
        natsUrl: nats.url,
        natsNkeySeed: hub.seed,
        natsUser: "",
        natsPassword: "",
        natsAnonymous: false,
      };
      imposed.EVC_NATS_NKEY_SEED = seedFile;
      notes.push(
        `${nats.note}; the province connects as its own user: NKey seed in ${seedFile}, reply inbox ${provinceInbox(code)}`,
      );
    } else {
      notes.push(`NATS: using ${kit.natsUrl} (kit.nats_url)`);
    }
    return { config: { ...config, kit }, provinceEnv: { fallback, imposed }, notes, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
