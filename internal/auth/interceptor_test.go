package auth_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/auth/authtest"
)

// headerStream records the response headers a unary interceptor sets.
type headerStream struct{ header metadata.MD }

func (s *headerStream) Method() string { return "" }
func (s *headerStream) SetHeader(md metadata.MD) error {
	s.header = metadata.Join(s.header, md)
	return nil
}
func (s *headerStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }
func (s *headerStream) SetTrailer(metadata.MD) error    { return nil }

// serverStream records the response headers a stream interceptor sets.
type serverStream struct {
	grpc.ServerStream // nil; only the methods below are called
	ctx               context.Context
	header            metadata.MD
}

func (s *serverStream) SetHeader(md metadata.MD) error {
	s.header = metadata.Join(s.header, md)
	return nil
}
func (s *serverStream) Context() context.Context { return s.ctx }

// outcome is what one call through an interceptor did.
type outcome struct {
	err       error
	challenge []string        // www-authenticate response metadata
	caller    *auth.Principal // what the handler found in its context; nil when it did not run or found none
	ran       bool            // the handler ran
}

// callUnary passes a call of method with req and the authorization values
// through a's unary interceptor.
func callUnary(a *auth.Authenticator, method string, req any, authorization ...string) outcome {
	hs := &headerStream{}
	ctx := context.Background()
	if len(authorization) > 0 {
		md := metadata.MD{}
		for _, v := range authorization {
			md.Append("authorization", v)
		}
		ctx = metadata.NewIncomingContext(ctx, md)
	}
	ctx = grpc.NewContextWithServerTransportStream(ctx, hs)
	var o outcome
	_, o.err = a.UnaryInterceptor()(ctx, req, &grpc.UnaryServerInfo{FullMethod: method}, func(ctx context.Context, req any) (any, error) {
		o.ran = true
		if p, ok := auth.FromContext(ctx); ok {
			o.caller = &p
		}
		return "ok", nil
	})
	o.challenge = hs.header.Get(auth.MDWWWAuthenticate)
	return o
}

// callStream does what callUnary does through a's stream interceptor.
func callStream(a *auth.Authenticator, method string, authorization ...string) outcome {
	ctx := context.Background()
	if len(authorization) > 0 {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(append([]string{"authorization"}, authorization...)...))
	}
	ss := &serverStream{ctx: ctx}
	var o outcome
	o.err = a.StreamInterceptor()(nil, ss, &grpc.StreamServerInfo{FullMethod: method}, func(srv any, ss grpc.ServerStream) error {
		o.ran = true
		if p, ok := auth.FromContext(ss.Context()); ok {
			o.caller = &p
		}
		return nil
	})
	o.challenge = ss.header.Get(auth.MDWWWAuthenticate)
	return o
}

func wantChallenge(reason string) string {
	c := `Bearer realm="usersd"`
	if reason != "" {
		c += `, error="invalid_token", error_description="` + reason + `"`
	}
	return c
}

// TestInterceptorHostile checks that every hostile credential gets
// UNAUTHENTICATED, its RFC 6750 challenge, and never reaches the handler.
func TestInterceptorHostile(t *testing.T) {
	k := newKeys(t)
	a := newAuth(t, auth.Config{JWKS: k.jwks})
	req := &usersv1.ListUsersRequest{}
	for _, h := range authtest.HostileTokens(t, k.rsa, k.ec, uuid.NewString()) {
		t.Run(h.Name, func(t *testing.T) {
			var o outcome
			if h.Authorization == "" {
				o = callUnary(a, usersv1.UserService_ListUsers_FullMethodName, req)
			} else {
				o = callUnary(a, usersv1.UserService_ListUsers_FullMethodName, req, h.Authorization)
			}
			if o.ran {
				t.Fatal("the handler ran")
			}
			if got := status.Code(o.err); got != codes.Unauthenticated {
				t.Errorf("code = %v (%v), want Unauthenticated", got, o.err)
			}
			want := wantChallenge(h.Reason)
			if len(o.challenge) != 1 || o.challenge[0] != want {
				t.Errorf("www-authenticate = %q, want [%q]", o.challenge, want)
			}
		})
	}
}

func TestInterceptorAdmits(t *testing.T) {
	k := newKeys(t)
	a := newAuth(t, auth.Config{JWKS: k.jwks})
	sub := uuid.NewString()
	tok := k.ed.Token(t, authtest.Claims{Subject: sub, Scopes: []string{auth.ScopeRead}})
	for _, authz := range []string{"Bearer " + tok, "bearer " + tok, "BEARER  " + tok + " "} {
		o := callUnary(a, usersv1.UserService_ListUsers_FullMethodName, &usersv1.ListUsersRequest{}, authz)
		if o.err != nil || !o.ran {
			t.Fatalf("call with %.12q… err = %v, ran %v; want nil, true", authz, o.err, o.ran)
		}
		if o.caller == nil || o.caller.Subject != sub || !o.caller.Has(auth.ScopeRead) || o.caller.Has(auth.ScopeWrite) {
			t.Errorf("caller = %+v, want %s with users.read only", o.caller, sub)
		}
		if len(o.challenge) != 0 {
			t.Errorf("www-authenticate = %q, want none", o.challenge)
		}
	}

	// Self-service: the user itself, without scopes.
	o := callUnary(a, usersv1.UserService_GetUser_FullMethodName, &usersv1.GetUserRequest{Id: sub},
		"Bearer "+k.rsa.Token(t, authtest.Claims{Subject: sub}))
	if o.err != nil || o.caller == nil || o.caller.Subject != sub {
		t.Errorf("GetUser of oneself err = %v, caller %+v; want nil, %s", o.err, o.caller, sub)
	}
}

