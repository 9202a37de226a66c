import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  DirectiveService,
  DirectiveState,
} from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import {
  MigrationService,
  MigrationState,
} from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { OperatorService } from "@evc-interop/gen/evc/national/v1/operator_service_pb";
import { bearer, clientTlsFromEnv, TokenSigner, transportTls } from "@evc-interop/runtime";
import type { JWK } from "jose";

export const OPERATOR_USAGE = `usage: evc-operator [--hub URL] [--key FILE] COMMAND

  migrations [--state STATE] [--province CODE] [--stuck-minutes N]
      migrations, newest first: STATE one of ${Object.keys(MigrationState)
        .filter((k) => Number.isNaN(Number(k)) && k !== "UNSPECIFIED")
        .join(", ")};
      --stuck-minutes: unchanged for at least N minutes
  directives [--state STATE] [--province CODE] [--older-minutes N]
      directives, oldest first (default: every state but ACKNOWLEDGED): STATE one of
      ${Object.keys(DirectiveState)
        .filter((k) => Number.isNaN(Number(k)) && k !== "UNSPECIFIED")
        .join(", ")}
  force-abort MIGRATION_ID --reason TEXT
      ends a migration stuck on its target's revoke (NEEDS_OPERATOR, COMPENSATING): the source
      is restored and the lock released; only after the target confirmed it holds no NORMAL
      certificate for the person. The reason is kept in the person's log with your name.

  force-complete MIGRATION_ID --certificate NUMBER --reason TEXT
      completes a migration whose target activated the record but whose receipt never came
      (SOURCE_SUSPENDED): only after the target confirmed it holds the record ACTIVE with the
      NORMAL certificate NUMBER

  redrive DIRECTIVE_ID --reason TEXT
      publishes a dead-lettered (FAILED) or superseded directive again, once its province can
      take it; refused if a later directive to that province for the record supersedes it, or
      its migration no longer waits for it

  supersede DIRECTIVE_ID --reason TEXT
      stops republishing a directive and clears its alarm (dead letter, rejection) once settled
      another way; what was published stays on the bus and is still applied in order

  token
      prints a bearer token for the operator console (the hub's /console): paste it into the
      sign-in form; it lasts 15 minutes (the most the hub accepts), then make another

  --hub URL   the hub (default EVC_HUB_URL, else http://127.0.0.1:8080); over https, EVC_TLS_CA
              (and EVC_TLS_CLIENT_CERT, EVC_TLS_CLIENT_KEY) as for a province
  --key FILE  your private JWK, kid operator:<name> (default EVC_OPERATOR_KEY); a viewer's
              (viewer:<name>) lists, and sees no person's identity, but cannot act`;

/** A line of output, and the process's exit code: 0 done, 1 refused by the hub, 2 misused. */
export type Print = (line: string) => void;

class Usage extends Error {}

function enumValue<E extends Record<string, string | number>>(
  e: E,
  name: string | undefined,
  flag: string,
): number {
  if (!name) return 0;
  const v = e[name.toUpperCase() as keyof E];
  if (typeof v !== "number" || v === 0) throw new Usage(`${flag}: unknown state "${name}"`);
  return v;
}

function minutesAgo(text: string | undefined, flag: string) {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0) throw new Usage(`${flag}: not a number of minutes: ${text}`);
  return timestampFromDate(new Date(Date.now() - n * 60_000));
}

const iso = (t: Parameters<typeof timestampDate>[0] | undefined) =>
  t ? timestampDate(t).toISOString() : "-";

/** One output line: tab-separated fields, no trailing empty ones. */
const line = (...fields: string[]) => fields.join("\t").trimEnd();

interface Call {
  transport: Transport;
  values: ReturnType<typeof parse>["values"];
  /** The command's positional arguments (an id, for an action). */
  ids: string[];
  print: Print;
  /** Signs the bearer tokens of the calls (and `token`'s). */
  signer: TokenSigner;
}

function reasonOf(c: Call, command: string): string {
  if (!c.values.reason) throw new Usage(`${command}: --reason TEXT is required`);
  return c.values.reason;
}

/** Every page of a listing, following next_page_token to the end. */
async function* pages<P extends { nextPageToken: string }>(
  list: (pageToken: string) => Promise<P>,
): AsyncGenerator<P> {
  let pageToken = "";
  do {
    const page = await list(pageToken);
    yield page;
    pageToken = page.nextPageToken;
  } while (pageToken);
}

