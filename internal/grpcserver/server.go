package grpcserver

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/internal/telemetry"
	"github.com/usersd/usersd/internal/users"
)

// Metadata keys the server reads. The HTTP gateway forwards the headers of
// the same names.
const (
	// MDIdempotencyKey is CreateUser's request id when request_id is empty.
	MDIdempotencyKey = "idempotency-key"
	// MDIfMatch is the expected etag when the request carries none.
	MDIfMatch = "if-match"
)

// Server implements users.v1.UserService on a users.Service.
type Server struct {
	usersv1.UnimplementedUserServiceServer
	svc *users.Service

	// draining is closed by Drain; drainOnce guards it.
	draining  chan struct{}
	drainOnce sync.Once
}

var _ usersv1.UserServiceServer = (*Server)(nil)

// New returns a Server backed by svc.
func New(svc *users.Service) *Server {
	return &Server{svc: svc, draining: make(chan struct{})}
}

// Drain ends the server's WatchUserEvents streams, at once and from then
// on, with UNAVAILABLE: clients reconnect (to another replica) and resume
// from their cursor. Call it when shutting down, before
// grpc.Server.GracefulStop, which would otherwise wait for the streams,
// which end only when their clients cancel. Unary calls are not affected.
// Drain may be called more than once.
func (s *Server) Drain() { s.drainOnce.Do(func() { close(s.draining) }) }

// ChainConfig configures the interceptor chain.
type ChainConfig struct {
	// Log receives one access line per call that arrived over the network.
	Log zerolog.Logger
	// Metrics, if not nil, measures every call; it runs outermost.
	Metrics grpc.UnaryServerInterceptor
	// Limit, if not nil, rejects calls past the in-flight bound. The
	// gateway's channel leaves it out: HTTP requests are bounded at the
	// HTTP edge already.
	Limit grpc.UnaryServerInterceptor
	// Timeout is the deadline of calls that bring none; 0 means none.
	Timeout time.Duration
	// Sunset, if not zero, is when users.v1 ends: v1 calls announce it in
	// their response metadata (see SunsetInterceptor).
	Sunset time.Time
	// Auth, if not nil, authenticates and authorizes every call
	// ((*auth.Authenticator).UnaryInterceptor). It runs outside the error
	// mapping; its refusals are gRPC statuses (UNAUTHENTICATED,
	// PERMISSION_DENIED), which that mapping would pass unchanged anyway.
	// Nil lets every call in.
	Auth grpc.UnaryServerInterceptor
	// RateLimit, if not nil, limits the calls of each caller; it runs
	// right after Auth, so it finds the caller in the context
	// (auth.FromContext).
	RateLimit grpc.UnaryServerInterceptor
	// CountStoreError, if not nil, counts the calls that failed for a
	// store's infrastructure (*users.StoreError), by kind and cause.
	CountStoreError func(kind, cause string)
}

// Interceptors returns the unary interceptor chain, outermost first, that
// every call goes through, whether it arrives over gRPC or through the
// gateway: metrics, access log, panic recovery, v1 retirement signals,
// in-flight limit, default deadline, authentication and authorization,
// rate limit, error mapping, request validation. Authentication comes
// before validation, so that unauthenticated callers learn nothing from
// validation errors, and under the default deadline, which bounds its wait
// for a refresh of the JWKS; the rate limit follows it, to count calls by
// authenticated caller.
func Interceptors(cfg ChainConfig) []grpc.UnaryServerInterceptor {
	var chain []grpc.UnaryServerInterceptor
	if cfg.Metrics != nil {
		chain = append(chain, cfg.Metrics)
	}
	chain = append(chain, telemetry.AccessLogInterceptor(cfg.Log), RecoveryInterceptor)
	if !cfg.Sunset.IsZero() {
		// Before the limit, so rejected calls announce it too.
		chain = append(chain, SunsetInterceptor(cfg.Sunset))
	}
	if cfg.Limit != nil {
		chain = append(chain, cfg.Limit)
	}
	chain = append(chain, DeadlineInterceptor(cfg.Timeout))
	if cfg.Auth != nil {
		chain = append(chain, cfg.Auth)
	}
	if cfg.RateLimit != nil {
		chain = append(chain, cfg.RateLimit)
	}
	return append(chain,
		Errors(cfg.CountStoreError),
		ValidateInterceptor(validator),
	)
}

// Chain folds interceptors into one, the first outermost, for transports
// that take a single interceptor.
func Chain(interceptors ...grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		next := handler
		for i := len(interceptors) - 1; i >= 0; i-- {
			ic, inner := interceptors[i], next
			next = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, inner) }
		}
		return next(ctx, req)
	}
}

// fromMD returns the first value of a metadata key, or "".
func fromMD(ctx context.Context, key string) string {
	if v := metadata.ValueFromIncomingContext(ctx, key); len(v) > 0 {
		return strings.TrimSpace(v[0])
	}
	return ""
}

