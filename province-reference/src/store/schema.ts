import { applyMigrations, type SchemaMigration } from "@evc-interop/national/store/migrations";
import type { Sql } from "postgres";

/** Versioned schema of a province store; applied at start under an advisory lock. */
const MIGRATIONS: SchemaMigration[] = [
  {
    version: 1,
    name: "province store, inbox, receipts outbox",
    sql: `
-- The province's records (its local cache of the hub's decisions, and the system of record
-- for its own data). identity is null for a row created by reconciliation before the record's
-- contents arrived.
CREATE TABLE records (
  record_id text PRIMARY KEY,
  id_type text,
  id_number text,
  identity jsonb,
  status text NOT NULL,
  -- Highest hub stream version applied to this record (directives and reconciliation).
  hub_version bigint NOT NULL DEFAULT 0,
  -- Last directive sequence applied for this record (per-record order).
  last_sequence bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX records_by_identity ON records (id_type, id_number);

CREATE TABLE doses (
  dose_id text PRIMARY KEY,
  record_id text NOT NULL REFERENCES records (record_id),
  dose jsonb NOT NULL,
  administered_at timestamptz NOT NULL
);
CREATE INDEX doses_by_record ON doses (record_id, administered_at);

CREATE TABLE certificates (
  certificate_number text PRIMARY KEY,
  record_id text NOT NULL REFERENCES records (record_id),
  status text NOT NULL,
  revocation_reason text,
  owner_province text NOT NULL,
  issued_at timestamptz NOT NULL,
  status_changed_at timestamptz NOT NULL,
  hub_version bigint NOT NULL DEFAULT 0
);
CREATE INDEX certificates_by_record ON certificates (record_id);
-- Reconciliation pages through certificates byte-wise, like the hub's snapshot.
CREATE INDEX certificates_c_order ON certificates (certificate_number COLLATE "C");

CREATE TABLE certificate_history (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  certificate_number text NOT NULL,
  status text NOT NULL,
  cause text NOT NULL,
  at timestamptz NOT NULL DEFAULT now()
);

-- Exactly-once effect (I4): one row per directive applied, with the receipt it produced.
CREATE TABLE inbox (
  directive_id uuid PRIMARY KEY,
  record_id text NOT NULL,
  action text NOT NULL,
  receipt bytea NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  submitted_at timestamptz
);
CREATE INDEX inbox_unsubmitted ON inbox (applied_at) WHERE submitted_at IS NULL;

-- Messages that could never be applied (undecodable, another province's, unknown action).
CREATE TABLE poison (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  stream_sequence bigint,
  directive_id text,
  reason text NOT NULL,
  payload bytea NOT NULL,
  at timestamptz NOT NULL DEFAULT now()
);
`,
  },
];

export function migrate(sql: Sql, schema: string): Promise<number[]> {
  return applyMigrations(sql, schema, "evc-province", MIGRATIONS);
}
