import type { DescService } from "@bufbuild/protobuf";
import {
  type Client,
  Code,
  ConnectError,
  createClient,
  type Interceptor,
} from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { AuditService } from "@evc-interop/gen/evc/national/v1/audit_service_pb";
import { DirectiveService } from "@evc-interop/gen/evc/national/v1/directive_service_pb";
import { MigrationService } from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { OperatorService } from "@evc-interop/gen/evc/national/v1/operator_service_pb";

/** The hub's services the console uses, as the signed-in operator. */
export interface Hub {
  migrations: Client<typeof MigrationService>;
  directives: Client<typeof DirectiveService>;
  operator: Client<typeof OperatorService>;
  audit: Client<typeof AuditService>;
}

/** Clients of the hub that served the page, each call carrying the operator's token. */
export function hubClients(token: string, onUnauthenticated: () => void): Hub {
  const auth: Interceptor = (next) => async (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    try {
      return await next(req);
    } catch (err) {
      // An expired or revoked token: back to the sign-in form.
      if (ConnectError.from(err).code === Code.Unauthenticated) onUnauthenticated();
      throw err;
    }
  };
  const transport = createConnectTransport({
    baseUrl: window.location.origin,
    interceptors: [auth],
  });
  const client = <S extends DescService>(s: S) => createClient(s, transport);
  return {
    migrations: client(MigrationService),
    directives: client(DirectiveService),
    operator: client(OperatorService),
    audit: client(AuditService),
  };
}

/** What the hub said, for a person: its code and its message (the field it names included). */
export function errorText(err: unknown): string {
  const e = ConnectError.from(err);
  return `${Code[e.code]}: ${e.rawMessage}`;
}
