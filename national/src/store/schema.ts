import { applyMigrations, type SchemaMigration } from "@evc-interop/runtime";
import type { Sql } from "postgres";

/**
 * Versioned schema migrations of the hub, applied in order at start (under an advisory lock,
 * so several hub replicas starting together apply each once). Never edit a released migration:
 * add a new one.
 */
const MIGRATIONS: SchemaMigration[] = [
  {
    version: 1,
    name: "event store, projections, outbox",
    sql: `
-- Append-only event log. position is the global insertion order; txid lets readers stay below
-- the oldest open transaction so they never skip an in-flight event.
CREATE TABLE events (
  position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id uuid NOT NULL UNIQUE,
  stream_id text NOT NULL,
  stream_version bigint NOT NULL,
  type text NOT NULL,
  data jsonb NOT NULL,
  recorded_at timestamptz NOT NULL,
  txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  UNIQUE (stream_id, stream_version)
);
CREATE INDEX events_txid ON events (txid, position);
CREATE INDEX events_recorded_at ON events (recorded_at);

CREATE FUNCTION evc_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the event log is append-only (% on %)', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON events
  FOR EACH STATEMENT EXECUTE FUNCTION evc_forbid_change();

-- Hash chain over the log, written by the sealer in (txid, position) order behind the xmin
-- horizon: seq is the chain order, hash = sha256(previous hash || canonical event).
CREATE TABLE event_chain (
  seq bigint PRIMARY KEY,
  position bigint NOT NULL UNIQUE REFERENCES events (position),
  txid xid8 NOT NULL,
  hash bytea NOT NULL
);
CREATE TRIGGER event_chain_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON event_chain
  FOR EACH STATEMENT EXECUTE FUNCTION evc_forbid_change();

-- Fold of each person's stream (derivable from events; kept for fast command handling).
CREATE TABLE persons (
  person_key text PRIMARY KEY,
  version bigint NOT NULL,
  state jsonb NOT NULL
);

-- Snapshot projection. The partial unique indexes are the invariants themselves.
CREATE TABLE records (
  record_id text PRIMARY KEY,
  person_key text NOT NULL,
  owner_province text NOT NULL,
  status text NOT NULL,
  certificate_number text NOT NULL,
  version bigint NOT NULL,
  position bigint NOT NULL
);
CREATE UNIQUE INDEX records_one_open_per_person ON records (person_key) WHERE status <> 'CLOSED'; -- I1

CREATE TABLE certificates (
  certificate_number text PRIMARY KEY,
  record_id text NOT NULL,
  person_key text NOT NULL,
  province text NOT NULL,
  owner_province text NOT NULL,
  status text NOT NULL,
  record_status text NOT NULL,
  revocation_reason text,
  issued_at timestamptz NOT NULL,
  status_changed_at timestamptz NOT NULL,
  version bigint NOT NULL,
  position bigint NOT NULL
);
CREATE UNIQUE INDEX certificates_one_normal_per_person ON certificates (person_key) WHERE status = 'NORMAL'; -- I2
-- Snapshot pages are keyset-ordered by certificate number, byte-wise (COLLATE "C").
CREATE INDEX certificates_by_province ON certificates (province, certificate_number COLLATE "C");

CREATE TABLE migrations (
  migration_id uuid PRIMARY KEY,
  person_key text NOT NULL,
  record_id text NOT NULL,
  source_province text NOT NULL,
  target_province text NOT NULL,
  state text NOT NULL,
  attempt int NOT NULL,
  requested_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  deadline timestamptz NOT NULL,
  source_certificate_number text NOT NULL,
  target_certificate_number text,
  end_reason text
);
-- The per-person lock: one open migration per person, across every hub replica.
CREATE UNIQUE INDEX migrations_one_open_per_person ON migrations (person_key)
  WHERE state IN ('REQUESTED', 'SOURCE_SUSPENDED', 'COMPENSATING');
CREATE INDEX migrations_open_deadline ON migrations (deadline)
  WHERE state IN ('REQUESTED', 'SOURCE_SUSPENDED', 'COMPENSATING');
CREATE INDEX migrations_source ON migrations (source_province, requested_at DESC);
CREATE INDEX migrations_target ON migrations (target_province, requested_at DESC);

-- Dose ids are globally unique (I3).
CREATE TABLE doses (
  dose_id text PRIMARY KEY,
  person_key text NOT NULL
);

-- Transactional outbox: directives written with the events that caused them.
CREATE TABLE directives (
  directive_id uuid PRIMARY KEY,
  province text NOT NULL,
  person_key text NOT NULL,
  record_id text NOT NULL,
  record_sequence bigint NOT NULL,
  migration_id uuid,
  action text NOT NULL,
  attempt int NOT NULL,
  payload bytea NOT NULL,
  state text NOT NULL DEFAULT 'PENDING',
  publish_count int NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL,
  last_published_at timestamptz,
  next_publish_at timestamptz NOT NULL,
  receipt bytea,
  receipt_outcome text,
  disposition text,
  acknowledged_at timestamptz,
  UNIQUE (province, record_id, record_sequence)
);
CREATE INDEX directives_due ON directives (next_publish_at) WHERE state IN ('PENDING', 'DELIVERED');
CREATE INDEX directives_by_province ON directives (province, state, created_at);

-- Idempotency keys: the same (caller, key) returns the first response.
CREATE TABLE idempotency (
  province text NOT NULL,
  idempotency_key text NOT NULL,
  request_hash text NOT NULL,
  response bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (province, idempotency_key)
);
`,
  },
  {
    version: 2,
    name: "dose identity is per person",
    sql: `
-- A dose id is unique within its person's state, not across persons: a province that minted
-- one id for two children must not make the second child impossible to register or migrate
-- (I3). The person's event stream already deduplicates its own doses.
DROP TABLE doses;
`,
  },
  {
    version: 3,
    name: "contents digest of each ACTIVE record on its current certificate",
    sql: `
-- SnapshotEntry.contents_digest: what a province compares its copy of a record with.
ALTER TABLE certificates ADD COLUMN contents_digest text NOT NULL DEFAULT '';
UPDATE certificates c SET contents_digest = encode(sha256(convert_to(
    (p.state->'identity'->>'idNumber') || E'\n' || coalesce((
      SELECT string_agg(d->>'doseId', E'\n' ORDER BY d->>'doseId' COLLATE "C")
      FROM jsonb_array_elements(p.state->'records'->c.record_id->'doses') d), ''),
    'UTF8')), 'hex')
  FROM persons p
  WHERE p.person_key = c.person_key
    AND p.state->'records'->c.record_id->>'status' = 'ACTIVE'
    AND p.state->'records'->c.record_id->>'certificateNumber' = c.certificate_number;
`,
  },
  {
    version: 4,
    name: "per-person data keys (crypto-shredding of identity in the event log)",
    sql: `
-- The key each person's identity is sealed under in the event log. Deleting a key (dek NULL)
-- makes every identity in that person's events unreadable; the events and their hash chain do
-- not change. Not append-only: erasure is what this table is for.
CREATE TABLE person_keys (
  person_key text PRIMARY KEY,
  dek bytea,
  erased_at timestamptz
);
`,
  },
  {
    version: 5,
    name: "access log of person-level reads",
    sql: `
-- Who read whose person-level data at the hub, what for, when. Append-only.
CREATE TABLE person_reads (
  position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  read_at timestamptz NOT NULL DEFAULT now(),
  caller text NOT NULL,
  person_key text NOT NULL,
  purpose text NOT NULL,
  method text NOT NULL
);
CREATE INDEX person_reads_by_person ON person_reads (person_key, position DESC);
CREATE INDEX person_reads_by_caller ON person_reads (caller, position DESC);
CREATE TRIGGER person_reads_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON person_reads
  FOR EACH STATEMENT EXECUTE FUNCTION evc_forbid_change();
`,
  },
  {
    version: 6,
    name: "NEEDS_OPERATOR holds the per-person lock",
    sql: `
-- A migration the hub gave up compensating keeps the person's lock until an operator acts.
DROP INDEX migrations_one_open_per_person;
CREATE UNIQUE INDEX migrations_one_open_per_person ON migrations (person_key)
  WHERE state IN ('REQUESTED', 'SOURCE_SUSPENDED', 'COMPENSATING', 'NEEDS_OPERATOR');
CREATE INDEX migrations_needing_operator ON migrations (updated_at) WHERE state = 'NEEDS_OPERATOR';
`,
  },
  {
    version: 7,
    name: "when each province last read its whole snapshot",
    sql: `
-- A province's reconciliation pass reads its whole snapshot: when it last did, for operators.
CREATE TABLE province_snapshot_reads (
  province text PRIMARY KEY,
  last_read_at timestamptz NOT NULL
);
`,
  },
  {
    version: 8,
    name: "a certificate number stays its person's",
    sql: `
-- The projection upserts certificates by number: one person's write must never land on another
-- person's row (a province reusing a number). Raised as the duplicate key it is, so the command
-- is refused (AlreadyExists) and its whole transaction rolled back.
CREATE FUNCTION evc_certificate_taken() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'certificate % is another person''s', OLD.certificate_number
    USING ERRCODE = 'unique_violation', CONSTRAINT = 'certificates_pkey';
END $$;
CREATE TRIGGER certificates_keep_person BEFORE UPDATE ON certificates
  FOR EACH ROW WHEN (OLD.person_key IS DISTINCT FROM NEW.person_key)
  EXECUTE FUNCTION evc_certificate_taken();
`,
  },
  {
    version: 9,
    name: "directives by migration",
    sql: `
-- When a migration ends, its unanswered saga steps are superseded by migration id: without an
-- index every ended migration read the whole outbox (seen in the bench, growing with it).
CREATE INDEX directives_by_migration ON directives (migration_id) WHERE migration_id IS NOT NULL;
`,
  },
  {
    version: 10,
    name: "a person, not a document",
    sql: `
-- Every identity document the hub knows, by its key (the same keyed hash of type and number a
-- person's stream was first keyed by), and the person it belongs to. A person's first document
-- is its own stream key; later ones (the resident ID after the birth certificate) are linked by
-- a DocumentLinked event. A document belongs to one person: the primary key is the rule.
CREATE TABLE document_links (
  document_key text PRIMARY KEY,
  person_key text NOT NULL
);
CREATE INDEX document_links_by_person ON document_links (person_key);
INSERT INTO document_links (document_key, person_key) SELECT person_key, person_key FROM persons;
`,
  },
  {
    version: 11,
    name: "a record's certificates, for a province resyncing it; closed records' digests",
    sql: `
-- StreamSnapshotRequest.record_ids: a province found a record behind the hub (a directive
-- waiting on a sequence gap after a restore) and reads that record's rows alone.
CREATE INDEX certificates_by_record ON certificates (record_id);
-- SnapshotEntry.contents_digest on a CLOSED record's last certificate too (as v3 for ACTIVE).
UPDATE certificates c SET contents_digest = encode(sha256(convert_to(
    (p.state->'identity'->>'idNumber') || E'\n' || coalesce((
      SELECT string_agg(d->>'doseId', E'\n' ORDER BY d->>'doseId' COLLATE "C")
      FROM jsonb_array_elements(p.state->'records'->c.record_id->'doses') d), ''),
    'UTF8')), 'hex')
  FROM persons p
  WHERE p.person_key = c.person_key
    AND p.state->'identity'->>'idNumber' IS NOT NULL
    AND p.state->'records'->c.record_id->>'status' = 'CLOSED'
    AND p.state->'records'->c.record_id->>'certificateNumber' = c.certificate_number;
`,
  },
];

/** Applies pending migrations to the current schema. Returns the versions applied now. */
export function migrate(sql: Sql, schema: string): Promise<number[]> {
  return applyMigrations(sql, schema, "evc-hub", MIGRATIONS);
}
