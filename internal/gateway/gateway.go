// Package gateway serves the users API as HTTP/JSON. It is a grpc-gateway
// mux in front of a gRPC connection, so every JSON call goes through the
// server's interceptors exactly like a gRPC call; HTTP statuses derive from
// gRPC codes. Versioned paths (/v1/…, /v2/…) are the canonical form;
// unversioned ones (/users…) serve the version the Accept header chooses.
package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/grpcserver"
	"github.com/usersd/usersd/internal/ratelimit"
	"github.com/usersd/usersd/internal/telemetry"
)

// DefaultMaxBodyBytes is the default limit on a request body.
const DefaultMaxBodyBytes = 1 << 20

// Options configures the handler.
type Options struct {
	// Version is the server's build version, info.version of the OpenAPI
	// documents it serves; empty keeps the committed placeholder.
	Version string
	// MaxBodyBytes bounds request bodies; larger ones get 413. Zero means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// V1Sunset, if not zero, is when v1 ends: every response of a v1 route
	// announces it with Deprecation, Sunset and Link headers.
	V1Sunset time.Time
}

// NewHandler returns the HTTP/JSON API, v1 and v2, calling the gRPC API on
// conn.
func NewHandler(ctx context.Context, conn grpc.ClientConnInterface, opts Options) (http.Handler, error) {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	muxOpts := []runtime.ServeMuxOption{
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions: protojson.MarshalOptions{EmitUnpopulated: true},
			// Unknown fields are an error, so a misspelt field is reported
			// instead of silently ignored.
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}),
		runtime.WithIncomingHeaderMatcher(headerMatcher),
		runtime.WithOutgoingHeaderMatcher(outgoingHeaderMatcher),
		runtime.WithForwardResponseOption(forwardResponse),
		runtime.WithMiddlewares(recordRoute),
	}
	// mux has every route; v1mux and v2mux one version's each (byVersion).
	mux, v1mux, v2mux := newMux(muxOpts...), newMux(muxOpts...), newMux(muxOpts...)
	v1client, v2client := usersv1.NewUserServiceClient(conn), usersv2.NewUserServiceClient(conn)
	for _, m := range []*runtime.ServeMux{mux, v1mux} {
		if err := usersv1.RegisterUserServiceHandlerClient(ctx, m, v1client); err != nil {
			return nil, fmt.Errorf("registering users.v1 routes: %w", err)
		}
	}
	tenants, groups := usersv2.NewTenantServiceClient(conn), usersv2.NewGroupServiceClient(conn)
	for _, m := range []*runtime.ServeMux{mux, v2mux} {
		if err := usersv2.RegisterUserServiceHandlerClient(ctx, m, v2client); err != nil {
			return nil, fmt.Errorf("registering users.v2 routes: %w", err)
		}
		if err := usersv2.RegisterTenantServiceHandlerClient(ctx, m, tenants); err != nil {
			return nil, fmt.Errorf("registering users.v2 tenant routes: %w", err)
		}
		if err := usersv2.RegisterGroupServiceHandlerClient(ctx, m, groups); err != nil {
			return nil, fmt.Errorf("registering users.v2 group routes: %w", err)
		}
		if err := registerExport(m, v2client); err != nil { // export.go: NDJSON, no generated route
			return nil, fmt.Errorf("registering users.v2 export routes: %w", err)
		}
	}
	// The OpenAPI documents are routes of the mux of all routes, so that
	// their routing errors are the API's; being public and unversioned,
	// they are left alone by negotiation, and their GETs have no body to
	// limit.
	if err := registerOpenAPI(mux, opts.Version); err != nil {
		return nil, err
	}
	routes := byVersion{all: mux, v1: v1mux, v2: v2mux}
	return negotiateVersion(mux, announceV1Sunset(opts.V1Sunset, limitBody(opts.MaxBodyBytes, mux, routes))), nil
}

// byVersion sends a request for a path under /v1/ or /v2/ to a mux of that
// version's routes alone, and any other to the mux of all the routes. A
// grpc-gateway mux tries its routes of the request's method one by one,
// the last registered first, at a pattern match and an errors.As each: a
// v1 GetUser came after the 15 other GETs of v1, the 16 of v2 and the
// OpenAPI documents. The answer is the same: every v1 route's template
// starts with the literal v1, every v2 route's with v2, and the OpenAPI
// documents' with openapi (TestRoutesStartWithTheirVersion), so a route of
// another version or a document fails at the first segment of the path,
// with a plain no-match, and does not take the request nor make the mux
// answer differently (its 404s and 405s look only at routes that take the
// path). A path with escapes (RawPath set) goes to the mux of all routes,
// which matches the raw segments.
type byVersion struct{ all, v1, v2 http.Handler }

