package main

import (
	"context"
	"crypto/subtle"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	conformancev1 "evcgen/evc/conformance/v1"
	provincev1 "evcgen/evc/province/v1"
)

// provinceAPI is evc.province.v1.ProvinceService: status by number for anyone (no record id
// shown); by identity and whole records with a reader token (records:read: any record;
// holder:read: the token's record only).
type provinceAPI struct {
	provincev1.UnimplementedProvinceServiceServer
	code     string
	store    *store
	watchers *watchers
	readers  keySet
}

func bearer(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if strings.HasPrefix(v, "Bearer ") {
			return strings.TrimPrefix(v, "Bearer ")
		}
	}
	return ""
}

// reader is the verified reader token of the call, or an Unauthenticated error.
func (a *provinceAPI) reader(ctx context.Context) (*readerClaims, error) {
	token := bearer(ctx)
	if token == "" {
		return nil, status.Error(codes.Unauthenticated, "a reader token is required (Authorization: Bearer)")
	}
	claims, err := a.readers.verifyReader(token, a.code)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "reader token not accepted: "+err.Error())
	}
	return claims, nil
}

// failed maps a store error: no row is NotFound, anything else Unavailable (retry).
func failed(err error, what string) error {
	if isNoRows(err) {
		return status.Error(codes.NotFound, what+" not found")
	}
	return status.Error(codes.Unavailable, "store unavailable")
}

func (a *provinceAPI) GetCertificateStatus(ctx context.Context, req *provincev1.GetCertificateStatusRequest) (*provincev1.GetCertificateStatusResponse, error) {
	if !certificateNumber.MatchString(req.CertificateNumber) {
		return nil, status.Error(codes.InvalidArgument, "certificate_number must look like 110000-XXXX")
	}
	cert, err := a.store.certificateByNumber(req.CertificateNumber)
	if err != nil {
		return nil, failed(err, "certificate")
	}
	if claims, err := a.reader(ctx); err != nil || !claims.scopes["records:read"] {
		cert.RecordId = "" // status by number names no one
	}
	cert.ProvinceCode = a.code
	return &provincev1.GetCertificateStatusResponse{Certificate: cert}, nil
}

func (a *provinceAPI) GetCertificateStatusByIdentity(ctx context.Context, req *provincev1.GetCertificateStatusByIdentityRequest) (*provincev1.GetCertificateStatusByIdentityResponse, error) {
	claims, err := a.reader(ctx)
	if err != nil {
		return nil, err
	}
	if err := checkIdentity(req.Identity); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if !claims.scopes["records:read"] {
		return nil, status.Error(codes.PermissionDenied, "looking up by identity needs scope records:read")
	}
	recordID, err := a.store.recordIDOfIdentity(identityKey(req.Identity))
	if err != nil {
		return nil, failed(err, "record of this identity")
	}
	cert, err := a.store.certificateOfRecord(recordID)
	if err != nil {
		return nil, failed(err, "certificate")
	}
	cert.ProvinceCode = a.code
	return &provincev1.GetCertificateStatusByIdentityResponse{Certificate: cert}, nil
}

func (a *provinceAPI) GetRecord(ctx context.Context, req *provincev1.GetRecordRequest) (*provincev1.GetRecordResponse, error) {
	if req.RecordId == "" || len(req.RecordId) > 64 {
		return nil, status.Error(codes.InvalidArgument, "record_id must be 1 to 64 characters")
	}
	claims, err := a.reader(ctx)
	if err != nil {
		return nil, err
	}
	if !claims.scopes["records:read"] && !(claims.scopes["holder:read"] && claims.record == req.RecordId) {
		return nil, status.Error(codes.PermissionDenied, "this token may not read record_id "+req.RecordId)
	}
	rec, recStatus, err := a.store.record(req.RecordId)
	if err != nil {
		return nil, failed(err, "record")
	}
	res := &provincev1.GetRecordResponse{Record: rec, Status: recStatus}
	if cert, err := a.store.certificateOfRecord(req.RecordId); err == nil {
		cert.ProvinceCode = a.code
		res.Certificate = cert
	}
	return res, nil
}

// WatchCertificate sends the certificate's status now, then every change, until the caller
// goes away.
func (a *provinceAPI) WatchCertificate(req *provincev1.WatchCertificateRequest, stream provincev1.ProvinceService_WatchCertificateServer) error {
	if !certificateNumber.MatchString(req.CertificateNumber) {
		return status.Error(codes.InvalidArgument, "certificate_number must look like 110000-XXXX")
	}
	changed, cancel := a.watchers.subscribe(req.CertificateNumber)
	defer cancel()
	for {
		cert, err := a.store.certificateByNumber(req.CertificateNumber)
		if err != nil {
			return failed(err, "certificate")
		}
		cert.RecordId, cert.ProvinceCode = "", a.code
		if err := stream.Send(&provincev1.WatchCertificateResponse{Certificate: cert}); err != nil {
			return err
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-changed:
		}
	}
}

// controlAPI is the kit's ControlService. This example declares the core profile (directives and
// the province API) and resilience (the kit kills and restarts it: nothing acknowledged is lost,
// nothing applied twice); it starts no flows of its own, so the other methods are unimplemented.
type controlAPI struct {
	conformancev1.UnimplementedControlServiceServer
	code string
}

func (c *controlAPI) GetFeatures(context.Context, *conformancev1.GetFeaturesRequest) (*conformancev1.GetFeaturesResponse, error) {
	return &conformancev1.GetFeaturesResponse{
		ImplementationName:    "province-go-example",
		ImplementationVersion: "0.1.0",
		ProvinceCode:          c.code,
		Profiles:              []conformancev1.Profile{conformancev1.Profile_PROFILE_CORE, conformancev1.Profile_PROFILE_RESILIENCE},
	}, nil
}

// controlGuard wants the control token on every ControlService call, when one is configured.
func controlGuard(token string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req interface{}, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (interface{}, error) {
		if token != "" && strings.HasPrefix(info.FullMethod, "/evc.conformance.v1.ControlService/") &&
			subtle.ConstantTimeCompare([]byte(bearer(ctx)), []byte(token)) != 1 {
			return nil, status.Error(codes.Unauthenticated, "the control API wants its bearer token")
		}
		return next(ctx, req)
	}
}
