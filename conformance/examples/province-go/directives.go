package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/golang/protobuf/proto"
	"github.com/nats-io/nats.go"

	directivev1 "evcgen/evc/directive/v1"
)

// directiveConsumer takes the hub's directives off this province's durable pull consumer and
// executes each one exactly once in effect: one PostgreSQL transaction applies it and stores its
// receipt, and only then is the message acknowledged. Messages are handled one at a time.
type directiveConsumer struct {
	code     string
	hubKeys  keySet
	store    *store
	watchers *watchers
	sent     func() // wakes the receipt sender
}

func (c *directiveConsumer) run(ctx context.Context, nc *nats.Conn, stream, subject string) error {
	js, err := nc.JetStream()
	if err != nil {
		return err
	}
	durable := "province-" + c.code
	sub, err := js.PullSubscribe(subject, durable, nats.Bind(stream, durable), nats.ManualAck())
	if err != nil {
		return fmt.Errorf("binding the durable consumer %s on stream %s: %v (the hub provisions it)", durable, stream, err)
	}
	log.Printf("consuming %s through %s", subject, durable)
	for ctx.Err() == nil {
		msgs, err := sub.Fetch(32, nats.MaxWait(time.Second))
		if err != nil && !errors.Is(err, nats.ErrTimeout) {
			log.Printf("fetch: %v", err)
			time.Sleep(time.Second)
		}
		for _, m := range msgs {
			c.handle(m)
		}
	}
	return nil
}

func (c *directiveConsumer) handle(m *nats.Msg) {
	msgID := m.Header.Get("Nats-Msg-Id")
	// Poison is acknowledged (redelivering it would change nothing), never applied nor answered.
	poison := func(why string) {
		log.Printf("ALARM poison message %s dropped: %s", msgID, why)
		ack(m)
	}
	if err := c.hubKeys.verifyDirective(m.Header.Get("Evc-Signature"), m.Data); err != nil {
		poison(err.Error())
		return
	}
	d := &directivev1.Directive{}
	if err := proto.Unmarshal(m.Data, d); err != nil {
		poison("not a Directive: " + err.Error())
		return
	}
	if err := checkDirective(d); err != nil {
		poison(err.Error())
		return
	}
	if d.TargetProvinceCode != c.code { // I7: another province's directive is never acted on
		poison(fmt.Sprintf("addressed to %s, this is %s", d.TargetProvinceCode, c.code))
		return
	}
	res, err := c.apply(d)
	switch {
	case err != nil:
		log.Printf("directive %s: %v (will be redelivered)", d.DirectiveId, err)
		_ = m.NakWithDelay(time.Second)
	case res.wait:
		// An earlier directive of the record has not been applied: take this one again later.
		_ = m.NakWithDelay(200 * time.Millisecond)
	default:
		ack(m)
		c.sent()
		for _, number := range res.changed {
			c.watchers.notify(number)
		}
	}
}

func ack(m *nats.Msg) {
	if err := m.Ack(); err != nil {
		log.Printf("ack: %v (the copy redelivered gets the stored receipt)", err)
	}
}

// applied is what applying a directive did.
type applied struct {
	wait    bool     // not applied: its predecessor in the record's sequence is missing
	changed []string // certificates whose status changed (watchers are told)
}

// apply decides and writes one directive in one transaction, with its receipt.
func (c *directiveConsumer) apply(d *directivev1.Directive) (applied, error) {
	tx, err := c.store.db.Begin()
	if err != nil {
		return applied{}, err
	}
	defer tx.Rollback()
	// One directive of a record at a time, even with several consumers running.
	if _, err := tx.Exec(`SELECT pg_advisory_xact_lock(hashtext($1))`, d.RecordId); err != nil {
		return applied{}, err
	}
	var stored []byte
	err = tx.QueryRow(`SELECT receipt FROM inbox WHERE directive_id = $1`, d.DirectiveId).Scan(&stored)
	if err == nil {
		// Applied before (I4): nothing changes, and the stored receipt is sent again.
		if _, err := tx.Exec(`UPDATE inbox SET sent = false WHERE directive_id = $1`, d.DirectiveId); err != nil {
			return applied{}, err
		}
		return applied{}, tx.Commit()
	}
	if !isNoRows(err) {
		return applied{}, err
	}
	rec, err := loadRecordState(tx, d.RecordId)
	if err != nil {
		return applied{}, err
	}
	var last uint64
	if rec != nil {
		last = rec.lastSequence
	}
	_, activates := d.Action.(*directivev1.Directive_ActivateMigratedRecord)
	if d.RecordSequence > last+1 && !(rec == nil && activates) {
		return applied{wait: true}, nil
	}
	stale := ""
	if rec != nil && d.RecordSequence <= last {
		stale = fmt.Sprintf("stale: this province's record is at directive sequence %d, past this one (%d): applied before or passed over", last, d.RecordSequence)
	}
	w := &writer{tx: tx, code: c.code}
	receipt, err := w.act(d, rec, stale)
	if err != nil {
		return applied{}, err
	}
	if _, err := tx.Exec(`UPDATE records SET last_sequence = GREATEST(last_sequence, $2) WHERE record_id = $1`, d.RecordId, d.RecordSequence); err != nil {
		return applied{}, err
	}
	raw, err := proto.Marshal(receipt)
	if err != nil {
		return applied{}, err
	}
	if _, err := tx.Exec(`INSERT INTO inbox (directive_id, receipt) VALUES ($1, $2)`, d.DirectiveId, raw); err != nil {
		return applied{}, err
	}
	return applied{changed: w.changed}, tx.Commit()
}
