import { applyMigrations, type SchemaMigration } from "@evc-interop/runtime";
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
  {
    version: 2,
    name: "doses scoped to their record; durable intents for hub calls",
    sql: `
-- A dose id is unique within its record, not across records: an activation carrying a dose id
-- another local record holds must still store it on the new record (I3).
ALTER TABLE doses DROP CONSTRAINT doses_pkey;
ALTER TABLE doses ADD PRIMARY KEY (record_id, dose_id);

-- Calls to the hub this province has committed to make, written before the call (or with the
-- local change they report) so that a crash at any point is completed on restart: the id is the
-- idempotency key the hub sees, so a retry gets the first answer.
CREATE TABLE hub_intents (
  id uuid PRIMARY KEY,
  -- 'register' (RegisterRecord), 'close' (CloseRecord), 'report-dose' (ReportDose of a dose
  -- stored here under the record's lock), 'migrate', 'reissue' (ReissueCertificate).
  kind text NOT NULL,
  record_id text,
  -- Registration only: the person, so that one registration per person is pending at a time.
  id_type text,
  id_number text,
  -- The hub request, protobuf binary.
  request bytea NOT NULL,
  -- PENDING until the hub answered; DONE once its answer is applied here; REFUSED when the hub
  -- said no (last_error says why).
  state text NOT NULL DEFAULT 'PENDING',
  attempts int NOT NULL DEFAULT 0,
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  ended_at timestamptz
);
CREATE UNIQUE INDEX hub_intents_one_registration ON hub_intents (id_type, id_number)
  WHERE kind = 'register' AND state = 'PENDING';
CREATE INDEX hub_intents_pending ON hub_intents (created_at) WHERE state = 'PENDING';
CREATE INDEX hub_intents_pending_by_record ON hub_intents (record_id) WHERE state = 'PENDING';
`,
  },
  {
    version: 3,
    name: "directives parked while an earlier one of their record is missing",
    sql: `
-- A directive that arrived before an earlier one of its record waits here, not on the bus
-- (where a flood of them would fill the consumer's max_ack_pending and stop good ones). It is
-- applied as soon as its predecessor is; one that waits too long becomes poison (alarmed).
CREATE TABLE parked (
  directive_id uuid PRIMARY KEY,
  record_id text NOT NULL,
  record_sequence bigint NOT NULL,
  payload bytea NOT NULL,
  parked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX parked_by_record ON parked (record_id, record_sequence);
CREATE INDEX parked_by_age ON parked (parked_at);
`,
  },
  {
    version: 4,
    name: "one pending migration request per person",
    sql: `
-- 'migrate' intents (RequestMigration): like registrations, one pending per person, resumed
-- with its own idempotency key by a second call.
CREATE UNIQUE INDEX hub_intents_one_migration ON hub_intents (id_type, id_number)
  WHERE kind = 'migrate' AND state = 'PENDING';
`,
  },
  {
    version: 5,
    name: "access log of person-level reads",
    sql: `
-- Who read what: every read of person-level data by a phone-tier caller. Append-only.
CREATE TABLE record_reads (
  position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  read_at timestamptz NOT NULL DEFAULT now(),
  caller text NOT NULL,
  scope text NOT NULL,
  purpose text NOT NULL,
  method text NOT NULL,
  record_id text,
  outcome text NOT NULL
);
CREATE INDEX record_reads_by_record ON record_reads (record_id, position DESC);
CREATE INDEX record_reads_by_caller ON record_reads (caller, position DESC);
CREATE FUNCTION record_reads_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the access log is append-only (% on %)', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER record_reads_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON record_reads
  FOR EACH STATEMENT EXECUTE FUNCTION record_reads_forbid_change();
`,
  },
  {
    version: 6,
    name: "a reissued certificate names its replacement",
    sql: `
-- Set when a certificate was REVOKED by a reissue (revocation_reason REISSUED): the number that
-- replaced it, which status by the old number tells.
ALTER TABLE certificates ADD COLUMN replaced_by text;
`,
  },
  {
    version: 7,
    name: "records held before the hub existed, until onboarded",
    sql: `
-- A record the province held before the national hub existed, loaded into its schema by the
-- province's own data migration with onboarding = 'pending' (docs: "Onboarding"), until
-- "evc-province onboard" loads it into the hub (then NULL, like every record the hub made);
-- 'conflict': the hub holds the person already (see onboarding_conflicts), for review;
-- 'invalid': the hub refused the record as malformed (the detail names the field).
-- Reconciliation never touches the certificates of a record that is not NULL here.
ALTER TABLE records ADD COLUMN onboarding text
  CHECK (onboarding IN ('pending', 'conflict', 'invalid'));
-- By record id: reconciliation's probe of each certificate's record stays one index look-up
-- however many records wait, and onboarding pages through the pending ones in id order.
CREATE INDEX records_onboarding ON records (record_id) WHERE onboarding IS NOT NULL;

-- Why a record was not onboarded, as the hub answered (names no identity).
CREATE TABLE onboarding_conflicts (
  record_id text PRIMARY KEY REFERENCES records (record_id),
  conflict text NOT NULL,
  holder_province text NOT NULL DEFAULT '',
  holder_record_id text NOT NULL DEFAULT '',
  detail text NOT NULL,
  at timestamptz NOT NULL DEFAULT now()
);
`,
  },
];

export function migrate(sql: Sql, schema: string): Promise<number[]> {
  return applyMigrations(sql, schema, "evc-province", MIGRATIONS);
}
