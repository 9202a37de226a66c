package main

import (
	"database/sql"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/golang/protobuf/proto"
	"github.com/golang/protobuf/ptypes"
	"github.com/lib/pq"

	commonv1 "evcgen/evc/common/v1"
)

// The province's tables. Records, doses and certificates are what phones and clinics read;
// the inbox holds the receipt of every directive applied, under its id (I4): a copy of a
// directive gets the stored receipt and changes nothing.
const schemaSQL = `
CREATE TABLE IF NOT EXISTS records (
  record_id     text PRIMARY KEY,
  identity_key  text NOT NULL,
  identity      bytea NOT NULL,   -- evc.common.v1.Identity
  status        int NOT NULL,     -- evc.common.v1.RecordStatus
  last_sequence bigint NOT NULL   -- record_sequence of the last directive applied
);
CREATE INDEX IF NOT EXISTS records_identity ON records (identity_key);
CREATE TABLE IF NOT EXISTS doses (
  record_id text NOT NULL REFERENCES records,
  dose_id   text NOT NULL,
  dose      bytea NOT NULL,       -- evc.common.v1.Dose
  position  bigserial,
  PRIMARY KEY (record_id, dose_id)
);
CREATE TABLE IF NOT EXISTS certificates (
  number            text PRIMARY KEY,
  record_id         text NOT NULL REFERENCES records,
  status            int NOT NULL, -- evc.common.v1.CertificateStatus
  revocation_reason int NOT NULL DEFAULT 0,
  issued_at         timestamptz NOT NULL DEFAULT now(),
  changed_at        timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS inbox (
  directive_id text PRIMARY KEY,
  receipt      bytea NOT NULL,    -- evc.directive.v1.Receipt, as first answered
  sent         boolean NOT NULL DEFAULT false,
  position     bigserial
);`

type store struct{ db *sql.DB }

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func openStore(url, schema string) (*store, error) {
	if !schemaName.MatchString(schema) {
		return nil, fmt.Errorf("EVC_SCHEMA %q: lower-case letters, digits and _ only", schema)
	}
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	// lib/pq passes search_path to the server as a run-time parameter of every connection.
	db, err := sql.Open("postgres", url+sep+"search_path="+schema)
	if err != nil {
		return nil, err
	}
	if _, err := db.Exec("CREATE SCHEMA IF NOT EXISTS " + schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("database: %v", err)
	}
	if _, err := db.Exec(schemaSQL); err != nil {
		db.Close()
		return nil, fmt.Errorf("database schema: %v", err)
	}
	return &store{db: db}, nil
}

func (s *store) close() { s.db.Close() }

// identityKey is how a person is found by identity: document type and number.
func identityKey(id *commonv1.Identity) string {
	return fmt.Sprintf("%d:%s", id.GetIdType(), id.GetIdNumber())
}

// certificate is a certificate row as the province API shows it.
func (s *store) certificate(q string, arg string) (*commonv1.Certificate, error) {
	var c commonv1.Certificate
	var status, reason int32
	var issued, changed time.Time
	err := s.db.QueryRow(q, arg).Scan(&c.CertificateNumber, &c.RecordId, &status, &reason, &issued, &changed)
	if err != nil {
		return nil, err
	}
	c.Status = commonv1.CertificateStatus(status)
	c.RevocationReason = commonv1.CloseReason(reason)
	c.IssuedAt, _ = ptypes.TimestampProto(issued)
	c.StatusChangedAt, _ = ptypes.TimestampProto(changed)
	return &c, nil
}

const certColumns = `SELECT number, record_id, status, revocation_reason, issued_at, changed_at FROM certificates`

func (s *store) certificateByNumber(number string) (*commonv1.Certificate, error) {
	return s.certificate(certColumns+` WHERE number = $1`, number)
}

// certificateOfRecord is the record's current certificate: a live one if there is one, else the
// newest.
func (s *store) certificateOfRecord(recordID string) (*commonv1.Certificate, error) {
	return s.certificate(certColumns+` WHERE record_id = $1 ORDER BY status = 3, issued_at DESC LIMIT 1`, recordID)
}

func (s *store) recordIDOfIdentity(key string) (string, error) {
	var id string
	err := s.db.QueryRow(`SELECT record_id FROM records WHERE identity_key = $1 ORDER BY status LIMIT 1`, key).Scan(&id)
	return id, err
}

// record is a record's contents and status.
func (s *store) record(recordID string) (*commonv1.RecordContents, commonv1.RecordStatus, error) {
	var identity []byte
	var status int32
	if err := s.db.QueryRow(`SELECT identity, status FROM records WHERE record_id = $1`, recordID).Scan(&identity, &status); err != nil {
		return nil, 0, err
	}
	rec := &commonv1.RecordContents{RecordId: recordID, Identity: &commonv1.Identity{}}
	if err := proto.Unmarshal(identity, rec.Identity); err != nil {
		return nil, 0, err
	}
	doses, err := loadDoses(s.db, recordID)
	rec.Doses = doses
	return rec, commonv1.RecordStatus(status), err
}

type querier interface {
	Query(query string, args ...interface{}) (*sql.Rows, error)
}

func loadDoses(q querier, recordID string) ([]*commonv1.Dose, error) {
	rows, err := q.Query(`SELECT dose FROM doses WHERE record_id = $1 ORDER BY position`, recordID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var doses []*commonv1.Dose
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, err
		}
		d := &commonv1.Dose{}
		if err := proto.Unmarshal(raw, d); err != nil {
			return nil, err
		}
		doses = append(doses, d)
	}
	return doses, rows.Err()
}

// unsent is up to limit stored receipts the hub has not accepted yet, oldest first.
func (s *store) unsent(limit int) (ids []string, receipts [][]byte, err error) {
	rows, err := s.db.Query(`SELECT directive_id, receipt FROM inbox WHERE NOT sent ORDER BY position LIMIT $1`, limit)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var raw []byte
		if err := rows.Scan(&id, &raw); err != nil {
			return nil, nil, err
		}
		ids, receipts = append(ids, id), append(receipts, raw)
	}
	return ids, receipts, rows.Err()
}

func (s *store) markSent(ids []string) error {
	_, err := s.db.Exec(`UPDATE inbox SET sent = true WHERE directive_id = ANY($1)`, pq.Array(ids))
	return err
}
