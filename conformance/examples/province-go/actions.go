package main

import (
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/golang/protobuf/proto"
	"github.com/golang/protobuf/ptypes"

	commonv1 "evcgen/evc/common/v1"
	directivev1 "evcgen/evc/directive/v1"
)

const (
	active      = int32(commonv1.RecordStatus_RECORD_STATUS_ACTIVE)
	migratedOut = int32(commonv1.RecordStatus_RECORD_STATUS_MIGRATED_OUT)
	closed      = int32(commonv1.RecordStatus_RECORD_STATUS_CLOSED)
	normal      = int32(commonv1.CertificateStatus_CERTIFICATE_STATUS_NORMAL)
	suspended   = int32(commonv1.CertificateStatus_CERTIFICATE_STATUS_SUSPENDED)
	revoked     = int32(commonv1.CertificateStatus_CERTIFICATE_STATUS_REVOKED)
)

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// recordState is what the province holds of a record, read under the record's lock.
type recordState struct {
	identity     []byte
	status       int32
	lastSequence uint64
}

func loadRecordState(tx *sql.Tx, recordID string) (*recordState, error) {
	var r recordState
	err := tx.QueryRow(`SELECT identity, status, last_sequence FROM records WHERE record_id = $1`, recordID).
		Scan(&r.identity, &r.status, &r.lastSequence)
	if isNoRows(err) {
		return nil, nil
	}
	return &r, err
}

type liveCertificate struct {
	number string
	status int32
}

// writer carries out one directive's action inside its transaction.
type writer struct {
	tx      *sql.Tx
	code    string
	changed []string
}

