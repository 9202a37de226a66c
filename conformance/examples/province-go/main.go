// Command province-go is a small province system for evc-interop, written as a vendor would on
// a plain gRPC stack: it serves evc.province.v1.ProvinceService and the kit's ControlService over
// gRPC, executes the hub's signed directives from its durable JetStream pull consumer, keeps its
// records in PostgreSQL, and sends receipts to the hub with an EdDSA token. It is the worked
// example of conformance/README.md, certified by the kit's core profile in CI; it is not a
// second reference province (it runs no flows of its own, no reconciliation).
//
// `province-go keygen <code> <file>` makes the province's key pair: <file>, the private JWK
// (EVC_PROVINCE_KEY), and <file>.pub, the public JWK the kit's config names (province.public_key).
//
// Configuration, all by environment (the kit sets the first seven, and the eighth when it runs its
// own bus, when it starts the program):
//
//	EVC_HUB_URL          the hub, http://host:port (gRPC over cleartext HTTP/2)
//	NATS_URL             the bus, nats://host:port
//	EVC_STREAM           the directive stream (EVC_DIRECTIVES)
//	EVC_SUBJECT_PREFIX   subjects are <prefix>.<code> (evc.directives)
//	EVC_PROVINCE_CODE    this province's GB/T 2260 code
//	EVC_DIRECTIVE_KEYS   JWKS file of the hub's directive signing keys
//	EVC_READER_KEYS      JWKS file of the reader token issuers this province trusts
//	EVC_NATS_NKEY_SEED   file holding this province's NATS NKey seed (SU…); the kit sets it when
//	                     it runs its own bus; empty: connect without a credential (an open test bus)
//	EVC_PROVINCE_KEY     this province's private key, a JWK file (OKP, Ed25519; kid province:<code>)
//	EVC_LISTEN           host:port of the gRPC server (127.0.0.1:9000)
//	DATABASE_URL         PostgreSQL (postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)
//	EVC_SCHEMA           the schema of this province's tables (province_go_<code>)
//	EVC_CONTROL_TOKEN    a bearer token the ControlService wants (empty: none)
package main

import (
	"context"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"

	conformancev1 "evcgen/evc/conformance/v1"
	provincev1 "evcgen/evc/province/v1"
)

type config struct {
	hubURL, natsURL, stream, subjectPrefix, code string
	directiveKeys, readerKeys, provinceKey       string
	natsSeedFile                                 string
	listen, databaseURL, schema, controlToken    string
}

func env(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func required(name string) string {
	v := os.Getenv(name)
	if v == "" {
		log.Fatalf("%s is not set (see the top of main.go)", name)
	}
	return v
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	if len(os.Args) == 4 && os.Args[1] == "keygen" {
		// province-go keygen <code> <file>: a new key pair, <file> (private) and <file>.pub (for the kit).
		if err := keygen(os.Args[2], os.Args[3]); err != nil {
			log.Fatal(err)
		}
		return
	}
	code := required("EVC_PROVINCE_CODE")
	cfg := config{
		hubURL:        required("EVC_HUB_URL"),
		natsURL:       env("NATS_URL", nats.DefaultURL),
		stream:        env("EVC_STREAM", "EVC_DIRECTIVES"),
		subjectPrefix: env("EVC_SUBJECT_PREFIX", "evc.directives"),
		code:          code,
		directiveKeys: required("EVC_DIRECTIVE_KEYS"),
		readerKeys:    required("EVC_READER_KEYS"),
		provinceKey:   required("EVC_PROVINCE_KEY"),
		natsSeedFile:  os.Getenv("EVC_NATS_NKEY_SEED"),
		listen:        env("EVC_LISTEN", "127.0.0.1:9000"),
		databaseURL:   env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"),
		schema:        env("EVC_SCHEMA", "province_go_"+code),
		controlToken:  os.Getenv("EVC_CONTROL_TOKEN"),
	}
	if err := run(cfg); err != nil {
		log.Fatal(err)
	}
}

func run(cfg config) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	hubKeys, err := loadKeySet(cfg.directiveKeys)
	if err != nil {
		return err
	}
	readers, err := loadKeySet(cfg.readerKeys)
	if err != nil {
		return err
	}
	signer, err := loadSigner(cfg.provinceKey)
	if err != nil {
		return err
	}
	store, err := openStore(cfg.databaseURL, cfg.schema)
	if err != nil {
		return err
	}
	defer store.close()
	watchers := newWatchers()

	sender, err := newReceiptSender(strings.TrimPrefix(cfg.hubURL, "http://"), signer, store)
	if err != nil {
		return err
	}
	defer sender.close()

	// Replies (pulled directives, API answers) come to this province's own inbox: on an
	// authenticated bus a province may subscribe there and nowhere else.
	opts := []nats.Option{
		nats.Name("province-go " + cfg.code), nats.MaxReconnects(-1),
		nats.CustomInboxPrefix("_INBOX_" + cfg.code),
	}
	if cfg.natsSeedFile != "" {
		nkey, err := nats.NkeyOptionFromSeed(cfg.natsSeedFile)
		if err != nil {
			return err
		}
		opts = append(opts, nkey)
	}
	nc, err := nats.Connect(cfg.natsURL, opts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	consumer := &directiveConsumer{
		code: cfg.code, hubKeys: hubKeys, store: store, watchers: watchers, sent: sender.kick,
	}

	lis, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return err
	}
	server := grpc.NewServer(grpc.UnaryInterceptor(controlGuard(cfg.controlToken)))
	api := &provinceAPI{code: cfg.code, store: store, watchers: watchers, readers: readers}
	provincev1.RegisterProvinceServiceServer(server, api)
	conformancev1.RegisterControlServiceServer(server, &controlAPI{code: cfg.code})
	go func() {
		if err := server.Serve(lis); err != nil {
			log.Printf("grpc server: %v", err)
		}
	}()
	log.Printf("province %s serving gRPC on %s", cfg.code, lis.Addr())

	go sender.run(ctx)
	consumed := make(chan error, 1)
	go func() { consumed <- consumer.run(ctx, nc, cfg.stream, cfg.subjectPrefix+"."+cfg.code) }()

	select {
	case <-ctx.Done():
		err = <-consumed // it stops within one fetch wait
	case err = <-consumed:
	}
	log.Printf("province %s stopping", cfg.code)
	stopped := make(chan struct{})
	go func() { server.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		server.Stop()
	}
	return err
}
