package grpcserver_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/auth/authtest"
	"github.com/usersd/usersd/internal/grpcserver"
	"github.com/usersd/usersd/internal/sqlite"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

// authEnv is usersd's gRPC API, v1 and v2, with health checking and
// reflection, served on 127.0.0.1:0 through the production interceptor
// chain with authentication on, over a fresh SQLite database.
type authEnv struct {
	svc  *users.Service
	rsa  *authtest.Key // in the JWKS
	ec   *authtest.Key // in the JWKS
	conn *grpc.ClientConn
	v1   usersv1.UserServiceClient
	v2   usersv2.UserServiceClient
}

// newAuthEnv starts an authEnv; chain's Log and Auth are set here, its
// other fields (RateLimit, say) are the test's.
func newAuthEnv(t *testing.T, chain grpcserver.ChainConfig) *authEnv {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "users.db"))
	if err != nil {
		t.Fatalf("sqlite.Open err = %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if err := sqlite.Migrate(ctx, db, nil); err != nil {
		t.Fatalf("sqlite.Migrate err = %v", err)
	}
	e := &authEnv{
		svc: users.NewService(sqlite.NewStore(db, sqlite.WithJobs(&userstest.Queue[*sql.Tx]{})), users.Config{}),
		rsa: authtest.NewKey(t, jose.RS256),
		ec:  authtest.NewKey(t, jose.ES256),
	}
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	authtest.WriteJWKS(t, jwks, e.rsa, e.ec)
	a, err := auth.New(ctx, auth.Config{Mode: auth.ModeJWT, Issuer: authtest.Issuer, Audience: authtest.Audience, JWKS: jwks})
	if err != nil {
		t.Fatalf("auth.New err = %v", err)
	}
	t.Cleanup(a.Close)

	chain.Log = zerolog.Nop()
	chain.Auth = a.UnaryInterceptor()
	ics := grpcserver.Interceptors(chain)
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(ics...), grpc.ChainStreamInterceptor(a.StreamInterceptor()))
	usersv1.RegisterUserServiceServer(srv, grpcserver.New(e.svc))
	usersv2.RegisterUserServiceServer(srv, grpcserver.NewV2(e.svc))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	reflection.Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen err = %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve err = %v", err)
		}
	})
	e.conn, err = grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("NewClient err = %v", err)
	}
	t.Cleanup(func() { e.conn.Close() })
	e.v1, e.v2 = usersv1.NewUserServiceClient(e.conn), usersv2.NewUserServiceClient(e.conn)
	return e
}

// bearer returns an Authorization value for sub with scopes.
func (e *authEnv) bearer(t *testing.T, sub string, scopes ...string) string {
	t.Helper()
	return "Bearer " + e.ec.Token(t, authtest.Claims{Subject: sub, Scopes: scopes})
}

// withAuth returns ctx sending the authorization value, if any.
func withAuth(ctx context.Context, authorization string) context.Context {
	if authorization == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, auth.MDAuthorization, authorization)
}

// callerRole is who calls, in the role table.
type callerRole int

const (
	noToken   callerRole = iota // no credentials
	noScopes                    // a valid token of another user, without the API's scopes
	selfRole                    // a valid token of the user concerned, without scopes
	readRole                    // users.read
	writeRole                   // users.write
	adminRole                   // users.admin
)

var callerRoles = []callerRole{noToken, noScopes, selfRole, readRole, writeRole, adminRole}

func (r callerRole) String() string {
	return [...]string{"no token", "no scopes", "self", "users.read", "users.write", "users.admin"}[r]
}

// authorization returns the Authorization value of r when the user
// concerned is self.
func (r callerRole) authorization(t *testing.T, e *authEnv, self string) string {
	switch r {
	case noToken:
		return ""
	case noScopes:
		return e.bearer(t, uuid.NewString(), "openid", "profile")
	case selfRole:
		return e.bearer(t, self)
	case readRole:
		return e.bearer(t, uuid.NewString(), auth.ScopeRead)
	case writeRole:
		return e.bearer(t, uuid.NewString(), auth.ScopeWrite)
	}
	return e.bearer(t, uuid.NewString(), auth.ScopeAdmin)
}

