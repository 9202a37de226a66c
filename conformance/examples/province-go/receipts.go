package main

import (
	"context"
	"log"
	"time"

	"github.com/golang/protobuf/proto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	directivev1 "evcgen/evc/directive/v1"
	nationalv1 "evcgen/evc/national/v1"
)

// receiptSender submits stored receipts to the hub (DirectiveService/SubmitReceipts) until it
// accepts them: woken after each directive applied, and every second for what failed before.
type receiptSender struct {
	conn   *grpc.ClientConn
	hub    nationalv1.DirectiveServiceClient
	signer *signer
	store  *store
	wake   chan struct{}
}

func newReceiptSender(hubAddress string, s *signer, st *store) (*receiptSender, error) {
	conn, err := grpc.Dial(hubAddress, grpc.WithInsecure())
	if err != nil {
		return nil, err
	}
	return &receiptSender{
		conn: conn, hub: nationalv1.NewDirectiveServiceClient(conn), signer: s, store: st,
		wake: make(chan struct{}, 1),
	}, nil
}

func (r *receiptSender) close() { r.conn.Close() }

func (r *receiptSender) kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *receiptSender) run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-tick.C:
		}
		for {
			n, err := r.sendBatch(ctx)
			if err != nil {
				log.Printf("receipts not accepted yet, retrying: %v", err)
				break
			}
			if n == 0 {
				break
			}
		}
	}
}

// sendBatch submits up to 100 unsent receipts; it returns how many the hub took.
func (r *receiptSender) sendBatch(ctx context.Context) (int, error) {
	ids, raws, err := r.store.unsent(100)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	req := &nationalv1.SubmitReceiptsRequest{}
	for _, raw := range raws {
		receipt := &directivev1.Receipt{}
		if err := proto.Unmarshal(raw, receipt); err != nil {
			return 0, err
		}
		req.Receipts = append(req.Receipts, receipt)
	}
	token, err := r.signer.bearer()
	if err != nil {
		return 0, err
	}
	callCtx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), 10*time.Second)
	defer cancel()
	if _, err := r.hub.SubmitReceipts(callCtx, req); err != nil {
		return 0, err
	}
	return len(ids), r.store.markSent(ids)
}