func (b byVersion) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case r.URL.RawPath != "":
		b.all.ServeHTTP(w, r)
	case strings.HasPrefix(p, "/v1/"):
		b.v1.ServeHTTP(w, r)
	case strings.HasPrefix(p, "/v2/"):
		b.v2.ServeHTTP(w, r)
	default:
		b.all.ServeHTTP(w, r)
	}
}

// recordRoute names the matched route template on the request's
// telemetry.Call, for access logs, metrics and span names. The mux wraps
// each route's handler in its own recordRoute as the route is registered,
// so each wrapper only ever sees its route's pattern: it spells the
// template once and keeps it.
func recordRoute(next runtime.HandlerFunc) runtime.HandlerFunc {
	var template atomic.Pointer[string]
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if t := template.Load(); t != nil {
			telemetry.CallFrom(r.Context()).SetRoute(*t)
		} else if p, ok := runtime.HTTPPattern(r.Context()); ok {
			// "/v1/users/{id=*}" → "/v1/users/{id}", as in the annotations.
			t := strings.ReplaceAll(p.String(), "=*}", "}")
			template.Store(&t)
			telemetry.CallFrom(r.Context()).SetRoute(t)
		}
		next(w, r, params)
	}
}

// headerMatcher forwards the HTTP headers the API defines as gRPC metadata,
// and no other. The Authorization header needs no rule: grpc-gateway always
// forwards it as "authorization", and nothing else may set that key, so the
// credentials of a call are in its Authorization header alone. The
// permanent HTTP headers (Accept, User-Agent, …) that grpc-gateway's default
// rule forwards as grpcgateway-* are read by no interceptor or handler, and
// each would cost a lower-cased key and a metadata entry on every call.
func headerMatcher(key string) (string, bool) {
	switch {
	case strings.EqualFold(key, grpcserver.MDIdempotencyKey):
		return grpcserver.MDIdempotencyKey, true
	case strings.EqualFold(key, grpcserver.MDIfMatch):
		return grpcserver.MDIfMatch, true
	}
	return "", false
}

// outgoingHeaderMatcher turns response metadata into HTTP headers; it is
// the one place that does. The metadata the API defines for HTTP are real
// headers: the RFC 6750 challenge of a call refused by authentication
// (WWW-Authenticate) and the wait of a rate-limited one (Retry-After). The
// retirement signals are dropped: announceV1Sunset sets them on every v1
// response. Any other key k becomes the header Grpc-Metadata-k,
// grpc-gateway's default.
func outgoingHeaderMatcher(key string) (string, bool) {
	switch key {
	case auth.MDWWWAuthenticate:
		return "WWW-Authenticate", true
	case ratelimit.MDRetryAfter:
		return "Retry-After", true
	case grpcserver.MDDeprecation, grpcserver.MDSunset, grpcserver.MDLink:
		return "", false
	}
	return runtime.MetadataHeaderPrefix + key, true
}

// forwardResponse completes the headers of a response: a user's, a
// tenant's or a group's ETag; 201 Created and the new user's, tenant's or
// group's Location for a create; 202 Accepted and the
// operation's Location for an import; 201 Created and the Location of a
// new webhook subscription, and Cache-Control: no-store on an answer that
// carries a webhook's secret. Locations are canonical (versioned) paths.
func forwardResponse(ctx context.Context, w http.ResponseWriter, m proto.Message) error {
	method, _ := runtime.RPCMethod(ctx)
	switch m := m.(type) {
	case *usersv1.User:
		etagResponse(w, method == usersv1.UserService_CreateUser_FullMethodName, m.GetEtag(), "/v1/users/"+m.GetId())
	case *usersv2.User:
		etagResponse(w, method == usersv2.UserService_CreateUser_FullMethodName, m.GetEtag(), "/v2/"+m.GetName())
	case *usersv1.Operation:
		operationResponse(w, method, "/v1/"+m.GetName())
	case *usersv2.Operation:
		operationResponse(w, method, "/v2/"+m.GetName())
	case *usersv1.Webhook:
		webhookResponse(w, method == usersv1.UserService_CreateWebhook_FullMethodName, m.GetSecret(), "/v1/webhooks/"+m.GetId())
	case *usersv2.Webhook:
		webhookResponse(w, method == usersv2.UserService_CreateWebhook_FullMethodName, m.GetSecret(), "/v2/"+m.GetName())
	case *usersv2.Tenant:
		etagResponse(w, method == usersv2.TenantService_CreateTenant_FullMethodName, m.GetEtag(), "/v2/"+m.GetName())
	case *usersv2.Group:
		etagResponse(w, method == usersv2.GroupService_CreateGroup_FullMethodName, m.GetEtag(), "/v2/"+m.GetName())
	}
	return nil
}