// fixture is what one cell of the role table acts on, made fresh for it.
type fixture struct {
	self, other string // user ids; self is the user concerned
	operation   string // an import's id
	webhook     string // a webhook subscription's id
}

// fixtureOpts says what a cell needs beyond two active users.
type fixtureOpts struct {
	deleted   bool // self is deleted
	operation bool // an import exists
	webhook   bool // a webhook subscription exists
}

func (e *authEnv) fixture(t *testing.T, o fixtureOpts) fixture {
	t.Helper()
	ctx := context.Background()
	create := func() string {
		u, err := e.svc.Create(ctx, users.CreateRequest{User: &users.User{Email: uuid.NewString() + "@example.com", DisplayName: "Fixture"}})
		if err != nil {
			t.Fatalf("Create err = %v", err)
		}
		return u.ID
	}
	f := fixture{self: create(), other: create()}
	if o.deleted {
		if _, err := e.svc.Delete(ctx, users.DefaultTenant, f.self, ""); err != nil {
			t.Fatalf("Delete err = %v", err)
		}
	}
	if o.operation {
		op, err := e.svc.Import(ctx, users.ImportRequest{RequestID: uuid.NewString(), Rows: []users.ImportRow{{Email: uuid.NewString() + "@example.com", DisplayName: "Row"}}})
		if err != nil {
			t.Fatalf("Import err = %v", err)
		}
		f.operation = op.ID
	}
	if o.webhook {
		w, err := e.svc.CreateWebhook(ctx, users.WebhookRequest{URL: "https://example.com/hooks", Enabled: true})
		if err != nil {
			t.Fatalf("CreateWebhook err = %v", err)
		}
		f.webhook = w.ID
	}
	return f
}

// roleCase is a row of the role table: one call, and the roles it allows.
type roleCase struct {
	name   string
	method string
	opts   fixtureOpts
	call   func(ctx context.Context, e *authEnv, f fixture, opts ...grpc.CallOption) error
	allow  []callerRole
}

var (
	allowWrite  = []callerRole{writeRole, adminRole}
	allowRead   = []callerRole{readRole, writeRole, adminRole}
	allowAdmin  = []callerRole{adminRole}
	allowSelfOr = func(rs []callerRole) []callerRole { return append([]callerRole{selfRole}, rs...) }
)

func newEmail() string { return uuid.NewString() + "@example.com" }