/** The commands, by name: how many ids each takes, and what it does. */
const COMMANDS: Record<string, { args: number; action: (c: Call) => Promise<void> }> = {
  migrations: {
    args: 0,
    async action({ transport, values, print }) {
      const client = createClient(MigrationService, transport);
      const filter = {
        state: enumValue(MigrationState, values.state, "--state"),
        provinceCode: values.province ?? "",
        updatedBefore: minutesAgo(values["stuck-minutes"], "--stuck-minutes"),
      };
      const list = (pageToken: string) =>
        client.listMigrations({ ...filter, pageSize: 500, pageToken });
      for await (const page of pages(list)) {
        for (const m of page.migrations) {
          const route = `${m.sourceProvinceCode}->${m.targetProvinceCode}`;
          const updated = `updated ${iso(m.updatedAt)}`;
          print(line(m.migrationId, MigrationState[m.state], route, updated, m.endReason));
        }
      }
    },
  },
  directives: {
    args: 0,
    async action({ transport, values, print }) {
      const client = createClient(DirectiveService, transport);
      const filter = {
        state: enumValue(DirectiveState, values.state, "--state"),
        provinceCode: values.province ?? "",
        createdBefore: minutesAgo(values["older-minutes"], "--older-minutes"),
      };
      const list = (pageToken: string) =>
        client.listDirectives({ ...filter, pageSize: 1000, pageToken });
      for await (const page of pages(list)) {
        for (const s of page.directives) {
          const d = s.directive;
          print(
            line(
              d?.directiveId ?? "",
              DirectiveState[s.state],
              d?.targetProvinceCode ?? "",
              d?.action.case ?? "",
              `issued ${iso(d?.issuedAt)}`,
              `publishes ${s.publishCount}`,
              s.receipt?.detail ?? "",
            ),
          );
        }
      }
    },
  },
  token: {
    args: 0,
    async action({ signer, print }) {
      // As long as the hub accepts one: a console session is signed in again every 15 minutes.
      print(await new TokenSigner(signer.credential, 900).token());
    },
  },
  "force-abort": {
    args: 1,
    async action(c) {
      const reason = reasonOf(c, "force-abort");
      const { migration } = await createClient(OperatorService, c.transport).forceAbortMigration({
        migrationId: c.ids[0] ?? "",
        reason,
      });
      const state = migration?.state ?? MigrationState.UNSPECIFIED;
      c.print(line(migration?.migrationId ?? "", MigrationState[state]));
    },
  },
  "force-complete": {
    args: 1,
    async action(c) {
      const reason = reasonOf(c, "force-complete");
      if (!c.values.certificate)
        throw new Usage("force-complete: --certificate NUMBER (the target's) is required");
      const { migration } = await createClient(OperatorService, c.transport).forceCompleteMigration(
        {
          migrationId: c.ids[0] ?? "",
          certificateNumber: c.values.certificate,
          reason,
        },
      );
      const state = migration?.state ?? MigrationState.UNSPECIFIED;
      c.print(line(migration?.migrationId ?? "", MigrationState[state]));
    },
  },
  supersede: {
    args: 1,
    async action(c) {
      const reason = reasonOf(c, "supersede");
      const { directive } = await createClient(OperatorService, c.transport).supersedeDirective({
        directiveId: c.ids[0] ?? "",
        reason,
      });
      const state = directive?.state ?? DirectiveState.UNSPECIFIED;
      c.print(line(directive?.directive?.directiveId ?? "", DirectiveState[state]));
    },
  },
  redrive: {
    args: 1,
    async action(c) {
      const reason = reasonOf(c, "redrive");
      const { directive } = await createClient(OperatorService, c.transport).redriveDirective({
        directiveId: c.ids[0] ?? "",
        reason,
      });
      const state = directive?.state ?? DirectiveState.UNSPECIFIED;
      c.print(line(directive?.directive?.directiveId ?? "", DirectiveState[state]));
    },
  },
};

/** `evc-operator …`: the operator's commands against a running hub (docs/operations.md). */
export async function operatorCli(
  argv: string[],
  env: NodeJS.ProcessEnv,
  print: Print,
): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    print(`evc-operator: ${err instanceof Error ? err.message : String(err)}\n${OPERATOR_USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  try {
    const keyFile = values.key ?? env.EVC_OPERATOR_KEY;
    if (!command) throw new Usage("no command");
    if (!keyFile) throw new Usage("no operator key: --key FILE or EVC_OPERATOR_KEY");
    const jwk = JSON.parse(await readFile(keyFile, "utf8")) as JWK;
    const subject = (jwk.kid ?? "").split("#")[0] ?? "";
    if (!/^(operator|viewer):/.test(subject) || !jwk.d)
      throw new Usage(
        `${keyFile}: not an operator's or a viewer's private JWK (kid operator:<name> or viewer:<name>)`,
      );
    const signer = new TokenSigner({ subject, privateJwk: jwk });
    const transport = createConnectTransport({
      baseUrl: values.hub ?? env.EVC_HUB_URL ?? "http://127.0.0.1:8080",
      httpVersion: "2",
      defaultTimeoutMs: 30_000,
      interceptors: [bearer(() => signer.token())],
      nodeOptions: transportTls(clientTlsFromEnv(env)),
    });
    const run = COMMANDS[command];
    if (run && run.args === rest.length) {
      await run.action({ transport, values, ids: rest, print, signer });
      return 0;
    }
    throw new Usage(`unknown command: ${positionals.join(" ")}`);
  } catch (err) {
    if (err instanceof Usage) {
      print(`evc-operator: ${err.message}\n${OPERATOR_USAGE}`);
      return 2;
    }
    if (err instanceof ConnectError) {
      print(`evc-operator: the hub refused: [${Code[err.code]}] ${err.rawMessage}`);
      return 1;
    }
    throw err;
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      hub: { type: "string" },
      key: { type: "string" },
      state: { type: "string" },
      province: { type: "string" },
      "stuck-minutes": { type: "string" },
      "older-minutes": { type: "string" },
      reason: { type: "string" },
      certificate: { type: "string" },
    },
  });
}
