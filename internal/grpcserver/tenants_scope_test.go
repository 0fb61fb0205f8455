package grpcserver_test

import (
	"context"
	"database/sql"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
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

// The tests of tenant scoping over gRPC: what users.v2 keeps apart between
// tenants, by name and by parent, for the platform (a caller that is not
// bound to a tenant) and for a caller bound to one. The callers are told
// apart as usersd tells them: by the auth interceptor, from their tokens
// (a tenants.admin token is the platform's; another is bound to its
// tenant claim's tenant, or the default tenant's).

// The tenants of these tests, besides the default one.
const (
	acme   = "acme"
	globex = "globex"
)

// scopeEnv is users.v1, users.v2 and the TenantService, served on
// 127.0.0.1:0 through the production interceptor chain with JWT
// authentication, over a fresh SQLite database whose imports run when the
// test says (runImports).
type scopeEnv struct {
	svc     *users.Service
	jobs    *userstest.Queue[*sql.Tx]
	key     *authtest.Key
	v1      usersv1.UserServiceClient
	v2      usersv2.UserServiceClient
	tenants usersv2.TenantServiceClient
	// platform sends a tenants.admin token: its calls are bound to no
	// tenant.
	platform context.Context
}

func newScopeEnv(t *testing.T) *scopeEnv {
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
	e := &scopeEnv{jobs: &userstest.Queue[*sql.Tx]{}, key: authtest.NewKey(t, jose.ES256)}
	e.svc = users.NewService(sqlite.NewStore(db, sqlite.WithJobs(e.jobs)), users.Config{ImportChunkSize: 2})
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	authtest.WriteJWKS(t, jwks, e.key)
	a, err := auth.New(ctx, auth.Config{Mode: auth.ModeJWT, Issuer: authtest.Issuer, Audience: authtest.Audience, JWKS: jwks})
	if err != nil {
		t.Fatalf("auth.New err = %v", err)
	}
	t.Cleanup(a.Close)
	ics := grpcserver.Interceptors(grpcserver.ChainConfig{Log: zerolog.Nop(), Auth: a.UnaryInterceptor()})
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(ics...), grpc.ChainStreamInterceptor(a.StreamInterceptor()))
	api := grpcserver.New(e.svc)
	usersv1.RegisterUserServiceServer(srv, api)
	usersv2.RegisterUserServiceServer(srv, api.V2())
	usersv2.RegisterTenantServiceServer(srv, grpcserver.NewTenantsV2(e.svc))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen err = %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		api.Drain()
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve err = %v", err)
		}
	})
	conn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("NewClient err = %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	e.v1, e.v2, e.tenants = usersv1.NewUserServiceClient(conn), usersv2.NewUserServiceClient(conn), usersv2.NewTenantServiceClient(conn)
	e.platform = e.token(t, auth.ScopeTenantsAdmin, nil)
	return e
}

// token returns a context that sends a token with the scope and the
// extra claims.
func (e *scopeEnv) token(t *testing.T, scope string, extra map[string]any) context.Context {
	t.Helper()
	tok := e.key.Token(t, authtest.Claims{Subject: uuid.NewString(), Scopes: []string{scope}, Extra: extra})
	return withAuth(context.Background(), "Bearer "+tok)
}

// bound returns a context that sends a users.admin token bound to the
// tenant: everything but the platform's scope, in that tenant only.
func (e *scopeEnv) bound(t *testing.T, tenant string) context.Context {
	t.Helper()
	return e.token(t, auth.ScopeAdmin, map[string]any{auth.DefaultTenantClaim: tenant})
}

// createTenant creates the tenant through the TenantService with at most
// maxUsers users that are not deleted (0: no limit).
func (e *scopeEnv) createTenant(t *testing.T, id string, maxUsers int32) *usersv2.Tenant {
	t.Helper()
	tn, err := e.tenants.CreateTenant(e.platform, &usersv2.CreateTenantRequest{
		TenantId: id,
		Tenant:   &usersv2.Tenant{DisplayName: "Tenant " + id, Settings: &usersv2.TenantSettings{MaxUsers: maxUsers}},
	})
	if err != nil {
		t.Fatalf("CreateTenant(%s) err = %v", id, err)
	}
	return tn
}

// createIn creates a user in the tenant as the platform, and checks that
// its name is the tenant's.
func (e *scopeEnv) createIn(t *testing.T, tenant, email, displayName string) *usersv2.User {
	t.Helper()
	u, err := e.v2.CreateUser(e.platform, &usersv2.CreateUserRequest{Parent: "tenants/" + tenant, User: userV2(email, displayName)})
	if err != nil {
		t.Fatalf("CreateUser(%s in %s) err = %v", email, tenant, err)
	}
	idIn(t, tenant, u.GetName())
	return u
}

// rename returns name with its tenant replaced: the same id, in another
// tenant.
func rename(t *testing.T, name, tenant string) string {
	t.Helper()
	_, rest, ok := strings.Cut(strings.TrimPrefix(name, "tenants/"), "/")
	if !ok || !strings.HasPrefix(name, "tenants/") {
		t.Fatalf("rename(%q): not a name of a tenant's resource", name)
	}
	return "tenants/" + tenant + "/" + rest
}

// anyUUID matches the ids in a message.
var anyUUID = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)

// sameNotFound checks that a call about another tenant's resource and the
// same call about nothing at all fail alike: NOT_FOUND, with the same
// message but for the id the caller sent, so that the answer does not tell
// whether the resource exists.
func sameNotFound(t *testing.T, call string, other, nowhere error) {
	t.Helper()
	checkErr(t, call+" (another tenant's)", other, codes.NotFound, "")
	checkErr(t, call+" (nowhere)", nowhere, codes.NotFound, "")
	msg := func(err error) string { return anyUUID.ReplaceAllString(status.Convert(err).Message(), "{id}") }
	if a, b := msg(other), msg(nowhere); a != b {
		t.Errorf("%s: another tenant's resource answers %q, an unknown one %q; want the same answer", call, a, b)
	}
}