func v1Cases() []roleCase {
	user := func(id string) *usersv1.User { return &usersv1.User{Id: id, DisplayName: "New name"} }
	return []roleCase{
		{"create", usersv1.UserService_CreateUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v1.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{Email: newEmail(), DisplayName: "New"}}, o...)
			return err
		}, allowWrite},
		{"get self", usersv1.UserService_GetUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v1.GetUser(ctx, &usersv1.GetUserRequest{Id: strings.ToUpper(f.self)}, o...)
			return err
		}, allowSelfOr(allowRead)},
		{"get other", usersv1.UserService_GetUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v1.GetUser(ctx, &usersv1.GetUserRequest{Id: f.other}, o...)
			return err
		}, allowRead},
		{"list", usersv1.UserService_ListUsers_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v1.ListUsers(ctx, &usersv1.ListUsersRequest{}, o...)
			return err
		}, allowRead},
		{"update own display name", usersv1.UserService_UpdateUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v1.UpdateUser(ctx, &usersv1.UpdateUserRequest{User: user(f.self), UpdateMask: maskOf("display_name")}, o...)
			return err
		}, allowSelfOr(allowWrite)},
		{"update own labels, empty mask", usersv1.UserService_UpdateUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v1.UpdateUser(ctx, &usersv1.UpdateUserRequest{User: &usersv1.User{Id: f.self, Labels: map[string]string{"team": "core"}}}, o...)
			return err
		}, allowSelfOr(allowWrite)},
		{"update own email", usersv1.UserService_UpdateUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v1.UpdateUser(ctx, &usersv1.UpdateUserRequest{User: &usersv1.User{Id: f.self, Email: newEmail()}, UpdateMask: maskOf("email")}, o...)
			return err
		}, allowWrite},
		{"update own state, empty mask", usersv1.UserService_UpdateUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v1.UpdateUser(ctx, &usersv1.UpdateUserRequest{User: &usersv1.User{Id: f.self, State: usersv1.User_STATE_SUSPENDED}}, o...)
			return err
		}, allowWrite},
		{"update own, mask *", usersv1.UserService_UpdateUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			u := &usersv1.User{Id: f.self, Email: newEmail(), DisplayName: "All", State: usersv1.User_STATE_ACTIVE}
			_, err := e.v1.UpdateUser(ctx, &usersv1.UpdateUserRequest{User: u, UpdateMask: maskOf("*")}, o...)
			return err
		}, allowWrite},
		{"update other's display name", usersv1.UserService_UpdateUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v1.UpdateUser(ctx, &usersv1.UpdateUserRequest{User: user(f.other), UpdateMask: maskOf("display_name")}, o...)
			return err
		}, allowWrite},
		{"delete self", usersv1.UserService_DeleteUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v1.DeleteUser(ctx, &usersv1.DeleteUserRequest{Id: f.self}, o...)
			return err
		}, allowWrite},
		{"delete other", usersv1.UserService_DeleteUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v1.DeleteUser(ctx, &usersv1.DeleteUserRequest{Id: f.other}, o...)
			return err
		}, allowWrite},
		{"undelete self", usersv1.UserService_UndeleteUser_FullMethodName, fixtureOpts{deleted: true}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v1.UndeleteUser(ctx, &usersv1.UndeleteUserRequest{Id: f.self}, o...)
			return err
		}, allowAdmin},
		{"batch get self", usersv1.UserService_BatchGetUsers_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v1.BatchGetUsers(ctx, &usersv1.BatchGetUsersRequest{Ids: []string{f.self}}, o...)
			return err
		}, allowSelfOr(allowRead)},
		{"batch get self and other", usersv1.UserService_BatchGetUsers_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v1.BatchGetUsers(ctx, &usersv1.BatchGetUsersRequest{Ids: []string{f.self, f.other}}, o...)
			return err
		}, allowRead},
		{"import", usersv1.UserService_ImportUsers_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v1.ImportUsers(ctx, &usersv1.ImportUsersRequest{RequestId: uuid.NewString(), Users: []*usersv1.User{{Email: newEmail(), DisplayName: "Row"}}}, o...)
			return err
		}, allowAdmin},
		{"get operation", usersv1.UserService_GetOperation_FullMethodName, fixtureOpts{operation: true}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v1.GetOperation(ctx, &usersv1.GetOperationRequest{Id: f.operation}, o...)
			return err
		}, allowAdmin},
		{"list events", usersv1.UserService_ListUserEvents_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v1.ListUserEvents(ctx, &usersv1.ListUserEventsRequest{}, o...)
			return err
		}, allowRead},
		// A stream: its first event (the fixture's users made some) or
		// its refusal. The cell's context ends it, after the cell has
		// looked at its header.
		{"watch events", usersv1.UserService_WatchUserEvents_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			stream, err := e.v1.WatchUserEvents(ctx, &usersv1.WatchUserEventsRequest{}, o...)
			if err != nil {
				return err
			}
			_, err = stream.Recv()
			return err
		}, allowRead},
		{"create webhook", usersv1.UserService_CreateWebhook_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v1.CreateWebhook(ctx, &usersv1.CreateWebhookRequest{Webhook: &usersv1.Webhook{Url: "https://example.com/hooks"}}, o...)
			return err
		}, allowAdmin},
		{"get webhook", usersv1.UserService_GetWebhook_FullMethodName, fixtureOpts{webhook: true}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v1.GetWebhook(ctx, &usersv1.GetWebhookRequest{Id: f.webhook}, o...)
			return err
		}, allowAdmin},
		{"list webhooks", usersv1.UserService_ListWebhooks_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v1.ListWebhooks(ctx, &usersv1.ListWebhooksRequest{}, o...)
			return err
		}, allowAdmin},
		{"rotate webhook secret", usersv1.UserService_UpdateWebhook_FullMethodName, fixtureOpts{webhook: true}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v1.UpdateWebhook(ctx, &usersv1.UpdateWebhookRequest{Webhook: &usersv1.Webhook{Id: f.webhook}, UpdateMask: maskOf("secret")}, o...)
			return err
		}, allowAdmin},
		{"delete webhook", usersv1.UserService_DeleteWebhook_FullMethodName, fixtureOpts{webhook: true}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v1.DeleteWebhook(ctx, &usersv1.DeleteWebhookRequest{Id: f.webhook}, o...)
			return err
		}, allowAdmin},
		{"list webhook deliveries", usersv1.UserService_ListWebhookDeliveries_FullMethodName, fixtureOpts{webhook: true}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v1.ListWebhookDeliveries(ctx, &usersv1.ListWebhookDeliveriesRequest{WebhookId: f.webhook}, o...)
			return err
		}, allowAdmin},
	}
}

