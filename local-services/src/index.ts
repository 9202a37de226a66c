/** PostgreSQL and NATS for a run on one machine: the configured ones, or ones started here. */
export {
  CannotStartService,
  EmbeddedPostgresUnreachable,
  ensureNats,
  ensurePostgres,
  MissingNatsServer,
  type Service,
} from "./services.js";