// TestTenantScopeUsers reads and changes users of two tenants, with the
// same email address in both and in the default tenant, by their full
// names and by the names of the default tenant's (users/{id}); each call
// sees its tenant's users only.
func TestTenantScopeUsers(t *testing.T) {
	e := newScopeEnv(t)
	e.createTenant(t, acme, 0)
	e.createTenant(t, globex, 0)
	ctx := e.platform

	a := e.createIn(t, acme, "ada@example.com", "Ada of Acme")
	g := e.createIn(t, globex, "ada@example.com", "Ada of Globex")
	a2 := e.createIn(t, acme, "grace@example.com", "Grace of Acme")
	// Without a parent, the default tenant's; v1's too.
	d, err := e.v2.CreateUser(ctx, &usersv2.CreateUserRequest{User: userV2("ada@example.com", "Ada of nowhere in particular")})
	if err != nil {
		t.Fatalf("CreateUser(no parent) err = %v", err)
	}
	dID := idOf(t, d.GetName())
	d1, err := e.v1.CreateUser(ctx, &usersv1.CreateUserRequest{User: user("grace@example.com", "Grace of v1")})
	if err != nil {
		t.Fatalf("v1 CreateUser err = %v", err)
	}
	aID, gID := idIn(t, acme, a.GetName()), idIn(t, globex, g.GetName())

	// The same address is taken within one tenant only.
	_, err = e.v2.CreateUser(ctx, &usersv2.CreateUserRequest{Parent: "tenants/" + acme, User: userV2("ADA@example.com", "Ada again")})
	checkErr(t, "CreateUser(an address taken in the tenant)", err, codes.AlreadyExists, "")

	t.Run("get", func(t *testing.T) {
		for _, want := range []*usersv2.User{a, g, a2, d} {
			got, err := e.v2.GetUser(ctx, &usersv2.GetUserRequest{Name: want.GetName()})
			if err != nil || !cmp.Equal(want, got, protocmp.Transform()) {
				t.Errorf("GetUser(%s) = %v, %v; want %v", want.GetName(), got, err, want)
			}
		}
		// The name of the default tenant's user, the way v2 named it
		// before tenants, reads it, and the answer has the full name.
		got, err := e.v2.GetUser(ctx, &usersv2.GetUserRequest{Name: "users/" + dID})
		if err != nil || !cmp.Equal(d, got, protocmp.Transform()) {
			t.Errorf("GetUser(users/%s) = %v, %v; want %v", dID, got, err, d)
		}
		got, err = e.v2.GetUser(ctx, &usersv2.GetUserRequest{Name: "users/" + d1.GetId()})
		if err != nil || got.GetName() != userIn(users.DefaultTenant, d1.GetId()) || got.GetEmail() != "grace@example.com" {
			t.Errorf("GetUser(users/%s), created by v1 = %v, %v; want it as %s", d1.GetId(), got, err, userIn(users.DefaultTenant, d1.GetId()))
		}
		unknown := uuid.Must(uuid.NewV7()).String()
		for _, c := range []struct{ other, nowhere string }{
			{userIn(globex, aID), userIn(globex, unknown)},              // acme's user in globex
			{"users/" + aID, "users/" + unknown},                        // acme's user in the default tenant
			{userIn(acme, dID), userIn(acme, unknown)},                  // the default tenant's user in acme
			{userIn(users.DefaultTenant, gID), userIn(acme, unknown)},   // globex's user in the default tenant
			{userIn("initech", aID), userIn("initech", unknown)},        // a tenant that does not exist
			{userIn(acme, strings.ToUpper(gID)), userIn(acme, unknown)}, // globex's, its id in capitals
		} {
			_, other := e.v2.GetUser(ctx, &usersv2.GetUserRequest{Name: c.other})
			_, nowhere := e.v2.GetUser(ctx, &usersv2.GetUserRequest{Name: c.nowhere})
			checkErr(t, "GetUser("+c.other+")", other, codes.NotFound, "")
			checkErr(t, "GetUser("+c.nowhere+")", nowhere, codes.NotFound, "")
		}
		// v1 acts on the default tenant.
		_, err = e.v1.GetUser(ctx, &usersv1.GetUserRequest{Id: aID})
		checkErr(t, "v1 GetUser(acme's user)", err, codes.NotFound, "")
		if got, err := e.v1.GetUser(ctx, &usersv1.GetUserRequest{Id: dID}); err != nil || got.GetEmail() != "ada@example.com" {
			t.Errorf("v1 GetUser(the default tenant's user) = %v, %v", got, err)
		}
	})

	t.Run("list", func(t *testing.T) {
		for _, c := range []struct {
			parent string
			want   []string
		}{
			{"tenants/" + acme, []string{a.GetName(), a2.GetName()}},
			{"tenants/" + globex, []string{g.GetName()}},
			{"tenants/" + users.DefaultTenant, []string{d.GetName(), userIn(users.DefaultTenant, d1.GetId())}},
			{"", []string{d.GetName(), userIn(users.DefaultTenant, d1.GetId())}},
		} {
			res, err := e.v2.ListUsers(ctx, &usersv2.ListUsersRequest{Parent: c.parent, ShowDeleted: true})
			if err != nil {
				t.Fatalf("ListUsers(parent %q) err = %v", c.parent, err)
			}
			if diff := cmp.Diff(c.want, names(res.GetUsers())); diff != "" {
				t.Errorf("ListUsers(parent %q) (-want +got):\n%s", c.parent, diff)
			}
			// A filter that names an address of every tenant finds the
			// parent's user only.
			res, err = e.v2.ListUsers(ctx, &usersv2.ListUsersRequest{Parent: c.parent, Filter: `email = "ada@example.com"`})
			if err != nil || len(res.GetUsers()) != 1 || res.GetUsers()[0].GetName() != c.want[0] {
				t.Errorf("ListUsers(parent %q, ada's address) = %v, %v; want %s alone", c.parent, names(res.GetUsers()), err, c.want[0])
			}
		}
		v1, err := e.v1.ListUsers(ctx, &usersv1.ListUsersRequest{})
		if err != nil {
			t.Fatalf("v1 ListUsers err = %v", err)
		}
		var ids []string
		for _, u := range v1.GetUsers() {
			ids = append(ids, u.GetId())
		}
		if diff := cmp.Diff([]string{dID, d1.GetId()}, ids); diff != "" {
			t.Errorf("v1 ListUsers, the default tenant's (-want +got):\n%s", diff)
		}
		_, err = e.v2.ListUsers(ctx, &usersv2.ListUsersRequest{Parent: "tenants/-"})
		checkErr(t, "ListUsers(tenants/-)", err, codes.InvalidArgument, "parent")
		_, err = e.v2.ListUsers(ctx, &usersv2.ListUsersRequest{Parent: "acme"})
		checkErr(t, "ListUsers(parent acme)", err, codes.InvalidArgument, "parent")
		res, err := e.v2.ListUsers(ctx, &usersv2.ListUsersRequest{Parent: "tenants/initech"})
		if status.Code(err) != codes.NotFound && (err != nil || len(res.GetUsers()) != 0) {
			t.Errorf("ListUsers(a tenant that does not exist) = %v, %v; want NOT_FOUND or no users", res, err)
		}
	})

	t.Run("batch get", func(t *testing.T) {
		res, err := e.v2.BatchGetUsers(ctx, &usersv2.BatchGetUsersRequest{Parent: "tenants/" + acme, Names: []string{a2.GetName(), a.GetName()}})
		if err != nil || !cmp.Equal([]*usersv2.User{a2, a}, res.GetUsers(), protocmp.Transform()) {
			t.Errorf("BatchGetUsers(acme's) = %v, %v; want %v, %v", res, err, a2, a)
		}
		// Without a parent, the names say the tenant: one for all.
		res, err = e.v2.BatchGetUsers(ctx, &usersv2.BatchGetUsersRequest{Names: []string{g.GetName()}})
		if err != nil || !cmp.Equal([]*usersv2.User{g}, res.GetUsers(), protocmp.Transform()) {
			t.Errorf("BatchGetUsers(globex's, no parent) = %v, %v; want %v", res, err, g)
		}
		res, err = e.v2.BatchGetUsers(ctx, &usersv2.BatchGetUsersRequest{Names: []string{"users/" + dID, d.GetName()}})
		if err != nil || !cmp.Equal([]*usersv2.User{d, d}, res.GetUsers(), protocmp.Transform()) {
			t.Errorf("BatchGetUsers(the default tenant's, both forms) = %v, %v; want %v twice", res, err, d)
		}
		for _, c := range []struct {
			name   string
			req    *usersv2.BatchGetUsersRequest
			fields []string
		}{
			{"a name of globex under parent acme", &usersv2.BatchGetUsersRequest{Parent: "tenants/" + acme, Names: []string{a.GetName(), g.GetName()}}, []string{"names[1]"}},
			{"a name of acme under parent globex", &usersv2.BatchGetUsersRequest{Parent: "tenants/" + globex, Names: []string{a.GetName()}}, []string{"names[0]"}},
			{"the default tenant's under parent acme", &usersv2.BatchGetUsersRequest{Parent: "tenants/" + acme, Names: []string{a.GetName(), "users/" + dID, d.GetName()}}, []string{"names[1]", "names[2]"}},
			{"two tenants without a parent", &usersv2.BatchGetUsersRequest{Names: []string{a.GetName(), a2.GetName(), g.GetName()}}, []string{"names[2]"}},
			{"every tenant", &usersv2.BatchGetUsersRequest{Parent: "tenants/-", Names: []string{a.GetName()}}, []string{"parent"}},
		} {
			_, err := e.v2.BatchGetUsers(ctx, c.req)
			checkErr(t, "BatchGetUsers("+c.name+")", err, codes.InvalidArgument, "")
			if diff := cmp.Diff(c.fields, badRequestFields(err)); diff != "" {
				t.Errorf("BatchGetUsers(%s) BadRequest fields (-want +got):\n%s\nerr = %v", c.name, diff, err)
			}
		}
		// globex's id in acme's name is unknown in acme.
		_, err = e.v2.BatchGetUsers(ctx, &usersv2.BatchGetUsersRequest{Parent: "tenants/" + acme, Names: []string{a.GetName(), userIn(acme, gID)}})
		checkErr(t, "BatchGetUsers(globex's id in acme)", err, codes.NotFound, "")
		// v1 reads the default tenant.
		_, err = e.v1.BatchGetUsers(ctx, &usersv1.BatchGetUsersRequest{Ids: []string{dID, aID}})
		checkErr(t, "v1 BatchGetUsers(acme's id)", err, codes.NotFound, "")
	})

	t.Run("update, delete, undelete", func(t *testing.T) {
		// Another tenant's name changes nothing.
		_, err := e.v2.UpdateUser(ctx, &usersv2.UpdateUserRequest{User: &usersv2.User{Name: userIn(globex, aID), DisplayName: "Hijacked"}, UpdateMask: maskOf("display_name")})
		checkErr(t, "UpdateUser(acme's user in globex)", err, codes.NotFound, "")
		_, err = e.v2.UpdateUser(ctx, &usersv2.UpdateUserRequest{User: &usersv2.User{Name: "users/" + gID, DisplayName: "Hijacked"}, UpdateMask: maskOf("display_name")})
		checkErr(t, "UpdateUser(globex's user in the default tenant)", err, codes.NotFound, "")
		_, err = e.v2.DeleteUser(ctx, &usersv2.DeleteUserRequest{Name: userIn(globex, aID)})
		checkErr(t, "DeleteUser(acme's user in globex)", err, codes.NotFound, "")
		_, err = e.v1.DeleteUser(ctx, &usersv1.DeleteUserRequest{Id: aID})
		checkErr(t, "v1 DeleteUser(acme's user)", err, codes.NotFound, "")
		for _, u := range []*usersv2.User{a, g} {
			if got, err := e.v2.GetUser(ctx, &usersv2.GetUserRequest{Name: u.GetName()}); err != nil || !cmp.Equal(u, got, protocmp.Transform()) {
				t.Fatalf("GetUser(%s) after the calls about other tenants = %v, %v; want it unchanged, %v", u.GetName(), got, err, u)
			}
		}

		updated, err := e.v2.UpdateUser(ctx, &usersv2.UpdateUserRequest{User: &usersv2.User{Name: a.GetName(), DisplayName: "Ada, Countess of Acme", Etag: a.GetEtag()}, UpdateMask: maskOf("display_name")})
		if err != nil || updated.GetName() != a.GetName() || updated.GetDisplayName() != "Ada, Countess of Acme" {
			t.Fatalf("UpdateUser(%s) = %v, %v", a.GetName(), updated, err)
		}
		deleted, err := e.v2.DeleteUser(ctx, &usersv2.DeleteUserRequest{Name: a.GetName(), Etag: updated.GetEtag()})
		if err != nil || deleted.GetName() != a.GetName() || deleted.GetState() != usersv2.User_STATE_DELETED {
			t.Fatalf("DeleteUser(%s) = %v, %v", a.GetName(), deleted, err)
		}
		_, err = e.v2.UndeleteUser(ctx, &usersv2.UndeleteUserRequest{Name: userIn(globex, aID)})
		checkErr(t, "UndeleteUser(acme's user in globex)", err, codes.NotFound, "")
		_, err = e.v2.UndeleteUser(ctx, &usersv2.UndeleteUserRequest{Name: "users/" + aID})
		checkErr(t, "UndeleteUser(acme's user in the default tenant)", err, codes.NotFound, "")
		undeleted, err := e.v2.UndeleteUser(ctx, &usersv2.UndeleteUserRequest{Name: a.GetName()})
		if err != nil || undeleted.GetName() != a.GetName() || undeleted.GetState() != usersv2.User_STATE_ACTIVE {
			t.Fatalf("UndeleteUser(%s) = %v, %v", a.GetName(), undeleted, err)
		}
		// Globex's Ada and the default tenant's never moved.
		for _, u := range []*usersv2.User{g, d} {
			if got, err := e.v2.GetUser(ctx, &usersv2.GetUserRequest{Name: u.GetName()}); err != nil || !cmp.Equal(u, got, protocmp.Transform()) {
				t.Errorf("GetUser(%s) after acme's changes = %v, %v; want it unchanged, %v", u.GetName(), got, err, u)
			}
		}
		// The default tenant's user through the old form of its name.
		renamed, err := e.v2.UpdateUser(ctx, &usersv2.UpdateUserRequest{User: &usersv2.User{Name: "users/" + dID, DisplayName: "Ada of default"}, UpdateMask: maskOf("display_name")})
		if err != nil || renamed.GetName() != d.GetName() || renamed.GetDisplayName() != "Ada of default" {
			t.Errorf("UpdateUser(users/%s) = %v, %v; want %s renamed", dID, renamed, err, d.GetName())
		}
	})

	t.Run("bound to a tenant", func(t *testing.T) {
		inAcme := e.bound(t, acme)
		unknown := uuid.Must(uuid.NewV7()).String()
		if got, err := e.v2.GetUser(inAcme, &usersv2.GetUserRequest{Name: a2.GetName()}); err != nil || got.GetName() != a2.GetName() {
			t.Errorf("GetUser(%s) bound to acme = %v, %v", a2.GetName(), got, err)
		}
		_, other := e.v2.GetUser(inAcme, &usersv2.GetUserRequest{Name: g.GetName()})
		_, nowhere := e.v2.GetUser(inAcme, &usersv2.GetUserRequest{Name: userIn(globex, unknown)})
		sameNotFound(t, "GetUser bound to acme", other, nowhere)
		_, other = e.v2.GetUser(inAcme, &usersv2.GetUserRequest{Name: "users/" + dID})
		_, nowhere = e.v2.GetUser(inAcme, &usersv2.GetUserRequest{Name: "users/" + unknown})
		sameNotFound(t, "GetUser(users/…) bound to acme", other, nowhere)
		_, err := e.v2.ListUsers(inAcme, &usersv2.ListUsersRequest{Parent: "tenants/" + globex})
		checkErr(t, "ListUsers(globex) bound to acme", err, codes.NotFound, "")
		_, err = e.v2.ListUsers(inAcme, &usersv2.ListUsersRequest{})
		checkErr(t, "ListUsers(no parent, the default tenant) bound to acme", err, codes.NotFound, "")
		res, err := e.v2.ListUsers(inAcme, &usersv2.ListUsersRequest{Parent: "tenants/" + acme})
		if err != nil || len(res.GetUsers()) != 2 {
			t.Errorf("ListUsers(acme) bound to acme = %v, %v; want acme's 2 users", res, err)
		}
		_, err = e.v2.BatchGetUsers(inAcme, &usersv2.BatchGetUsersRequest{Names: []string{g.GetName()}})
		checkErr(t, "BatchGetUsers(globex's) bound to acme", err, codes.NotFound, "")
		_, err = e.v2.CreateUser(inAcme, &usersv2.CreateUserRequest{Parent: "tenants/" + globex, User: userV2("mallory@example.com", "Mallory")})
		checkErr(t, "CreateUser(in globex) bound to acme", err, codes.NotFound, "")
		_, err = e.v2.UpdateUser(inAcme, &usersv2.UpdateUserRequest{User: &usersv2.User{Name: g.GetName(), DisplayName: "Hijacked"}, UpdateMask: maskOf("display_name")})
		checkErr(t, "UpdateUser(globex's) bound to acme", err, codes.NotFound, "")
		_, err = e.v2.DeleteUser(inAcme, &usersv2.DeleteUserRequest{Name: g.GetName()})
		checkErr(t, "DeleteUser(globex's) bound to acme", err, codes.NotFound, "")
		_, err = e.v1.GetUser(inAcme, &usersv1.GetUserRequest{Id: dID})
		checkErr(t, "v1 GetUser bound to acme", err, codes.NotFound, "")
		if got, err := e.v2.GetUser(ctx, &usersv2.GetUserRequest{Name: g.GetName()}); err != nil || !cmp.Equal(g, got, protocmp.Transform()) {
			t.Errorf("GetUser(%s) after acme's caller tried = %v, %v; want it unchanged, %v", g.GetName(), got, err, g)
		}
		// A token without a tenant claim is the default tenant's.
		plain := e.token(t, auth.ScopeAdmin, nil)
		if got, err := e.v2.GetUser(plain, &usersv2.GetUserRequest{Name: "users/" + dID}); err != nil || got.GetName() != d.GetName() {
			t.Errorf("GetUser(users/%s) without a tenant claim = %v, %v", dID, got, err)
		}
		_, err = e.v2.GetUser(plain, &usersv2.GetUserRequest{Name: a2.GetName()})
		checkErr(t, "GetUser(acme's) without a tenant claim", err, codes.NotFound, "")
	})

	t.Run("request ids per tenant", func(t *testing.T) {
		// One request id in two tenants is two requests.
		var made []*usersv2.User
		for _, tenant := range []string{acme, globex} {
			u, err := e.v2.CreateUser(ctx, &usersv2.CreateUserRequest{Parent: "tenants/" + tenant, User: userV2("idem@example.com", "Idem"), RequestId: "same-key"})
			if err != nil {
				t.Fatalf("CreateUser(request id same-key, in %s) err = %v", tenant, err)
			}
			idIn(t, tenant, u.GetName())
			made = append(made, u)
		}
		if idIn(t, acme, made[0].GetName()) == idIn(t, globex, made[1].GetName()) {
			t.Errorf("CreateUser with one request id in two tenants made one user: %v", made)
		}
		again, err := e.v2.CreateUser(ctx, &usersv2.CreateUserRequest{Parent: "tenants/" + acme, User: userV2("idem@example.com", "Idem"), RequestId: "same-key"})
		if err != nil || !cmp.Equal(made[0], again, protocmp.Transform()) {
			t.Errorf("CreateUser replay in acme = %v, %v; want %v", again, err, made[0])
		}
	})
}