func v2Cases() []roleCase {
	name := func(id string) string { return "users/" + id }
	user := func(id string) *usersv2.User { return &usersv2.User{Name: name(id), DisplayName: "New name"} }
	return []roleCase{
		{"create", usersv2.UserService_CreateUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.CreateUser(ctx, &usersv2.CreateUserRequest{User: &usersv2.User{Email: newEmail(), DisplayName: "New"}}, o...)
			return err
		}, allowWrite},
		{"get self", usersv2.UserService_GetUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.GetUser(ctx, &usersv2.GetUserRequest{Name: name(f.self)}, o...)
			return err
		}, allowSelfOr(allowRead)},
		{"get other", usersv2.UserService_GetUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.GetUser(ctx, &usersv2.GetUserRequest{Name: name(f.other)}, o...)
			return err
		}, allowRead},
		{"list", usersv2.UserService_ListUsers_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.ListUsers(ctx, &usersv2.ListUsersRequest{}, o...)
			return err
		}, allowRead},
		{"update own display name and labels", usersv2.UserService_UpdateUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			u := user(f.self)
			u.Labels = map[string]string{"team": "core"}
			_, err := e.v2.UpdateUser(ctx, &usersv2.UpdateUserRequest{User: u, UpdateMask: maskOf("display_name", "labels")}, o...)
			return err
		}, allowSelfOr(allowWrite)},
		{"update own display name, empty mask", usersv2.UserService_UpdateUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.UpdateUser(ctx, &usersv2.UpdateUserRequest{User: user(f.self)}, o...)
			return err
		}, allowSelfOr(allowWrite)},
		{"update own email", usersv2.UserService_UpdateUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.UpdateUser(ctx, &usersv2.UpdateUserRequest{User: &usersv2.User{Name: name(f.self), Email: newEmail()}, UpdateMask: maskOf("email")}, o...)
			return err
		}, allowWrite},
		{"update own names, locale and time zone", usersv2.UserService_UpdateUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			u := &usersv2.User{Name: name(f.self), GivenName: "Ada", FamilyName: "King", Locale: "en-GB", TimeZone: "Europe/London"}
			_, err := e.v2.UpdateUser(ctx, &usersv2.UpdateUserRequest{User: u, UpdateMask: maskOf("given_name", "family_name", "locale", "time_zone")}, o...)
			return err
		}, allowSelfOr(allowWrite)},
		{"verify own email, empty mask", usersv2.UserService_UpdateUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.UpdateUser(ctx, &usersv2.UpdateUserRequest{User: &usersv2.User{Name: name(f.self), EmailVerified: true}}, o...)
			return err
		}, allowWrite},
		{"set own external id", usersv2.UserService_UpdateUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.UpdateUser(ctx, &usersv2.UpdateUserRequest{User: &usersv2.User{Name: name(f.self), ExternalId: uuid.NewString()}, UpdateMask: maskOf("external_id")}, o...)
			return err
		}, allowWrite},
		{"update own state", usersv2.UserService_UpdateUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.UpdateUser(ctx, &usersv2.UpdateUserRequest{User: &usersv2.User{Name: name(f.self), State: usersv2.User_STATE_SUSPENDED}, UpdateMask: maskOf("state")}, o...)
			return err
		}, allowWrite},
		{"update own, mask *", usersv2.UserService_UpdateUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			u := &usersv2.User{Name: name(f.self), Email: newEmail(), DisplayName: "All", State: usersv2.User_STATE_ACTIVE}
			_, err := e.v2.UpdateUser(ctx, &usersv2.UpdateUserRequest{User: u, UpdateMask: maskOf("*")}, o...)
			return err
		}, allowWrite},
		{"update other's display name", usersv2.UserService_UpdateUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.UpdateUser(ctx, &usersv2.UpdateUserRequest{User: user(f.other), UpdateMask: maskOf("display_name")}, o...)
			return err
		}, allowWrite},
		{"delete self", usersv2.UserService_DeleteUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.DeleteUser(ctx, &usersv2.DeleteUserRequest{Name: name(f.self)}, o...)
			return err
		}, allowWrite},
		{"delete other", usersv2.UserService_DeleteUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.DeleteUser(ctx, &usersv2.DeleteUserRequest{Name: name(f.other)}, o...)
			return err
		}, allowWrite},
		{"undelete self", usersv2.UserService_UndeleteUser_FullMethodName, fixtureOpts{deleted: true}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.UndeleteUser(ctx, &usersv2.UndeleteUserRequest{Name: name(f.self)}, o...)
			return err
		}, allowAdmin},
		{"batch get self", usersv2.UserService_BatchGetUsers_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.BatchGetUsers(ctx, &usersv2.BatchGetUsersRequest{Names: []string{name(f.self)}}, o...)
			return err
		}, allowSelfOr(allowRead)},
		{"batch get self and other", usersv2.UserService_BatchGetUsers_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.BatchGetUsers(ctx, &usersv2.BatchGetUsersRequest{Names: []string{name(f.self), name(f.other)}}, o...)
			return err
		}, allowRead},
		{"lookup", usersv2.UserService_LookupUser_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.LookupUser(ctx, &usersv2.LookupUserRequest{ExternalId: "nobody"}, o...)
			if status.Code(err) == codes.NotFound {
				return nil // allowed, and there is no such user
			}
			return err
		}, allowRead},
		{"export", usersv2.UserService_ExportUsers_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			stream, err := e.v2.ExportUsers(ctx, &usersv2.ExportUsersRequest{}, o...)
			if err != nil {
				return err
			}
			_, err = stream.Recv()
			return err
		}, allowAdmin},
		{"import", usersv2.UserService_ImportUsers_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.ImportUsers(ctx, &usersv2.ImportUsersRequest{RequestId: uuid.NewString(), Users: []*usersv2.User{{Email: newEmail(), DisplayName: "Row"}}}, o...)
			return err
		}, allowAdmin},
		{"get operation", usersv2.UserService_GetOperation_FullMethodName, fixtureOpts{operation: true}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.GetOperation(ctx, &usersv2.GetOperationRequest{Name: "operations/" + f.operation}, o...)
			return err
		}, allowAdmin},
		{"list events", usersv2.UserService_ListUserEvents_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.ListUserEvents(ctx, &usersv2.ListUserEventsRequest{}, o...)
			return err
		}, allowRead},
		{"watch events", usersv2.UserService_WatchUserEvents_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			stream, err := e.v2.WatchUserEvents(ctx, &usersv2.WatchUserEventsRequest{}, o...)
			if err != nil {
				return err
			}
			_, err = stream.Recv()
			return err
		}, allowRead},
		{"create webhook", usersv2.UserService_CreateWebhook_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.CreateWebhook(ctx, &usersv2.CreateWebhookRequest{Webhook: &usersv2.Webhook{Url: "https://example.com/hooks"}}, o...)
			return err
		}, allowAdmin},
		{"get webhook", usersv2.UserService_GetWebhook_FullMethodName, fixtureOpts{webhook: true}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.GetWebhook(ctx, &usersv2.GetWebhookRequest{Name: "webhooks/" + f.webhook}, o...)
			return err
		}, allowAdmin},
		{"list webhooks", usersv2.UserService_ListWebhooks_FullMethodName, fixtureOpts{}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.ListWebhooks(ctx, &usersv2.ListWebhooksRequest{}, o...)
			return err
		}, allowAdmin},
		{"rotate webhook secret", usersv2.UserService_UpdateWebhook_FullMethodName, fixtureOpts{webhook: true}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.UpdateWebhook(ctx, &usersv2.UpdateWebhookRequest{Webhook: &usersv2.Webhook{Name: "webhooks/" + f.webhook}, UpdateMask: maskOf("secret")}, o...)
			return err
		}, allowAdmin},
		{"delete webhook", usersv2.UserService_DeleteWebhook_FullMethodName, fixtureOpts{webhook: true}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.DeleteWebhook(ctx, &usersv2.DeleteWebhookRequest{Name: "webhooks/" + f.webhook}, o...)
			return err
		}, allowAdmin},
		{"list webhook deliveries", usersv2.UserService_ListWebhookDeliveries_FullMethodName, fixtureOpts{webhook: true}, func(ctx context.Context, e *authEnv, f fixture, o ...grpc.CallOption) error {
			_, err := e.v2.ListWebhookDeliveries(ctx, &usersv2.ListWebhookDeliveriesRequest{Parent: "webhooks/" + f.webhook}, o...)
			return err
		}, allowAdmin},
	}
}

