package auth

import (
	"cmp"
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/internal/users"
)

// Realm is the realm of usersd's WWW-Authenticate challenges.
const Realm = "usersd"

// Metadata keys. Over HTTP they are the headers Authorization and
// WWW-Authenticate.
const (
	// MDAuthorization carries "Bearer <token>".
	MDAuthorization = "authorization"
	// MDWWWAuthenticate is the response metadata of a call refused with
	// UNAUTHENTICATED or PERMISSION_DENIED: an RFC 6750 challenge.
	MDWWWAuthenticate = "www-authenticate"
)

// UnaryInterceptor returns the interceptor that authenticates each call
// with its bearer token and authorizes it by the table of rules. It answers
// a call without a valid token with UNAUTHENTICATED, and one the token does
// not allow with PERMISSION_DENIED, each with a WWW-Authenticate challenge
// in the response metadata (RFC 6750); otherwise the handler runs with the
// caller in its context (FromContext). Calls to grpc.health.v1 and
// grpc.reflection pass unauthenticated. With ModeNone every call passes.
func (a *Authenticator) UnaryInterceptor() grpc.UnaryServerInterceptor {
	if a.mode == ModeNone {
		return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			return handler(ctx, req)
		}
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if isPublic(info.FullMethod) {
			return handler(ctx, req)
		}
		setHeader := func(md metadata.MD) error { return grpc.SetHeader(ctx, md) }
		admitted, err := a.admit(ctx, info.FullMethod, req, setHeader)
		if err != nil {
			return nil, err
		}
		return handler(admitted, req)
	}
}

// StreamInterceptor returns the interceptor that does for streaming calls
// what UnaryInterceptor does for unary ones. The requests of a stream are
// not known when it starts, so only a scope allows it, never the caller's
// being the user concerned.
func (a *Authenticator) StreamInterceptor() grpc.StreamServerInterceptor {
	if a.mode == ModeNone {
		return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			return handler(srv, ss)
		}
	}
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if isPublic(info.FullMethod) {
			return handler(srv, ss)
		}
		ctx, err := a.admit(ss.Context(), info.FullMethod, nil, ss.SetHeader)
		if err != nil {
			return err
		}
		return handler(srv, &principalStream{ServerStream: ss, ctx: ctx})
	}
}

// principalStream is a ServerStream whose context carries the caller.
type principalStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *principalStream) Context() context.Context { return s.ctx }

// admit authenticates and authorizes a call to method with req (nil for a
// stream). It returns ctx carrying the caller, or a status error after
// setting the challenge with setHeader.
func (a *Authenticator) admit(ctx context.Context, method string, req any, setHeader func(metadata.MD) error) (context.Context, error) {
	p, err := a.authenticate(ctx)
	if err != nil {
		var te TokenError
		if !errors.As(err, &te) {
			te = ErrTokenMalformed
		}
		// It fails only without a server stream in ctx (a direct call),
		// where there is nobody to tell; the status says it all the same.
		_ = setHeader(metadata.Pairs(MDWWWAuthenticate, challenge(te)))
		return ctx, status.Error(codes.Unauthenticated, string(te))
	}
	if d := authorize(p, method, req); d != nil {
		_ = setHeader(metadata.Pairs(MDWWWAuthenticate, scopeChallenge(d)))
		return ctx, status.Error(codes.PermissionDenied, d.Error())
	}
	return bind(NewContext(ctx, p), p), nil
}

// bind returns ctx for p: bound to its tenant (users.BindTenant), the
// default tenant when its token names none, unless p has the platform
// scope, which acts in every tenant.
func bind(ctx context.Context, p Principal) context.Context {
	if p.Has(ScopeTenantsAdmin) {
		return ctx
	}
	return users.BindTenant(ctx, cmp.Or(p.Tenant, users.DefaultTenant))
}

// authenticate returns the caller named by the call's bearer token.
func (a *Authenticator) authenticate(ctx context.Context) (Principal, error) {
	vals := metadata.ValueFromIncomingContext(ctx, MDAuthorization)
	switch len(vals) {
	case 0:
		return Principal{}, ErrTokenMissing
	case 1:
	default:
		return Principal{}, ErrTokenRepeated
	}
	scheme, token, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return Principal{}, ErrTokenScheme
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return Principal{}, ErrTokenEmpty
	}
	return a.Verify(ctx, token)
}

// challenge returns the WWW-Authenticate value for a call refused for
// reason: no error code when the call carried no bearer token at all,
// "invalid_token" otherwise. Reasons are fixed texts without quotes, so
// the value needs no escaping.
func challenge(reason TokenError) string {
	c := `Bearer realm="` + Realm + `"`
	switch reason {
	case ErrTokenMissing, ErrTokenScheme:
		return c
	}
	return c + `, error="invalid_token", error_description="` + string(reason) + `"`
}

// scopeChallenge returns the WWW-Authenticate value for a call refused by
// d: "insufficient_scope" and the scope that would do.
func scopeChallenge(d *denial) string {
	c := `Bearer realm="` + Realm + `", error="insufficient_scope", error_description="` + d.Error() + `"`
	if d.scope != "" {
		c += `, scope="` + d.scope + `"`
	}
	return c
}