// TestTenantScopePageTokens checks that a page token reads the list it
// came from only: not another tenant's.
func TestTenantScopePageTokens(t *testing.T) {
	e := newScopeEnv(t)
	e.createTenant(t, acme, 0)
	e.createTenant(t, globex, 0)
	ctx := e.platform
	for i := range 3 {
		for _, tenant := range []string{acme, globex, users.DefaultTenant} {
			e.createIn(t, tenant, newEmail(), "User "+strings.Repeat("i", i+1))
		}
	}
	first, err := e.v2.ListUsers(ctx, &usersv2.ListUsersRequest{Parent: "tenants/" + acme, PageSize: 1})
	if err != nil || first.GetNextPageToken() == "" {
		t.Fatalf("ListUsers(acme, page size 1) = %v, %v; want a next page token", first, err)
	}
	next, err := e.v2.ListUsers(ctx, &usersv2.ListUsersRequest{Parent: "tenants/" + acme, PageSize: 1, PageToken: first.GetNextPageToken()})
	if err != nil || len(next.GetUsers()) != 1 || !strings.HasPrefix(next.GetUsers()[0].GetName(), "tenants/acme/users/") || next.GetUsers()[0].GetName() == first.GetUsers()[0].GetName() {
		t.Errorf("ListUsers(acme, page 2) = %v, %v; want acme's next user", next, err)
	}
	for _, parent := range []string{"tenants/" + globex, "tenants/" + users.DefaultTenant, ""} {
		_, err := e.v2.ListUsers(ctx, &usersv2.ListUsersRequest{Parent: parent, PageSize: 1, PageToken: first.GetNextPageToken()})
		checkErr(t, "ListUsers(parent "+parent+", acme's page token)", err, codes.InvalidArgument, "page_token")
		if got := errorReason(t, err); got != users.ReasonInvalidPageToken {
			t.Errorf("ListUsers(parent %q, acme's page token) reason = %q, want %q", parent, got, users.ReasonInvalidPageToken)
		}
	}
	// Nor v1's, which lists the default tenant.
	_, err = e.v1.ListUsers(ctx, &usersv1.ListUsersRequest{PageSize: 1, PageToken: first.GetNextPageToken()})
	checkErr(t, "v1 ListUsers(acme's page token)", err, codes.InvalidArgument, "page_token")
	// And the default tenant's token does not read acme.
	def, err := e.v1.ListUsers(ctx, &usersv1.ListUsersRequest{PageSize: 1})
	if err != nil || def.GetNextPageToken() == "" {
		t.Fatalf("v1 ListUsers(page size 1) = %v, %v; want a next page token", def, err)
	}
	_, err = e.v2.ListUsers(ctx, &usersv2.ListUsersRequest{Parent: "tenants/" + acme, PageSize: 1, PageToken: def.GetNextPageToken()})
	checkErr(t, "ListUsers(acme, the default tenant's page token)", err, codes.InvalidArgument, "page_token")
	if got := errorReason(t, err); got != users.ReasonInvalidPageToken {
		t.Errorf("ListUsers(acme, the default tenant's page token) reason = %q, want %q", got, users.ReasonInvalidPageToken)
	}
}