// webhookResponse keeps an answer that carries a secret out of caches, and
// answers a create with 201 Created and the subscription's path.
func webhookResponse(w http.ResponseWriter, created bool, secret, location string) {
	if secret != "" {
		w.Header().Set("Cache-Control", "no-store")
	}
	if created {
		w.Header().Set("Location", location)
		w.WriteHeader(http.StatusCreated)
	}
}

// etagResponse sets the ETag of an answer that carries a user, a tenant or
// a group,
// and answers a create with 201 Created and the new resource's path.
func etagResponse(w http.ResponseWriter, created bool, etag, location string) {
	w.Header().Set("ETag", `"`+etag+`"`)
	if created {
		w.Header().Set("Location", location)
		w.WriteHeader(http.StatusCreated)
	}
}

// operationResponse answers an import, which has started and not finished,
// with 202 Accepted and the path to poll, even when a replay finds the
// operation done.
func operationResponse(w http.ResponseWriter, method, location string) {
	switch method {
	case usersv1.UserService_ImportUsers_FullMethodName, usersv2.UserService_ImportUsers_FullMethodName:
		w.Header().Set("Location", location)
		w.WriteHeader(http.StatusAccepted)
	}
}

type limitKey struct{}

// limitedBody is a request body that fails past its limit and remembers it.
type limitedBody struct {
	io.ReadCloser
	left     int64
	limit    int64
	exceeded bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// Read one byte more to tell "exactly at the limit" from "over it".
		var one [1]byte
		if n, _ := b.ReadCloser.Read(one[:]); n == 0 {
			return 0, io.EOF
		}
		b.exceeded = true
		return 0, fmt.Errorf("request body larger than %d bytes", b.limit)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// limitBody answers 413 to bodies over max bytes, whether declared by
// Content-Length or found while reading, as mux answers errors.
func limitBody(max int64, mux *runtime.ServeMux, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			_, m := runtime.MarshalerForRequest(mux, r)
			runtime.HTTPError(r.Context(), mux, m, w, r, tooLarge(max))
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			lb := &limitedBody{ReadCloser: r.Body, left: max, limit: max}
			r.Body = lb
			r = r.WithContext(context.WithValue(r.Context(), limitKey{}, lb))
		}
		next.ServeHTTP(w, r)
	})
}

func tooLarge(max int64) error {
	return &runtime.HTTPStatusError{
		HTTPStatus: http.StatusRequestEntityTooLarge,
		Err:        status.Errorf(codes.InvalidArgument, "request body larger than %d bytes", max),
	}
}

// errorHandler is the gateway's default, except that a body found too large
// while decoding is answered with 413, and that a 401 carries the server's
// WWW-Authenticate challenge alone (see challengeWriter).
func errorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if lb, ok := r.Context().Value(limitKey{}).(*limitedBody); ok && lb.exceeded {
		err = tooLarge(lb.limit)
	}
	if status.Code(err) == codes.Unauthenticated {
		w = &challengeWriter{ResponseWriter: w, challenges: challenges(ctx)}
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

// challenges returns the WWW-Authenticate challenges of the call of ctx,
// from its response metadata, or a bare Bearer challenge when it sent none
// (RFC 9110 requires one on every 401).
func challenges(ctx context.Context) []string {
	if md, ok := runtime.ServerMetadataFromContext(ctx); ok {
		if c := md.HeaderMD.Get(auth.MDWWWAuthenticate); len(c) > 0 {
			return c
		}
	}
	return []string{`Bearer realm="` + auth.Realm + `"`}
}

// challengeWriter sets the WWW-Authenticate header to its challenges as
// the response starts. grpc-gateway's error handler would send the status
// message as a challenge besides, which is no challenge at all.
type challengeWriter struct {
	http.ResponseWriter
	challenges []string
}

func (w *challengeWriter) WriteHeader(code int) {
	w.Header()["Www-Authenticate"] = w.challenges
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap gives http.ResponseController the writer underneath.
func (w *challengeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