// orMD returns v, or the metadata value of key when v is empty. Both set and
// different is a client error.
func orMD(ctx context.Context, v, field, key string) (string, error) {
	m := fromMD(ctx, key)
	switch {
	case m == "":
		return v, nil
	case v == "" || v == m:
		return m, nil
	default:
		return "", users.Invalid(field, "differs from the "+key+" header")
	}
}

// CreateUser implements users.v1.UserService.
func (s *Server) CreateUser(ctx context.Context, req *usersv1.CreateUserRequest) (*usersv1.User, error) {
	rid, err := orMD(ctx, req.GetRequestId(), "request_id", MDIdempotencyKey)
	if err != nil {
		return nil, err
	}
	u, err := s.svc.Create(ctx, users.CreateRequest{User: fromProto(req.GetUser()), RequestID: rid})
	if err != nil {
		return nil, err
	}
	return toProto(u), nil
}

// GetUser implements users.v1.UserService.
func (s *Server) GetUser(ctx context.Context, req *usersv1.GetUserRequest) (*usersv1.User, error) {
	u, err := s.svc.Get(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return toProto(u), nil
}

// ListUsers implements users.v1.UserService.
func (s *Server) ListUsers(ctx context.Context, req *usersv1.ListUsersRequest) (*usersv1.ListUsersResponse, error) {
	res, err := s.svc.List(ctx, users.ListRequest{
		PageSize:    int(req.GetPageSize()),
		PageToken:   req.GetPageToken(),
		Filter:      req.GetFilter(),
		OrderBy:     req.GetOrderBy(),
		ShowDeleted: req.GetShowDeleted(),
	})
	if err != nil {
		return nil, err
	}
	return &usersv1.ListUsersResponse{Users: toProtos(res.Users), NextPageToken: res.NextPageToken}, nil
}

// UpdateUser implements users.v1.UserService.
func (s *Server) UpdateUser(ctx context.Context, req *usersv1.UpdateUserRequest) (*usersv1.User, error) {
	etag, err := orMD(ctx, req.GetUser().GetEtag(), "user.etag", MDIfMatch)
	if err != nil {
		return nil, err
	}
	u, err := s.svc.Update(ctx, users.UpdateRequest{
		User:  fromProto(req.GetUser()),
		Paths: req.GetUpdateMask().GetPaths(),
		Etag:  etag,
	})
	if err != nil {
		return nil, err
	}
	return toProto(u), nil
}

// DeleteUser implements users.v1.UserService.
func (s *Server) DeleteUser(ctx context.Context, req *usersv1.DeleteUserRequest) (*usersv1.User, error) {
	etag, err := orMD(ctx, req.GetEtag(), "etag", MDIfMatch)
	if err != nil {
		return nil, err
	}
	u, err := s.svc.Delete(ctx, req.GetId(), etag)
	if err != nil {
		return nil, err
	}
	return toProto(u), nil
}

// UndeleteUser implements users.v1.UserService.
func (s *Server) UndeleteUser(ctx context.Context, req *usersv1.UndeleteUserRequest) (*usersv1.User, error) {
	etag, err := orMD(ctx, req.GetEtag(), "etag", MDIfMatch)
	if err != nil {
		return nil, err
	}
	u, err := s.svc.Undelete(ctx, req.GetId(), etag)
	if err != nil {
		return nil, err
	}
	return toProto(u), nil
}

// BatchGetUsers implements users.v1.UserService.
func (s *Server) BatchGetUsers(ctx context.Context, req *usersv1.BatchGetUsersRequest) (*usersv1.BatchGetUsersResponse, error) {
	us, err := s.svc.BatchGet(ctx, req.GetIds())
	if err != nil {
		return nil, err
	}
	return &usersv1.BatchGetUsersResponse{Users: toProtos(us)}, nil
}

// ImportUsers implements users.v1.UserService. Each row is checked against
// the rules of User on its own: a row that breaks them reaches the domain
// rejected, so that it fails alone. The id and output-only fields of the
// rows are ignored.
func (s *Server) ImportUsers(ctx context.Context, req *usersv1.ImportUsersRequest) (*usersv1.Operation, error) {
	rid, err := orMD(ctx, req.GetRequestId(), "request_id", MDIdempotencyKey)
	if err != nil {
		return nil, err
	}
	rows, err := importRows(req.GetUsers(), func(u *usersv1.User) *usersv1.User {
		return &usersv1.User{Email: u.GetEmail(), DisplayName: u.GetDisplayName(), State: u.GetState(), Labels: u.GetLabels()}
	}, fromProto)
	if err != nil {
		return nil, err
	}
	op, err := s.svc.Import(ctx, users.ImportRequest{Rows: rows, RequestID: rid})
	if err != nil {
		return nil, err
	}
	return operationToProto(op), nil
}

// GetOperation implements users.v1.UserService.
func (s *Server) GetOperation(ctx context.Context, req *usersv1.GetOperationRequest) (*usersv1.Operation, error) {
	op, err := s.svc.GetOperation(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return operationToProto(op), nil
}