// TestTenantScopeImport imports into a tenant: the operation is the
// tenant's, and so are the users it makes and its request id.
func TestTenantScopeImport(t *testing.T) {
	e := newScopeEnv(t)
	e.createTenant(t, acme, 0)
	e.createTenant(t, globex, 0)
	ctx := e.platform

	rows := []*usersv2.User{userV2("ada@example.com", "Ada"), userV2("grace@example.com", "Grace"), userV2("linus@example.com", "Linus")}
	started, err := e.v2.ImportUsers(ctx, &usersv2.ImportUsersRequest{Parent: "tenants/" + acme, Users: rows, RequestId: "import-1"})
	if err != nil {
		t.Fatalf("ImportUsers(acme) err = %v", err)
	}
	id := operationIDIn(t, acme, started.GetName())
	runImports(t, e.jobs, e.svc)

	done, err := e.v2.GetOperation(ctx, &usersv2.GetOperationRequest{Name: started.GetName()})
	if err != nil || done.GetName() != started.GetName() || !done.GetDone() || done.GetMetadata().GetImported() != 3 {
		t.Fatalf("GetOperation(%s) = %v, %v; want it done, 3 imported", started.GetName(), done, err)
	}
	unknown := uuid.NewString()
	for _, c := range []struct{ other, nowhere string }{
		{"tenants/" + globex + "/operations/" + id, "tenants/" + globex + "/operations/" + unknown},
		{"operations/" + id, "operations/" + unknown},
		{"tenants/" + users.DefaultTenant + "/operations/" + id, "tenants/" + users.DefaultTenant + "/operations/" + unknown},
	} {
		_, other := e.v2.GetOperation(ctx, &usersv2.GetOperationRequest{Name: c.other})
		_, nowhere := e.v2.GetOperation(ctx, &usersv2.GetOperationRequest{Name: c.nowhere})
		checkErr(t, "GetOperation("+c.other+")", other, codes.NotFound, "")
		checkErr(t, "GetOperation("+c.nowhere+")", nowhere, codes.NotFound, "")
	}
	_, err = e.v1.GetOperation(ctx, &usersv1.GetOperationRequest{Id: id})
	checkErr(t, "v1 GetOperation(acme's)", err, codes.NotFound, "")
	inGlobex := e.bound(t, globex)
	_, other := e.v2.GetOperation(inGlobex, &usersv2.GetOperationRequest{Name: started.GetName()})
	_, nowhere := e.v2.GetOperation(inGlobex, &usersv2.GetOperationRequest{Name: "tenants/" + acme + "/operations/" + unknown})
	sameNotFound(t, "GetOperation(acme's) bound to globex", other, nowhere)
	if got, err := e.v2.GetOperation(e.bound(t, acme), &usersv2.GetOperationRequest{Name: started.GetName()}); err != nil || got.GetName() != started.GetName() {
		t.Errorf("GetOperation(%s) bound to acme = %v, %v", started.GetName(), got, err)
	}
	_, err = e.v2.ImportUsers(inGlobex, &usersv2.ImportUsersRequest{Parent: "tenants/" + acme, Users: rows, RequestId: "import-2"})
	checkErr(t, "ImportUsers(into acme) bound to globex", err, codes.NotFound, "")

	// The users are acme's.
	for parent, want := range map[string]int{"tenants/" + acme: 3, "tenants/" + globex: 0, "": 0} {
		res, err := e.v2.ListUsers(ctx, &usersv2.ListUsersRequest{Parent: parent})
		if err != nil || len(res.GetUsers()) != want {
			t.Errorf("ListUsers(parent %q) after the import into acme = %v, %v; want %d users", parent, names(res.GetUsers()), err, want)
		}
		for _, u := range res.GetUsers() {
			idIn(t, acme, u.GetName())
		}
	}

	// The request id is acme's: globex may use it for other rows, and
	// gets an operation of its own.
	other2, err := e.v2.ImportUsers(ctx, &usersv2.ImportUsersRequest{Parent: "tenants/" + globex, Users: rows[:1], RequestId: "import-1"})
	if err != nil {
		t.Fatalf("ImportUsers(globex, acme's request id) err = %v", err)
	}
	if operationIDIn(t, globex, other2.GetName()) == id {
		t.Errorf("ImportUsers(globex, acme's request id) = %v; want a new operation", other2)
	}
	replay, err := e.v2.ImportUsers(ctx, &usersv2.ImportUsersRequest{Parent: "tenants/" + acme, Users: rows, RequestId: "import-1"})
	if err != nil || replay.GetName() != started.GetName() {
		t.Errorf("ImportUsers(acme) replay = %v, %v; want %s", replay, err, started.GetName())
	}
}