// TestAuthRoles runs every RPC of users.v1 and users.v2, streams included,
// as every role, over the network through the production chain (streams
// through the authenticator's stream interceptor), on fresh fixtures, and
// checks each cell's code: OK when the role is allowed, UNAUTHENTICATED without a
// token, PERMISSION_DENIED otherwise. It fails when a method of either
// service is missing from the table.
func TestAuthRoles(t *testing.T) {
	e := newAuthEnv(t, grpcserver.ChainConfig{})
	called := map[string]bool{}
	for version, cases := range map[string][]roleCase{"v1": v1Cases(), "v2": v2Cases()} {
		for _, tc := range cases {
			called[tc.method] = true
			for _, r := range callerRoles {
				t.Run(fmt.Sprintf("%s %s as %s", version, tc.name, r), func(t *testing.T) {
					f := e.fixture(t, tc.opts)
					want := codes.OK
					switch {
					case r == noToken:
						want = codes.Unauthenticated
					case !slices.Contains(tc.allow, r):
						want = codes.PermissionDenied
					}
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					var header metadata.MD
					err := tc.call(withAuth(ctx, r.authorization(t, e, f.self)), e, f, grpc.Header(&header))
					if got := status.Code(err); got != want {
						t.Fatalf("code = %v (%v), want %v", got, err, want)
					}
					challenge := header.Get(auth.MDWWWAuthenticate)
					switch want {
					case codes.Unauthenticated:
						if len(challenge) != 1 || challenge[0] != `Bearer realm="usersd"` {
							t.Errorf("www-authenticate = %q, want [%q]", challenge, `Bearer realm="usersd"`)
						}
					case codes.PermissionDenied:
						if len(challenge) != 1 || !strings.Contains(challenge[0], `error="insufficient_scope"`) {
							t.Errorf("www-authenticate = %q, want an insufficient_scope challenge", challenge)
						}
					default:
						if len(challenge) != 0 {
							t.Errorf("www-authenticate = %q, want none", challenge)
						}
					}
				})
			}
		}
	}
	for _, desc := range []grpc.ServiceDesc{usersv1.UserService_ServiceDesc, usersv2.UserService_ServiceDesc} {
		for _, m := range desc.Methods {
			if full := "/" + desc.ServiceName + "/" + m.MethodName; !called[full] {
				t.Errorf("the role table never calls %s", full)
			}
		}
		for _, s := range desc.Streams {
			if full := "/" + desc.ServiceName + "/" + s.StreamName; !called[full] {
				t.Errorf("the role table never calls the stream %s", full)
			}
		}
	}
}