// live is the record's certificates that are not revoked, newest first.
func (w *writer) live(recordID string) ([]liveCertificate, error) {
	rows, err := w.tx.Query(`SELECT number, status FROM certificates WHERE record_id = $1 AND status <> $2 ORDER BY issued_at DESC`, recordID, revoked)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []liveCertificate
	for rows.Next() {
		var c liveCertificate
		if err := rows.Scan(&c.number, &c.status); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (w *writer) setRecordStatus(recordID string, status int32) error {
	_, err := w.tx.Exec(`UPDATE records SET status = $2 WHERE record_id = $1`, recordID, status)
	return err
}

func (w *writer) setCertificateStatus(number string, status int32, reason commonv1.CloseReason) error {
	_, err := w.tx.Exec(`UPDATE certificates SET status = $2, revocation_reason = $3, changed_at = now() WHERE number = $1`, number, status, int32(reason))
	w.changed = append(w.changed, number)
	return err
}

// addDoses adds the doses the record does not hold yet (a dose id deduplicates, I3); it returns
// how many it added.
func (w *writer) addDoses(recordID string, doses []*commonv1.Dose) (int64, error) {
	var added int64
	for _, d := range doses {
		raw, err := proto.Marshal(d)
		if err != nil {
			return 0, err
		}
		res, err := w.tx.Exec(`INSERT INTO doses (record_id, dose_id, dose) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, recordID, d.DoseId, raw)
		if err != nil {
			return 0, err
		}
		n, _ := res.RowsAffected()
		added += n
	}
	return added, nil
}

// newCertificateNumber is <province code>-<12 random upper-case letters and digits>.
func (w *writer) newCertificateNumber() string {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return w.code + "-" + string(b)
}

// act applies the directive's action and returns the receipt. stale, when not empty, says the
// directive is at or below the record's last sequence with a new id: applied before and lost,
// or passed over. It then adds the doses it carries and changes nothing else (applied to the
// record as it is now, an old activation would issue a second NORMAL certificate), answered
// ALREADY_APPLIED where the record is as it would have made it, else REJECTED INVALID_STATE.
func (w *writer) act(d *directivev1.Directive, rec *recordState, stale string) (*directivev1.Receipt, error) {
	receipt := &directivev1.Receipt{DirectiveId: d.DirectiveId, Attempt: d.Attempt, AppliedAt: ptypes.TimestampNow()}
	reject := func(why directivev1.ReceiptRejection, detail string) (*directivev1.Receipt, error) {
		receipt.Outcome, receipt.Rejection, receipt.Detail = directivev1.ReceiptOutcome_RECEIPT_OUTCOME_REJECTED, why, detail
		return receipt, nil
	}
	done := func(already bool) (*directivev1.Receipt, error) {
		receipt.Outcome = directivev1.ReceiptOutcome_RECEIPT_OUTCOME_APPLIED
		if already {
			receipt.Outcome = directivev1.ReceiptOutcome_RECEIPT_OUTCOME_ALREADY_APPLIED
		}
		return receipt, nil
	}
	notFound := directivev1.ReceiptRejection_RECEIPT_REJECTION_RECORD_NOT_FOUND
	if _, activates := d.Action.(*directivev1.Directive_ActivateMigratedRecord); rec == nil && !activates && d.Action != nil {
		return reject(notFound, "no record "+d.RecordId)
	}
	var live []liveCertificate
	if rec != nil {
		var err error
		if live, err = w.live(d.RecordId); err != nil {
			return nil, err
		}
	}

	switch a := d.Action.(type) {
	case *directivev1.Directive_SuspendForMigration:
		if rec.status == closed {
			return reject(directivev1.ReceiptRejection_RECEIPT_REJECTION_INVALID_STATE, "record is closed")
		}
		if stale != "" && rec.status == active {
			return reject(directivev1.ReceiptRejection_RECEIPT_REJECTION_INVALID_STATE, stale)
		}
		already := rec.status == migratedOut
		if !already {
			if err := w.setRecordStatus(d.RecordId, migratedOut); err != nil {
				return nil, err
			}
			if len(live) > 0 && live[0].status == normal {
				if err := w.setCertificateStatus(live[0].number, suspended, 0); err != nil {
					return nil, err
				}
			}
		}
		identity := &commonv1.Identity{}
		if err := proto.Unmarshal(rec.identity, identity); err != nil {
			return nil, err
		}
		doses, err := loadDoses(w.tx, d.RecordId)
		if err != nil {
			return nil, err
		}
		result := &directivev1.SuspendResult{Record: &commonv1.RecordContents{RecordId: d.RecordId, Identity: identity, Doses: doses}}
		if len(live) > 0 {
			result.SuspendedCertificateNumber = live[0].number
		}
		receipt.Result = &directivev1.Receipt_Suspended{Suspended: result}
		return done(already)

	case *directivev1.Directive_ActivateMigratedRecord:
		contents := a.ActivateMigratedRecord.GetRecord()
		if contents.GetIdentity() == nil {
			return reject(directivev1.ReceiptRejection_RECEIPT_REJECTION_MALFORMED, "activate carries no record contents")
		}
		if stale != "" && rec != nil {
			if _, err := w.addDoses(d.RecordId, contents.Doses); err != nil {
				return nil, err
			}
			mine := len(live) > 0 && live[0].status == normal && strings.HasPrefix(live[0].number, w.code+"-")
			if !mine || rec.status != active {
				return reject(directivev1.ReceiptRejection_RECEIPT_REJECTION_INVALID_STATE, stale)
			}
			receipt.Result = &directivev1.Receipt_Activated{Activated: &directivev1.ActivateResult{CertificateNumber: live[0].number}}
			return done(true)
		}
		identity, err := proto.Marshal(contents.Identity)
		if err != nil {
			return nil, err
		}
		if _, err := w.tx.Exec(`INSERT INTO records (record_id, identity_key, identity, status, last_sequence) VALUES ($1, $2, $3, $4, 0)
			ON CONFLICT (record_id) DO UPDATE SET identity_key = $2, identity = $3, status = $4`,
			d.RecordId, identityKey(contents.Identity), identity, active); err != nil {
			return nil, err
		}
		if _, err := w.addDoses(d.RecordId, contents.Doses); err != nil {
			return nil, err
		}
		already := len(live) > 0 && live[0].status == normal && strings.HasPrefix(live[0].number, w.code+"-")
		number := ""
		if already {
			number = live[0].number
		} else {
			number = w.newCertificateNumber()
			if _, err := w.tx.Exec(`INSERT INTO certificates (number, record_id, status) VALUES ($1, $2, $3)`, number, d.RecordId, normal); err != nil {
				return nil, err
			}
		}
		receipt.Result = &directivev1.Receipt_Activated{Activated: &directivev1.ActivateResult{CertificateNumber: number}}
		return done(already)

	case *directivev1.Directive_AppendDose:
		if a.AppendDose.GetDose() == nil {
			return reject(directivev1.ReceiptRejection_RECEIPT_REJECTION_MALFORMED, "append_dose carries no dose")
		}
		added, err := w.addDoses(d.RecordId, []*commonv1.Dose{a.AppendDose.Dose})
		if err != nil {
			return nil, err
		}
		return done(added == 0)

	case *directivev1.Directive_RestoreRecord:
		added, err := w.addDoses(d.RecordId, a.RestoreRecord.Doses)
		if err != nil {
			return nil, err
		}
		// A stale restore adds its doses only: the record was suspended again after it.
		wasSuspended := rec.status == migratedOut && stale == ""
		if wasSuspended {
			if err := w.setRecordStatus(d.RecordId, active); err != nil {
				return nil, err
			}
			for _, c := range live {
				if c.status == suspended {
					if err := w.setCertificateStatus(c.number, normal, 0); err != nil {
						return nil, err
					}
					break
				}
			}
		}
		return done(!wasSuspended && added == 0)

	case *directivev1.Directive_RevokeCertificate:
		closedNow := rec.status == closed && len(live) == 0
		if stale != "" {
			// A stale revoke would close what came after it (the record activated here again).
			if closedNow {
				return done(true)
			}
			return reject(directivev1.ReceiptRejection_RECEIPT_REJECTION_INVALID_STATE, stale)
		}
		for _, c := range live {
			if err := w.setCertificateStatus(c.number, revoked, a.RevokeCertificate.Reason); err != nil {
				return nil, err
			}
		}
		if err := w.setRecordStatus(d.RecordId, closed); err != nil {
			return nil, err
		}
		return done(closedNow)

	case nil:
		return reject(directivev1.ReceiptRejection_RECEIPT_REJECTION_UNKNOWN_ACTION, "this province does not know the directive's action")
	default:
		return nil, fmt.Errorf("action %T not handled", a)
	}
}