// eventOf is what TestTenantScopeEvents checks of an event.
type eventOf struct{ Tenant, User, Type string }

func eventsOf(evs []*usersv2.UserEvent) []eventOf {
	out := make([]eventOf, len(evs))
	for i, ev := range evs {
		out[i] = eventOf{ev.GetTenant(), ev.GetUser(), ev.GetType()}
	}
	return out
}

// TestTenantScopeEvents reads the feed of user events per tenant, and of
// every tenant (tenants/-) as the platform; each event names its tenant.
func TestTenantScopeEvents(t *testing.T) {
	e := newScopeEnv(t)
	e.createTenant(t, acme, 0)
	e.createTenant(t, globex, 0)
	ctx := e.platform

	a := e.createIn(t, acme, "ada@example.com", "Ada")
	g := e.createIn(t, globex, "ada@example.com", "Ada")
	d, err := e.v1.CreateUser(ctx, &usersv1.CreateUserRequest{User: user("ada@example.com", "Ada")})
	if err != nil {
		t.Fatalf("v1 CreateUser err = %v", err)
	}
	if _, err := e.v2.DeleteUser(ctx, &usersv2.DeleteUserRequest{Name: a.GetName()}); err != nil {
		t.Fatalf("DeleteUser err = %v", err)
	}
	dName := userIn(users.DefaultTenant, d.GetId())
	all := []eventOf{
		{"tenants/acme", a.GetName(), "user.created"},
		{"tenants/globex", g.GetName(), "user.created"},
		{"tenants/default", dName, "user.created"},
		{"tenants/acme", a.GetName(), "user.deleted"},
	}
	list := func(ctx context.Context, parent string) ([]*usersv2.UserEvent, error) {
		res, err := e.v2.ListUserEvents(ctx, &usersv2.ListUserEventsRequest{Parent: parent})
		return res.GetEvents(), err
	}
	for _, c := range []struct {
		parent string
		want   []eventOf
	}{
		{"tenants/" + acme, []eventOf{all[0], all[3]}},
		{"tenants/" + globex, []eventOf{all[1]}},
		{"tenants/" + users.DefaultTenant, []eventOf{all[2]}},
		{"", []eventOf{all[2]}},
		{"tenants/-", all},
	} {
		evs, err := list(ctx, c.parent)
		if err != nil {
			t.Fatalf("ListUserEvents(parent %q) err = %v", c.parent, err)
		}
		if diff := cmp.Diff(c.want, eventsOf(evs)); diff != "" {
			t.Errorf("ListUserEvents(parent %q) (-want +got):\n%s", c.parent, diff)
		}
		for _, ev := range evs {
			if s := ev.GetSnapshot(); s.GetName() != ev.GetUser() {
				t.Errorf("ListUserEvents(parent %q) event %s carries user %q, want %q", c.parent, ev.GetName(), s.GetName(), ev.GetUser())
			}
		}
	}
	// v1 reads the default tenant's feed.
	v1, err := e.v1.ListUserEvents(ctx, &usersv1.ListUserEventsRequest{})
	if err != nil || len(v1.GetEvents()) != 1 || v1.GetEvents()[0].GetUserId() != d.GetId() {
		t.Errorf("v1 ListUserEvents = %v, %v; want the default tenant's one event", v1.GetEvents(), err)
	}

	// A caller bound to a tenant reads its tenant's feed only.
	inAcme := e.bound(t, acme)
	evs, err := list(inAcme, "tenants/"+acme)
	if err != nil || !cmp.Equal([]eventOf{all[0], all[3]}, eventsOf(evs)) {
		t.Errorf("ListUserEvents(acme) bound to acme = %v, %v; want acme's", eventsOf(evs), err)
	}
	for _, parent := range []string{"tenants/-", "tenants/" + globex, ""} {
		_, err := list(inAcme, parent)
		checkErr(t, "ListUserEvents(parent "+parent+") bound to acme", err, codes.NotFound, "")
	}

	t.Run("watch", func(t *testing.T) {
		wctx, cancel := context.WithCancel(e.bound(t, globex))
		defer cancel()
		stream, err := e.v2.WatchUserEvents(wctx, &usersv2.WatchUserEventsRequest{Parent: "tenants/" + globex})
		if err != nil {
			t.Fatalf("WatchUserEvents(globex) err = %v", err)
		}
		backlog := recvEvents(t, stream, 1)
		if got := eventsOf(backlog); !cmp.Equal([]eventOf{all[1]}, got) {
			t.Errorf("WatchUserEvents(globex) backlog = %v, want %v", got, all[1])
		}
		// Acme's change is not globex's; globex's next one is.
		e.createIn(t, acme, "grace@example.com", "Grace")
		h := e.createIn(t, globex, "grace@example.com", "Grace")
		live := recvEvents(t, stream, 1)
		if want := (eventOf{"tenants/globex", h.GetName(), "user.created"}); !cmp.Equal([]eventOf{want}, eventsOf(live)) {
			t.Errorf("WatchUserEvents(globex) live = %v, want %v", eventsOf(live), want)
		}
		cancel()
		for {
			if _, err := stream.Recv(); err != nil {
				break
			}
		}

		// Bound to globex, acme's feed and every tenant's are not there.
		for _, parent := range []string{"tenants/" + acme, "tenants/-"} {
			sctx, stop := context.WithCancel(e.bound(t, globex))
			stream, err := e.v2.WatchUserEvents(sctx, &usersv2.WatchUserEventsRequest{Parent: parent})
			if err == nil {
				_, err = stream.Recv()
			}
			checkErr(t, "WatchUserEvents(parent "+parent+") bound to globex", err, codes.NotFound, "")
			stop()
		}
	})
}