// TestAuthBeforeValidation checks that callers without a token, or without
// the scope, learn nothing from validation: they get UNAUTHENTICATED or
// PERMISSION_DENIED for requests that are invalid too.
func TestAuthBeforeValidation(t *testing.T) {
	e := newAuthEnv(t, grpcserver.ChainConfig{})
	invalid := &usersv1.GetUserRequest{Id: "not-a-uuid"}
	if _, err := e.v1.GetUser(context.Background(), invalid); status.Code(err) != codes.Unauthenticated {
		t.Errorf("invalid GetUser without a token err = %v, want Unauthenticated", err)
	}
	ctx := withAuth(context.Background(), e.bearer(t, uuid.NewString()))
	if _, err := e.v1.GetUser(ctx, invalid); status.Code(err) != codes.PermissionDenied {
		t.Errorf("invalid GetUser without scopes err = %v, want PermissionDenied", err)
	}
	ctx = withAuth(context.Background(), e.bearer(t, uuid.NewString(), auth.ScopeRead))
	if _, err := e.v1.GetUser(ctx, invalid); status.Code(err) != codes.InvalidArgument {
		t.Errorf("invalid GetUser with users.read err = %v, want InvalidArgument", err)
	}
}

// TestAuthPublicServices checks that health checking and reflection need no
// token.
func TestAuthPublicServices(t *testing.T) {
	e := newAuthEnv(t, grpcserver.ChainConfig{})
	ctx := context.Background()
	res, err := healthpb.NewHealthClient(e.conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("Health.Check without a token = %v, %v; want SERVING", res, err)
	}
	stream, err := reflectionpb.NewServerReflectionClient(e.conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatalf("ServerReflectionInfo err = %v", err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatalf("reflection Send err = %v", err)
	}
	got, err := stream.Recv()
	if err != nil {
		t.Fatalf("reflection Recv without a token err = %v", err)
	}
	var services []string
	for _, s := range got.GetListServicesResponse().GetService() {
		services = append(services, s.GetName())
	}
	if !slices.Contains(services, "users.v1.UserService") {
		t.Errorf("reflection services = %q, want users.v1.UserService among them", services)
	}
	stream.CloseSend()
}

// TestAuthHostileTokensGRPC sends every hostile credential over gRPC, to
// both versions, and logs the code and challenge each got.
func TestAuthHostileTokensGRPC(t *testing.T) {
	e := newAuthEnv(t, grpcserver.ChainConfig{})
	self := e.fixture(t, fixtureOpts{}).self
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-28s | %-16s | %s\n", "credential", "gRPC code", "www-authenticate")
	for _, h := range authtest.HostileTokens(t, e.rsa, e.ec, self) {
		t.Run(h.Name, func(t *testing.T) {
			ctx := withAuth(context.Background(), h.Authorization)
			calls := map[string]func(...grpc.CallOption) error{
				"v1 GetUser": func(o ...grpc.CallOption) error {
					_, err := e.v1.GetUser(ctx, &usersv1.GetUserRequest{Id: self}, o...)
					return err
				},
				"v2 ListUsers": func(o ...grpc.CallOption) error {
					_, err := e.v2.ListUsers(ctx, &usersv2.ListUsersRequest{}, o...)
					return err
				},
			}
			want := `Bearer realm="usersd"`
			if h.Reason != "" {
				want += `, error="invalid_token", error_description="` + h.Reason + `"`
			}
			for name, call := range calls {
				var header metadata.MD
				err := call(grpc.Header(&header))
				if got := status.Code(err); got != codes.Unauthenticated {
					t.Errorf("%s code = %v (%v), want Unauthenticated", name, got, err)
				}
				if got := header.Get(auth.MDWWWAuthenticate); len(got) != 1 || got[0] != want {
					t.Errorf("%s www-authenticate = %q, want [%q]", name, got, want)
				}
				if name == "v1 GetUser" {
					fmt.Fprintf(&table, "%-28s | %-16v | %s\n", h.Name, status.Code(err), strings.Join(header.Get(auth.MDWWWAuthenticate), "; "))
				}
			}
		})
	}
	t.Log(table.String())
}

// TestAuthStatusPassesErrorMapping checks that a refusal of the
// authenticator, were it to reach the error mapping, would come out
// unchanged.
func TestAuthStatusPassesErrorMapping(t *testing.T) {
	e := newAuthEnv(t, grpcserver.ChainConfig{})
	for _, authz := range []string{"", e.bearer(t, uuid.NewString())} {
		_, refusal := e.v1.ListUsers(withAuth(context.Background(), authz), &usersv1.ListUsersRequest{})
		_, mapped := grpcserver.ErrorInterceptor(context.Background(), nil, &grpc.UnaryServerInfo{}, func(context.Context, any) (any, error) {
			return nil, refusal
		})
		if diff := cmp.Diff(status.Convert(refusal).Proto(), status.Convert(mapped).Proto(), protocmp.Transform()); diff != "" {
			t.Errorf("ErrorInterceptor changed %v (-want +got):\n%s", refusal, diff)
		}
	}
}

// TestRateLimitFollowsAuth checks the slot of ChainConfig.RateLimit: it
// sees the authenticated caller, runs only for callers auth let in, and
// comes before validation.
func TestRateLimitFollowsAuth(t *testing.T) {
	var seen []string
	limited := uuid.NewString()
	limit := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		sub := auth.Subject(ctx)
		seen = append(seen, sub)
		if sub == limited {
			_ = grpc.SetHeader(ctx, metadata.Pairs("retry-after", "7"))
			return nil, status.Error(codes.ResourceExhausted, "rate limit exceeded")
		}
		return handler(ctx, req)
	}
	e := newAuthEnv(t, grpcserver.ChainConfig{RateLimit: limit})
	invalid := &usersv1.GetUserRequest{Id: "not-a-uuid"}

	if _, err := e.v1.GetUser(context.Background(), invalid); status.Code(err) != codes.Unauthenticated {
		t.Errorf("GetUser without a token err = %v, want Unauthenticated", err)
	}
	var header metadata.MD
	_, err := e.v1.GetUser(withAuth(context.Background(), e.bearer(t, limited, auth.ScopeRead)), invalid, grpc.Header(&header))
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("invalid GetUser of a limited caller err = %v, want ResourceExhausted", err)
	}
	if got := header.Get("retry-after"); !slices.Equal(got, []string{"7"}) {
		t.Errorf("retry-after = %q, want [7]", got)
	}
	if !slices.Equal(seen, []string{limited}) {
		t.Errorf("the rate limit saw subjects %q, want only [%s]", seen, limited)
	}
}