func TestInterceptorDenies(t *testing.T) {
	k := newKeys(t)
	a := newAuth(t, auth.Config{JWKS: k.jwks})
	reader := "Bearer " + k.ec.Token(t, authtest.Claims{Subject: uuid.NewString(), Scopes: []string{auth.ScopeRead}})
	admin := "Bearer " + k.ec.Token(t, authtest.Claims{Subject: uuid.NewString(), Scopes: []string{auth.ScopeAdmin}})
	tests := []struct {
		name, method, authz string
		want                string
	}{
		{"reader creates", usersv1.UserService_CreateUser_FullMethodName, reader,
			`Bearer realm="usersd", error="insufficient_scope", error_description="requires scope users.write", scope="users.write"`},
		{"reader imports", usersv1.UserService_ImportUsers_FullMethodName, reader,
			`Bearer realm="usersd", error="insufficient_scope", error_description="requires scope users.admin", scope="users.admin"`},
		{"admin calls an unknown method", "/users.v1.UserService/DropAll", admin,
			`Bearer realm="usersd", error="insufficient_scope", error_description="method not allowed"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := callUnary(a, tc.method, &usersv1.CreateUserRequest{}, tc.authz)
			if o.ran {
				t.Fatal("the handler ran")
			}
			if got := status.Code(o.err); got != codes.PermissionDenied {
				t.Errorf("code = %v (%v), want PermissionDenied", got, o.err)
			}
			if len(o.challenge) != 1 || o.challenge[0] != tc.want {
				t.Errorf("www-authenticate = %q, want [%q]", o.challenge, tc.want)
			}
		})
	}
}

func TestInterceptorRefusesTwoTokens(t *testing.T) {
	k := newKeys(t)
	a := newAuth(t, auth.Config{JWKS: k.jwks})
	tok := "Bearer " + k.ec.Token(t, authtest.Claims{Subject: "alice", Scopes: []string{auth.ScopeAdmin}})
	o := callUnary(a, usersv1.UserService_ListUsers_FullMethodName, &usersv1.ListUsersRequest{}, tok, tok)
	if status.Code(o.err) != codes.Unauthenticated || o.ran {
		t.Errorf("call with two tokens err = %v, ran %v; want Unauthenticated, false", o.err, o.ran)
	}
	if want := wantChallenge(string(auth.ErrTokenRepeated)); len(o.challenge) != 1 || o.challenge[0] != want {
		t.Errorf("www-authenticate = %q, want [%q]", o.challenge, want)
	}
}

func TestInterceptorPublicServices(t *testing.T) {
	k := newKeys(t)
	a := newAuth(t, auth.Config{JWKS: k.jwks})
	for _, m := range []string{"/grpc.health.v1.Health/Check", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"} {
		if o := callUnary(a, m, nil); o.err != nil || !o.ran || o.caller != nil {
			t.Errorf("unary %s without a token: err = %v, ran %v, caller %v; want nil, true, nil", m, o.err, o.ran, o.caller)
		}
		if o := callStream(a, m, "Bearer garbage"); o.err != nil || !o.ran {
			t.Errorf("stream %s with garbage: err = %v, ran %v; want nil, true", m, o.err, o.ran)
		}
	}
}

func TestStreamInterceptor(t *testing.T) {
	k := newKeys(t)
	a := newAuth(t, auth.Config{JWKS: k.jwks})
	sub := uuid.NewString()
	method := usersv1.UserService_GetUser_FullMethodName // as if it streamed
	reader := "Bearer " + k.rsa.Token(t, authtest.Claims{Subject: sub, Scopes: []string{auth.ScopeRead}})
	self := "Bearer " + k.rsa.Token(t, authtest.Claims{Subject: sub})

	if o := callStream(a, method); status.Code(o.err) != codes.Unauthenticated || o.ran || len(o.challenge) != 1 {
		t.Errorf("stream without a token: err = %v, ran %v, challenge %q; want Unauthenticated, false, one", o.err, o.ran, o.challenge)
	}
	if o := callStream(a, method, self); status.Code(o.err) != codes.PermissionDenied || o.ran {
		t.Errorf("stream as the user, without scopes: err = %v, ran %v; want PermissionDenied, false", o.err, o.ran)
	}
	o := callStream(a, method, reader)
	if o.err != nil || o.caller == nil || o.caller.Subject != sub {
		t.Errorf("stream with users.read: err = %v, caller %+v; want nil, %s", o.err, o.caller, sub)
	}
}

func TestModeNoneInterceptors(t *testing.T) {
	a, err := auth.New(context.Background(), auth.Config{Mode: auth.ModeNone})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for _, authz := range [][]string{nil, {"Bearer garbage"}} {
		o := callUnary(a, usersv1.UserService_ImportUsers_FullMethodName, &usersv1.ImportUsersRequest{}, authz...)
		if o.err != nil || !o.ran || o.caller != nil {
			t.Errorf("unary in mode none with %q: err = %v, ran %v, caller %v; want nil, true, nil", authz, o.err, o.ran, o.caller)
		}
		s := callStream(a, usersv1.UserService_ImportUsers_FullMethodName, authz...)
		if s.err != nil || !s.ran || s.caller != nil {
			t.Errorf("stream in mode none with %q: err = %v, ran %v, caller %v; want nil, true, nil", authz, s.err, s.ran, s.caller)
		}
	}
}