// TestTenantScopeWebhooks checks that a subscription is its tenant's, and
// that only the platform subscribes to every tenant's events.
func TestTenantScopeWebhooks(t *testing.T) {
	e := newScopeEnv(t)
	e.createTenant(t, acme, 0)
	e.createTenant(t, globex, 0)
	ctx := e.platform
	hook := func(allTenants bool) *usersv2.Webhook {
		return &usersv2.Webhook{Url: "https://example.com/hooks", Enabled: true, AllTenants: allTenants}
	}

	w, err := e.v2.CreateWebhook(ctx, &usersv2.CreateWebhookRequest{Parent: "tenants/" + acme, Webhook: hook(false)})
	if err != nil {
		t.Fatalf("CreateWebhook(acme) err = %v", err)
	}
	id, ok := strings.CutPrefix(w.GetName(), "tenants/acme/webhooks/")
	if _, err := uuid.Parse(id); !ok || err != nil || w.GetAllTenants() {
		t.Fatalf("CreateWebhook(acme) = %v; want tenants/acme/webhooks/{uuid}, not all_tenants", w)
	}
	def, err := e.v2.CreateWebhook(ctx, &usersv2.CreateWebhookRequest{Webhook: hook(false)})
	if err != nil || !strings.HasPrefix(def.GetName(), "tenants/default/webhooks/") {
		t.Fatalf("CreateWebhook(no parent) = %v, %v; want tenants/default/webhooks/{id}", def, err)
	}
	platform, err := e.v2.CreateWebhook(ctx, &usersv2.CreateWebhookRequest{Parent: "tenants/" + acme, Webhook: hook(true)})
	if err != nil || !platform.GetAllTenants() || !strings.HasPrefix(platform.GetName(), "tenants/acme/webhooks/") {
		t.Fatalf("CreateWebhook(acme, all_tenants) by the platform = %v, %v; want an all_tenants subscription", platform, err)
	}

	if got, err := e.v2.GetWebhook(ctx, &usersv2.GetWebhookRequest{Name: w.GetName()}); err != nil || got.GetName() != w.GetName() {
		t.Errorf("GetWebhook(%s) = %v, %v", w.GetName(), got, err)
	}
	unknown := uuid.Must(uuid.NewV7()).String()
	for _, c := range []struct{ other, nowhere string }{
		{rename(t, w.GetName(), globex), "tenants/globex/webhooks/" + unknown},
		{"webhooks/" + id, "webhooks/" + unknown},
	} {
		_, other := e.v2.GetWebhook(ctx, &usersv2.GetWebhookRequest{Name: c.other})
		_, nowhere := e.v2.GetWebhook(ctx, &usersv2.GetWebhookRequest{Name: c.nowhere})
		checkErr(t, "GetWebhook("+c.other+")", other, codes.NotFound, "")
		checkErr(t, "GetWebhook("+c.nowhere+")", nowhere, codes.NotFound, "")
		_, err := e.v2.UpdateWebhook(ctx, &usersv2.UpdateWebhookRequest{Webhook: &usersv2.Webhook{Name: c.other, Enabled: false}, UpdateMask: maskOf("enabled")})
		checkErr(t, "UpdateWebhook("+c.other+")", err, codes.NotFound, "")
		err = callV2(ctx, e.v2, &usersv2.DeleteWebhookRequest{Name: c.other})
		checkErr(t, "DeleteWebhook("+c.other+")", err, codes.NotFound, "")
		err = callV2(ctx, e.v2, &usersv2.ListWebhookDeliveriesRequest{Parent: c.other})
		checkErr(t, "ListWebhookDeliveries("+c.other+")", err, codes.NotFound, "")
	}
	_, err = e.v1.GetWebhook(ctx, &usersv1.GetWebhookRequest{Id: id})
	checkErr(t, "v1 GetWebhook(acme's)", err, codes.NotFound, "")

	listed := func(ctx context.Context, parent string) ([]string, error) {
		res, err := e.v2.ListWebhooks(ctx, &usersv2.ListWebhooksRequest{Parent: parent})
		var out []string
		for _, w := range res.GetWebhooks() {
			out = append(out, w.GetName())
		}
		return out, err
	}
	for _, c := range []struct {
		parent string
		want   []string
	}{
		{"tenants/" + acme, []string{w.GetName(), platform.GetName()}},
		{"tenants/" + globex, nil},
		{"", []string{def.GetName()}},
		{"tenants/-", []string{w.GetName(), def.GetName(), platform.GetName()}},
	} {
		got, err := listed(ctx, c.parent)
		if err != nil {
			t.Fatalf("ListWebhooks(parent %q) err = %v", c.parent, err)
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("ListWebhooks(parent %q) (-want +got):\n%s", c.parent, diff)
		}
	}

	t.Run("bound to a tenant", func(t *testing.T) {
		inAcme := e.bound(t, acme)
		_, err := e.v2.CreateWebhook(inAcme, &usersv2.CreateWebhookRequest{Parent: "tenants/" + acme, Webhook: hook(true)})
		checkErr(t, "CreateWebhook(all_tenants) bound to acme", err, codes.InvalidArgument, "webhook.all_tenants")
		_, err = e.v2.CreateWebhook(inAcme, &usersv2.CreateWebhookRequest{Parent: "tenants/" + globex, Webhook: hook(false)})
		checkErr(t, "CreateWebhook(in globex) bound to acme", err, codes.NotFound, "")
		mine, err := e.v2.CreateWebhook(inAcme, &usersv2.CreateWebhookRequest{Parent: "tenants/" + acme, Webhook: hook(false)})
		if err != nil || !strings.HasPrefix(mine.GetName(), "tenants/acme/webhooks/") || mine.GetAllTenants() {
			t.Fatalf("CreateWebhook(acme) bound to acme = %v, %v", mine, err)
		}
		// The platform's subscription, though under acme, is not acme's
		// caller's to see.
		got, err := listed(inAcme, "tenants/"+acme)
		if err != nil || !cmp.Equal([]string{w.GetName(), mine.GetName()}, got) {
			t.Errorf("ListWebhooks(acme) bound to acme = %v, %v; want %s, %s", got, err, w.GetName(), mine.GetName())
		}
		_, other := e.v2.GetWebhook(inAcme, &usersv2.GetWebhookRequest{Name: platform.GetName()})
		_, nowhere := e.v2.GetWebhook(inAcme, &usersv2.GetWebhookRequest{Name: "tenants/acme/webhooks/" + unknown})
		sameNotFound(t, "GetWebhook(the platform's) bound to acme", other, nowhere)
		err = callV2(inAcme, e.v2, &usersv2.DeleteWebhookRequest{Name: platform.GetName()})
		checkErr(t, "DeleteWebhook(the platform's) bound to acme", err, codes.NotFound, "")
		for _, parent := range []string{"tenants/-", "tenants/" + globex} {
			_, err := listed(inAcme, parent)
			checkErr(t, "ListWebhooks(parent "+parent+") bound to acme", err, codes.NotFound, "")
		}
		_, other = e.v2.GetWebhook(e.bound(t, globex), &usersv2.GetWebhookRequest{Name: w.GetName()})
		_, nowhere = e.v2.GetWebhook(e.bound(t, globex), &usersv2.GetWebhookRequest{Name: "tenants/acme/webhooks/" + unknown})
		sameNotFound(t, "GetWebhook(acme's) bound to globex", other, nowhere)
		if got, err := e.v2.GetWebhook(ctx, &usersv2.GetWebhookRequest{Name: platform.GetName()}); err != nil || !got.GetAllTenants() {
			t.Errorf("GetWebhook(%s) after acme's caller tried = %v, %v; want it there", platform.GetName(), got, err)
		}
	})
}

// quotaViolations returns the violations of the QuotaFailure details of
// err.
func quotaViolations(err error) []*errdetails.QuotaFailure_Violation {
	var out []*errdetails.QuotaFailure_Violation
	for _, d := range status.Convert(err).Details() {
		if qf, ok := d.(*errdetails.QuotaFailure); ok {
			out = append(out, qf.GetViolations()...)
		}
	}
	return out
}

// checkQuota checks that err is RESOURCE_EXHAUSTED with one QuotaFailure
// violation, whose subject is the tenant.
func checkQuota(t *testing.T, call string, err error, tenant string) {
	t.Helper()
	checkErr(t, call, err, codes.ResourceExhausted, "")
	if vs := quotaViolations(err); len(vs) != 1 || vs[0].GetSubject() != "tenants/"+tenant || vs[0].GetDescription() == "" {
		t.Errorf("%s: QuotaFailure violations = %v; want one about tenants/%s", call, vs, tenant)
	}
}

// TestTenantScopeMaxUsers checks the limit of a tenant's users that are
// not deleted: a create or an undelete past it is RESOURCE_EXHAUSTED with
// a QuotaFailure about the tenant, and an imported row past it fails.
func TestTenantScopeMaxUsers(t *testing.T) {
	e := newScopeEnv(t)
	e.createTenant(t, acme, 2)
	ctx := e.platform
	first := e.createIn(t, acme, "one@example.com", "One")
	e.createIn(t, acme, "two@example.com", "Two")

	for name, ctx := range map[string]context.Context{"the platform": ctx, "bound to acme": e.bound(t, acme)} {
		_, err := e.v2.CreateUser(ctx, &usersv2.CreateUserRequest{Parent: "tenants/" + acme, User: userV2("three@example.com", "Three")})
		checkQuota(t, "CreateUser past max_users, "+name, err, acme)
	}
	res, err := e.v2.ListUsers(ctx, &usersv2.ListUsersRequest{Parent: "tenants/" + acme, ShowDeleted: true})
	if err != nil || len(res.GetUsers()) != 2 {
		t.Errorf("ListUsers(acme) after the refused creates = %v, %v; want 2 users", names(res.GetUsers()), err)
	}
	// Other tenants have their own limits (none here).
	e.createIn(t, users.DefaultTenant, "three@example.com", "Three")
	// The limit counts users that are not deleted.
	if _, err := e.v2.DeleteUser(ctx, &usersv2.DeleteUserRequest{Name: first.GetName()}); err != nil {
		t.Fatalf("DeleteUser err = %v", err)
	}
	e.createIn(t, acme, "three@example.com", "Three")
	_, err = e.v2.UndeleteUser(ctx, &usersv2.UndeleteUserRequest{Name: first.GetName()})
	checkQuota(t, "UndeleteUser past max_users", err, acme)

	op, err := e.v2.ImportUsers(ctx, &usersv2.ImportUsersRequest{Parent: "tenants/" + acme, RequestId: "past-the-limit", Users: []*usersv2.User{userV2("four@example.com", "Four")}})
	if err != nil {
		t.Fatalf("ImportUsers(acme, full) err = %v", err)
	}
	runImports(t, e.jobs, e.svc)
	done, err := e.v2.GetOperation(ctx, &usersv2.GetOperationRequest{Name: op.GetName()})
	if err != nil {
		t.Fatalf("GetOperation err = %v", err)
	}
	want := &usersv2.Operation{
		Name: op.GetName(), Done: true,
		Metadata: &usersv2.ImportUsersMetadata{Total: 1, Failed: 1},
		Response: &usersv2.ImportUsersResponse{Failures: []*usersv2.ImportFailure{{Index: 0, Reason: users.ReasonQuota}}},
	}
	if diff := cmp.Diff(want, done, ignoreOperationTimes); diff != "" {
		t.Errorf("GetOperation of an import past max_users (-want +got):\n%s", diff)
	}
}

// TestTenantScopeDeletedTenant checks that the users of a deleted tenant
// are not found, by any call, until the tenant is undeleted.
func TestTenantScopeDeletedTenant(t *testing.T) {
	e := newScopeEnv(t)
	e.createTenant(t, acme, 0)
	ctx := e.platform
	u := e.createIn(t, acme, "ada@example.com", "Ada")
	other := e.createIn(t, users.DefaultTenant, "ada@example.com", "Ada")
	if _, err := e.tenants.DeleteTenant(ctx, &usersv2.DeleteTenantRequest{Name: "tenants/" + acme}); err != nil {
		t.Fatalf("DeleteTenant err = %v", err)
	}

	parent := "tenants/" + acme
	for _, req := range []proto.Message{
		&usersv2.GetUserRequest{Name: u.GetName()},
		&usersv2.ListUsersRequest{Parent: parent},
		&usersv2.BatchGetUsersRequest{Parent: parent, Names: []string{u.GetName()}},
		&usersv2.UpdateUserRequest{User: &usersv2.User{Name: u.GetName(), DisplayName: "Changed"}, UpdateMask: maskOf("display_name")},
		&usersv2.DeleteUserRequest{Name: u.GetName()},
		&usersv2.UndeleteUserRequest{Name: u.GetName()},
		&usersv2.CreateUserRequest{Parent: parent, User: userV2("grace@example.com", "Grace")},
	} {
		err := callV2(ctx, e.v2, req)
		if req, ok := req.(*usersv2.ListUsersRequest); ok && err == nil {
			res, _ := e.v2.ListUsers(ctx, req)
			if len(res.GetUsers()) != 0 {
				t.Errorf("ListUsers(a deleted tenant) = %v; want NOT_FOUND or no users", names(res.GetUsers()))
			}
			continue
		}
		checkErr(t, string(proto.MessageName(req).Name())+" in a deleted tenant", err, codes.NotFound, "")
	}
	if got, err := e.v2.GetUser(ctx, &usersv2.GetUserRequest{Name: other.GetName()}); err != nil || !cmp.Equal(other, got, protocmp.Transform()) {
		t.Errorf("GetUser(the default tenant's) = %v, %v; want %v", got, err, other)
	}

	if _, err := e.tenants.UndeleteTenant(ctx, &usersv2.UndeleteTenantRequest{Name: "tenants/" + acme}); err != nil {
		t.Fatalf("UndeleteTenant err = %v", err)
	}
	got, err := e.v2.GetUser(ctx, &usersv2.GetUserRequest{Name: u.GetName()})
	if err != nil || !cmp.Equal(u, got, protocmp.Transform()) {
		t.Errorf("GetUser(%s) after UndeleteTenant = %v, %v; want %v", u.GetName(), got, err, u)
	}
	res, err := e.v2.ListUsers(ctx, &usersv2.ListUsersRequest{Parent: parent})
	if err != nil || !slices.Equal([]string{u.GetName()}, names(res.GetUsers())) {
		t.Errorf("ListUsers(acme) after UndeleteTenant = %v, %v; want %s", names(res.GetUsers()), err, u.GetName())
	}
}
