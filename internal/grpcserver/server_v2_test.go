package grpcserver_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/grpcserver"
	"github.com/usersd/usersd/internal/inproc"
	"github.com/usersd/usersd/internal/sqlite"
	"github.com/usersd/usersd/internal/users"
)

// newService returns a users.Service on a fresh SQLite database that is
// closed when the test ends.
func newService(t *testing.T) *users.Service {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "users.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("sqlite.Open(%s) err = %v", path, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("db.Close err = %v", err)
		}
	})
	if err := sqlite.Migrate(ctx, db, nil); err != nil {
		t.Fatalf("sqlite.Migrate err = %v", err)
	}
	return users.NewService(sqlite.NewStore(db), users.Config{})
}

// serveUsers starts a gRPC server with the production interceptor chain on
// 127.0.0.1:0, lets register add services backed by one users.Service over
// a fresh SQLite database, and returns a connection to it. Everything is
// closed when the test ends.
func serveUsers(t *testing.T, register func(grpc.ServiceRegistrar, *users.Service)) *grpc.ClientConn {
	t.Helper()
	svc := newService(t)
	interceptors := grpcserver.Interceptors(grpcserver.ChainConfig{Log: zerolog.Nop()})
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(interceptors...))
	register(srv, svc)
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
	conn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("NewClient err = %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// newClients serves users.v1 and users.v2 on one users.Service, as usersd
// does, and returns a client of each version, sharing one connection.
func newClients(t *testing.T) (usersv1.UserServiceClient, usersv2.UserServiceClient) {
	t.Helper()
	conn := serveUsers(t, func(s grpc.ServiceRegistrar, svc *users.Service) {
		usersv1.RegisterUserServiceServer(s, grpcserver.New(svc))
		usersv2.RegisterUserServiceServer(s, grpcserver.NewV2(svc))
	})
	return usersv1.NewUserServiceClient(conn), usersv2.NewUserServiceClient(conn)
}

func userV2(email, displayName string) *usersv2.User {
	return &usersv2.User{Email: email, DisplayName: displayName}
}

func mustCreateV2(t *testing.T, c usersv2.UserServiceClient, u *usersv2.User) *usersv2.User {
	t.Helper()
	got, err := c.CreateUser(context.Background(), &usersv2.CreateUserRequest{User: u})
	if err != nil {
		t.Fatalf("v2 CreateUser(%s) err = %v", u.GetEmail(), err)
	}
	return got
}

func mustDeleteV2(t *testing.T, c usersv2.UserServiceClient, name string) *usersv2.User {
	t.Helper()
	got, err := c.DeleteUser(context.Background(), &usersv2.DeleteUserRequest{Name: name})
	if err != nil {
		t.Fatalf("v2 DeleteUser(%s) err = %v", name, err)
	}
	return got
}

// callV2 sends req to the users.v2 RPC that takes it.
func callV2(ctx context.Context, c usersv2.UserServiceClient, req proto.Message) error {
	var err error
	switch req := req.(type) {
	case *usersv2.CreateUserRequest:
		_, err = c.CreateUser(ctx, req)
	case *usersv2.GetUserRequest:
		_, err = c.GetUser(ctx, req)
	case *usersv2.ListUsersRequest:
		_, err = c.ListUsers(ctx, req)
	case *usersv2.UpdateUserRequest:
		_, err = c.UpdateUser(ctx, req)
	case *usersv2.DeleteUserRequest:
		_, err = c.DeleteUser(ctx, req)
	case *usersv2.UndeleteUserRequest:
		_, err = c.UndeleteUser(ctx, req)
	case *usersv2.BatchGetUsersRequest:
		_, err = c.BatchGetUsers(ctx, req)
	case *usersv2.CreateWebhookRequest:
		_, err = c.CreateWebhook(ctx, req)
	case *usersv2.GetWebhookRequest:
		_, err = c.GetWebhook(ctx, req)
	case *usersv2.UpdateWebhookRequest:
		_, err = c.UpdateWebhook(ctx, req)
	case *usersv2.DeleteWebhookRequest:
		_, err = c.DeleteWebhook(ctx, req)
	case *usersv2.ListWebhookDeliveriesRequest:
		_, err = c.ListWebhookDeliveries(ctx, req)
	default:
		panic(fmt.Sprintf("callV2: no users.v2 RPC takes %T", req))
	}
	return err
}

func names(us []*usersv2.User) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.GetName()
	}
	return out
}

// asV2 returns what users.v2 must answer where users.v1 answered u: v1
// acts on the default tenant, and v2 answers with full names.
func asV2(u *usersv1.User) *usersv2.User {
	return &usersv2.User{
		Name: userIn(users.DefaultTenant, u.GetId()), Email: u.GetEmail(), DisplayName: u.GetDisplayName(),
		State: usersv2.User_State(u.GetState()), Labels: u.GetLabels(),
		CreateTime: u.GetCreateTime(), UpdateTime: u.GetUpdateTime(), DeleteTime: u.GetDeleteTime(), Etag: u.GetEtag(),
	}
}

// userIn is the full v2 name of the tenant's user with the id, as v2
// answers it.
func userIn(tenant, id string) string { return "tenants/" + tenant + "/users/" + id }

// idOf returns the id in a v2 name as v2 answers it, failing the test
// unless the name is the default tenant's full user name,
// "tenants/default/users/" and a lower-case UUID.
func idOf(t *testing.T, name string) string {
	t.Helper()
	return idIn(t, users.DefaultTenant, name)
}

// idIn returns the id in a v2 name as v2 answers it, failing the test
// unless the name is "tenants/{tenant}/users/" and a lower-case UUID.
func idIn(t *testing.T, tenant, name string) string {
	t.Helper()
	id, ok := strings.CutPrefix(name, "tenants/"+tenant+"/users/")
	if _, err := uuid.Parse(id); !ok || err != nil || len(id) != 36 || id != strings.ToLower(id) {
		t.Fatalf("name %q is not tenants/%s/users/{uuid}", name, tenant)
	}
	return id
}

func maskOf(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }

// TestV2UserLifecycle takes users through every users.v2 RPC that
// succeeds, checking the shape of each answer.
func TestV2UserLifecycle(t *testing.T) {
	_, c := newClients(t)
	ctx := context.Background()

	in := &usersv2.User{
		Name:  "users/0190a3c4-0000-7000-8000-000000000000", // ignored
		Email: "Ada@Example.com", DisplayName: "Ada Lovelace",
		State:  usersv2.User_STATE_SUSPENDED,
		Labels: map[string]string{"team": "core"},
	}
	ada, err := c.CreateUser(ctx, &usersv2.CreateUserRequest{User: in, RequestId: "ada"})
	if err != nil {
		t.Fatalf("CreateUser err = %v", err)
	}
	want := &usersv2.User{Email: "Ada@Example.com", DisplayName: "Ada Lovelace", State: usersv2.User_STATE_SUSPENDED, Labels: map[string]string{"team": "core"}}
	if diff := cmp.Diff(want, ada, protocmp.Transform(), protocmp.IgnoreFields(&usersv2.User{}, "name", "create_time", "update_time", "etag")); diff != "" {
		t.Errorf("CreateUser (-want +got):\n%s", diff)
	}
	if idOf(t, ada.GetName()) == strings.TrimPrefix(in.GetName(), "users/") {
		t.Errorf("CreateUser name = %q, the one asked for; want a new one", ada.GetName())
	}
	if ada.GetCreateTime() == nil || !ada.GetCreateTime().AsTime().Equal(ada.GetUpdateTime().AsTime()) || ada.GetDeleteTime() != nil || ada.GetEtag() == "" {
		t.Errorf("CreateUser = %v; want create_time = update_time, no delete_time, an etag", ada)
	}
	for _, md := range [][]string{nil, {grpcserver.MDIdempotencyKey, "ada"}} {
		req := &usersv2.CreateUserRequest{User: in}
		if md == nil {
			req.RequestId = "ada"
		}
		again, err := c.CreateUser(withMD(ctx, md...), req)
		if err != nil || !cmp.Equal(ada, again, protocmp.Transform()) {
			t.Errorf("CreateUser replay (metadata %q) = %v, %v; want %v", md, again, err, ada)
		}
	}
	grace := mustCreateV2(t, c, userV2("grace@example.com", "Grace"))
	if grace.GetState() != usersv2.User_STATE_ACTIVE {
		t.Errorf("CreateUser state = %v, want STATE_ACTIVE by default", grace.GetState())
	}

	for _, name := range []string{ada.GetName(), "users/" + strings.ToUpper(idOf(t, ada.GetName()))} {
		got, err := c.GetUser(ctx, &usersv2.GetUserRequest{Name: name})
		if err != nil || !cmp.Equal(ada, got, protocmp.Transform()) {
			t.Errorf("GetUser(%q) = %v, %v; want %v", name, got, err, ada)
		}
	}

	// The gateway puts every field of a PATCH body in the mask, name
	// among them: name identifies the user and is not changed, as v1's id.
	renamed, err := c.UpdateUser(ctx, &usersv2.UpdateUserRequest{
		User:       &usersv2.User{Name: ada.GetName(), DisplayName: "Ada, Countess of Lovelace", Email: "ignored@example.com", Etag: ada.GetEtag()},
		UpdateMask: maskOf("name", "display_name"),
	})
	if err != nil {
		t.Fatalf("UpdateUser err = %v", err)
	}
	want = proto.CloneOf(ada)
	want.DisplayName = "Ada, Countess of Lovelace"
	if diff := cmp.Diff(want, renamed, protocmp.Transform(), protocmp.IgnoreFields(&usersv2.User{}, "update_time", "etag")); diff != "" {
		t.Errorf("UpdateUser (-want +got):\n%s", diff)
	}
	if renamed.GetEtag() == ada.GetEtag() {
		t.Errorf("UpdateUser etag = %q, unchanged", renamed.GetEtag())
	}
	// An empty mask changes what is set; the etag comes as HTTP sends it.
	active, err := c.UpdateUser(withMD(ctx, grpcserver.MDIfMatch, `W/"`+renamed.GetEtag()+`"`), &usersv2.UpdateUserRequest{
		User: &usersv2.User{Name: ada.GetName(), State: usersv2.User_STATE_ACTIVE, Labels: map[string]string{"era": "victorian"}},
	})
	if err != nil {
		t.Fatalf("UpdateUser with If-Match err = %v", err)
	}
	if active.GetState() != usersv2.User_STATE_ACTIVE || !cmp.Equal(active.GetLabels(), map[string]string{"era": "victorian"}) || active.GetDisplayName() != renamed.GetDisplayName() {
		t.Errorf("UpdateUser with an empty mask = %v; want state and labels changed, the rest kept", active)
	}

	deleted, err := c.DeleteUser(ctx, &usersv2.DeleteUserRequest{Name: grace.GetName(), Etag: grace.GetEtag()})
	if err != nil {
		t.Fatalf("DeleteUser err = %v", err)
	}
	if deleted.GetName() != grace.GetName() || deleted.GetState() != usersv2.User_STATE_DELETED || deleted.GetDeleteTime() == nil || deleted.GetEtag() == grace.GetEtag() {
		t.Errorf("DeleteUser = %v; want %s STATE_DELETED with a delete_time and a new etag", deleted, grace.GetName())
	}

	var listed []string
	req := &usersv2.ListUsersRequest{PageSize: 1, ShowDeleted: true}
	for pages := 0; ; pages++ {
		if pages > 2 {
			t.Fatalf("ListUsers: more than 2 pages of 1 for 2 users")
		}
		res, err := c.ListUsers(ctx, req)
		if err != nil {
			t.Fatalf("ListUsers(%v) err = %v", req, err)
		}
		listed = append(listed, names(res.GetUsers())...)
		if req.PageToken = res.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	if diff := cmp.Diff([]string{ada.GetName(), grace.GetName()}, listed); diff != "" {
		t.Errorf("ListUsers pages of 1 with show_deleted (-want +got):\n%s", diff)
	}
	res, err := c.ListUsers(ctx, &usersv2.ListUsersRequest{})
	if err != nil || !cmp.Equal([]*usersv2.User{active}, res.GetUsers(), protocmp.Transform()) {
		t.Errorf("ListUsers = %v, %v; want only %v", res, err, active)
	}

	batch, err := c.BatchGetUsers(ctx, &usersv2.BatchGetUsersRequest{Names: []string{grace.GetName(), ada.GetName(), grace.GetName()}})
	if err != nil || !cmp.Equal([]*usersv2.User{deleted, active, deleted}, batch.GetUsers(), protocmp.Transform()) {
		t.Errorf("BatchGetUsers = %v, %v; want deleted grace, ada, deleted grace", batch, err)
	}
	if batch, err := c.BatchGetUsers(ctx, &usersv2.BatchGetUsersRequest{}); err != nil || len(batch.GetUsers()) != 0 {
		t.Errorf("BatchGetUsers() = %v, %v; want no users", batch, err)
	}

	undeleted, err := c.UndeleteUser(withMD(ctx, grpcserver.MDIfMatch, deleted.GetEtag()), &usersv2.UndeleteUserRequest{Name: grace.GetName()})
	if err != nil {
		t.Fatalf("UndeleteUser err = %v", err)
	}
	if undeleted.GetState() != usersv2.User_STATE_ACTIVE || undeleted.GetDeleteTime() != nil || undeleted.GetEtag() == deleted.GetEtag() {
		t.Errorf("UndeleteUser = %v; want STATE_ACTIVE, no delete_time, a new etag", undeleted)
	}
}

// TestV2Errors checks the code of each users.v2 error and the field its
// BadRequest names, in v2's terms.
func TestV2Errors(t *testing.T) {
	_, c := newClients(t)
	ctx := context.Background()

	u := mustCreateV2(t, c, userV2("u@example.com", "U"))
	id := idOf(t, u.GetName())
	mustCreateV2(t, c, userV2("taken@example.com", "Taken"))
	stale := mustCreateV2(t, c, userV2("stale@example.com", "Stale"))
	if _, err := c.UpdateUser(ctx, &usersv2.UpdateUserRequest{User: &usersv2.User{Name: stale.GetName(), DisplayName: "Changed"}}); err != nil {
		t.Fatalf("UpdateUser err = %v", err)
	}
	gone := mustDeleteV2(t, c, mustCreateV2(t, c, userV2("gone@example.com", "Gone")).GetName())
	reused := mustDeleteV2(t, c, mustCreateV2(t, c, userV2("reused@example.com", "Old")).GetName())
	mustCreateV2(t, c, userV2("Reused@Example.com", "New"))
	if _, err := c.CreateUser(ctx, &usersv2.CreateUserRequest{User: userV2("once@example.com", "Once"), RequestId: "once"}); err != nil {
		t.Fatalf("CreateUser err = %v", err)
	}
	unknown := "users/" + uuid.Must(uuid.NewV7()).String()
	tooMany := slices.Repeat([]string{u.GetName()}, users.MaxBatchGet+1)
	before, err := c.ListUsers(ctx, &usersv2.ListUsersRequest{ShowDeleted: true})
	if err != nil {
		t.Fatalf("ListUsers err = %v", err)
	}

	tests := []struct {
		name   string
		md     []string
		req    proto.Message
		code   codes.Code
		field  string
		reason string
	}{
		{name: "create without user", req: &usersv2.CreateUserRequest{}, code: codes.InvalidArgument, field: "user"},
		{name: "create with a blank display_name", req: &usersv2.CreateUserRequest{User: userV2("x@example.com", " ")}, code: codes.InvalidArgument, field: "user.display_name"},
		{name: "create with a bad email", req: &usersv2.CreateUserRequest{User: userV2("nope", "X")}, code: codes.InvalidArgument, field: "user.email"},
		{name: "create with a bad label key", req: &usersv2.CreateUserRequest{User: &usersv2.User{Email: "x@example.com", DisplayName: "X", Labels: map[string]string{"Bad Key": "v"}}}, code: codes.InvalidArgument, field: "user.labels"},
		{name: "create deleted", req: &usersv2.CreateUserRequest{User: &usersv2.User{Email: "x@example.com", DisplayName: "X", State: usersv2.User_STATE_DELETED}}, code: codes.InvalidArgument, field: "user.state"},
		{name: "create with a malformed name", req: &usersv2.CreateUserRequest{User: &usersv2.User{Name: "people/x", Email: "x@example.com", DisplayName: "X"}}, code: codes.InvalidArgument, field: "user.name"},
		{name: "create with a bad request_id", req: &usersv2.CreateUserRequest{User: userV2("x@example.com", "X"), RequestId: "a b"}, code: codes.InvalidArgument, field: "request_id"},
		{name: "create with a bad idempotency-key", md: []string{grpcserver.MDIdempotencyKey, strings.Repeat("k", 129)}, req: &usersv2.CreateUserRequest{User: userV2("x@example.com", "X")}, code: codes.InvalidArgument, field: "request_id"},
		{name: "create with request_id and idempotency-key differing", md: []string{grpcserver.MDIdempotencyKey, "other"}, req: &usersv2.CreateUserRequest{User: userV2("x@example.com", "X"), RequestId: "once"}, code: codes.InvalidArgument, field: "request_id"},
		{name: "create reusing a request_id", req: &usersv2.CreateUserRequest{User: userV2("twice@example.com", "Twice"), RequestId: "once"}, code: codes.InvalidArgument, field: "request_id", reason: users.ReasonRequestIDReused},
		{name: "create with a taken email", req: &usersv2.CreateUserRequest{User: userV2("TAKEN@example.com", "X")}, code: codes.AlreadyExists},

		{name: "get unknown", req: &usersv2.GetUserRequest{Name: unknown}, code: codes.NotFound},
		{name: "get users/not-a-uuid", req: &usersv2.GetUserRequest{Name: "users/not-a-uuid"}, code: codes.InvalidArgument, field: "name"},
		{name: "get people/{id}", req: &usersv2.GetUserRequest{Name: "people/" + id}, code: codes.InvalidArgument, field: "name"},
		{name: "get a bare id", req: &usersv2.GetUserRequest{Name: id}, code: codes.InvalidArgument, field: "name"},
		{name: "get users/", req: &usersv2.GetUserRequest{Name: "users/"}, code: codes.InvalidArgument, field: "name"},
		{name: "get no name", req: &usersv2.GetUserRequest{}, code: codes.InvalidArgument, field: "name"},

		{name: "list with a negative page_size", req: &usersv2.ListUsersRequest{PageSize: -1}, code: codes.InvalidArgument, field: "page_size"},
		{name: "list by name", req: &usersv2.ListUsersRequest{Filter: `name = "` + u.GetName() + `"`}, code: codes.InvalidArgument, field: "filter"},
		{name: "list ordered by name", req: &usersv2.ListUsersRequest{OrderBy: "name"}, code: codes.InvalidArgument, field: "order_by"},
		{name: "list with a bad page_token", req: &usersv2.ListUsersRequest{PageToken: "not a token"}, code: codes.InvalidArgument, field: "page_token", reason: users.ReasonInvalidPageToken},

		{name: "update without user", req: &usersv2.UpdateUserRequest{}, code: codes.InvalidArgument, field: "user"},
		{name: "update without name", req: &usersv2.UpdateUserRequest{User: &usersv2.User{DisplayName: "X"}}, code: codes.InvalidArgument, field: "user.name"},
		{name: "update users/not-a-uuid", req: &usersv2.UpdateUserRequest{User: &usersv2.User{Name: "users/not-a-uuid", DisplayName: "X"}}, code: codes.InvalidArgument, field: "user.name"},
		{name: "update a bare id", req: &usersv2.UpdateUserRequest{User: &usersv2.User{Name: id, DisplayName: "X"}}, code: codes.InvalidArgument, field: "user.name"},
		{name: "update unknown", req: &usersv2.UpdateUserRequest{User: &usersv2.User{Name: unknown, DisplayName: "X"}}, code: codes.NotFound},
		{name: "update an unknown path", req: &usersv2.UpdateUserRequest{User: &usersv2.User{Name: u.GetName(), DisplayName: "X"}, UpdateMask: maskOf("nickname")}, code: codes.InvalidArgument, field: "update_mask"},
		{name: "update v1's id path", req: &usersv2.UpdateUserRequest{User: &usersv2.User{Name: u.GetName(), DisplayName: "X"}, UpdateMask: maskOf("id")}, code: codes.InvalidArgument, field: "update_mask"},
		{name: "update to deleted", req: &usersv2.UpdateUserRequest{User: &usersv2.User{Name: u.GetName(), State: usersv2.User_STATE_DELETED}, UpdateMask: maskOf("state")}, code: codes.InvalidArgument, field: "user.state"},
		{name: "update to a taken email", req: &usersv2.UpdateUserRequest{User: &usersv2.User{Name: u.GetName(), Email: "Taken@Example.com"}}, code: codes.AlreadyExists},
		{name: "update with a stale etag", req: &usersv2.UpdateUserRequest{User: &usersv2.User{Name: stale.GetName(), DisplayName: "X", Etag: stale.GetEtag()}}, code: codes.Aborted},
		{name: "update with a stale if-match", md: []string{grpcserver.MDIfMatch, stale.GetEtag()}, req: &usersv2.UpdateUserRequest{User: &usersv2.User{Name: stale.GetName(), DisplayName: "X"}}, code: codes.Aborted},
		{name: "update with etag and if-match differing", md: []string{grpcserver.MDIfMatch, stale.GetEtag()}, req: &usersv2.UpdateUserRequest{User: &usersv2.User{Name: u.GetName(), DisplayName: "X", Etag: u.GetEtag()}}, code: codes.InvalidArgument, field: "user.etag"},
		{name: "update a deleted user", req: &usersv2.UpdateUserRequest{User: &usersv2.User{Name: gone.GetName(), DisplayName: "X"}}, code: codes.FailedPrecondition},

		{name: "delete unknown", req: &usersv2.DeleteUserRequest{Name: unknown}, code: codes.NotFound},
		{name: "delete users/42", req: &usersv2.DeleteUserRequest{Name: "users/42"}, code: codes.InvalidArgument, field: "name"},
		{name: "delete a deleted user", req: &usersv2.DeleteUserRequest{Name: gone.GetName()}, code: codes.FailedPrecondition},
		{name: "delete with a stale etag", req: &usersv2.DeleteUserRequest{Name: stale.GetName(), Etag: stale.GetEtag()}, code: codes.Aborted},
		{name: "delete with etag and if-match differing", md: []string{grpcserver.MDIfMatch, stale.GetEtag()}, req: &usersv2.DeleteUserRequest{Name: u.GetName(), Etag: u.GetEtag()}, code: codes.InvalidArgument, field: "etag"},

		{name: "undelete unknown", req: &usersv2.UndeleteUserRequest{Name: unknown}, code: codes.NotFound},
		{name: "undelete people/{id}", req: &usersv2.UndeleteUserRequest{Name: "people/" + idOf(t, gone.GetName())}, code: codes.InvalidArgument, field: "name"},
		{name: "undelete an active user", req: &usersv2.UndeleteUserRequest{Name: u.GetName()}, code: codes.FailedPrecondition},
		{name: "undelete with a stale if-match", md: []string{grpcserver.MDIfMatch, u.GetEtag()}, req: &usersv2.UndeleteUserRequest{Name: gone.GetName()}, code: codes.Aborted},
		{name: "undelete with the address re-used", req: &usersv2.UndeleteUserRequest{Name: reused.GetName()}, code: codes.AlreadyExists},

		{name: "batch get unknown", req: &usersv2.BatchGetUsersRequest{Names: []string{u.GetName(), unknown}}, code: codes.NotFound},
		{name: "batch get users/not-a-uuid", req: &usersv2.BatchGetUsersRequest{Names: []string{u.GetName(), "users/not-a-uuid"}}, code: codes.InvalidArgument, field: "names[1]"},
		{name: "batch get a bare id", req: &usersv2.BatchGetUsersRequest{Names: []string{u.GetName(), u.GetName(), id}}, code: codes.InvalidArgument, field: "names[2]"},
		{name: "batch get too many", req: &usersv2.BatchGetUsersRequest{Names: tooMany}, code: codes.InvalidArgument, field: "names"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := callV2(withMD(ctx, tt.md...), c, tt.req)
			checkErr(t, fmt.Sprintf("%T", tt.req), err, tt.code, tt.field)
			if got := errorReason(t, err); got != tt.reason {
				t.Errorf("ErrorInfo reason = %q, want %q", got, tt.reason)
			}
		})
	}

	after, err := c.ListUsers(ctx, &usersv2.ListUsersRequest{ShowDeleted: true})
	if err != nil {
		t.Fatalf("ListUsers err = %v", err)
	}
	if diff := cmp.Diff(before.GetUsers(), after.GetUsers(), protocmp.Transform()); diff != "" {
		t.Errorf("users changed by failed calls (-before +after):\n%s", diff)
	}
}

// v1Field matches where a status message names a field of v1's: "id: …",
// "user.id: …", "ids[3]: …".
var v1Field = regexp.MustCompile(`\bids?(\[\d+\])?:`)

// TestV2HandlersCheckNames calls users.v2 without the protovalidate
// interceptor, which rejects malformed names first in usersd: the handlers
// and the domain check them again, and the fields they name are v2's (name,
// user.name, names[N], webhook.name, parent; never id, user.id, ids[N],
// webhook.id, webhook_id).
func TestV2HandlersCheckNames(t *testing.T) {
	ch := inproc.New(grpcserver.ErrorInterceptor)
	usersv2.RegisterUserServiceServer(ch, grpcserver.NewV2(newService(t)))
	c := usersv2.NewUserServiceClient(ch)
	u := mustCreateV2(t, c, userV2("direct@example.com", "Direct"))
	id := idOf(t, u.GetName())

	tests := []struct {
		name   string
		req    proto.Message
		fields []string
	}{
		{"get not a uuid", &usersv2.GetUserRequest{Name: "users/not-a-uuid"}, []string{"name"}},
		{"get other collection", &usersv2.GetUserRequest{Name: "people/" + id}, []string{"name"}},
		{"get bare id", &usersv2.GetUserRequest{Name: id}, []string{"name"}},
		{"get no name", &usersv2.GetUserRequest{}, []string{"name"}},
		{"delete not a uuid", &usersv2.DeleteUserRequest{Name: "users/42"}, []string{"name"}},
		{"undelete no name", &usersv2.UndeleteUserRequest{}, []string{"name"}},
		{"update no name", &usersv2.UpdateUserRequest{User: &usersv2.User{DisplayName: "X"}}, []string{"user.name"}},
		{"update not a uuid", &usersv2.UpdateUserRequest{User: &usersv2.User{Name: "users/x", DisplayName: "X"}}, []string{"user.name"}},
		{"update other collection", &usersv2.UpdateUserRequest{User: &usersv2.User{Name: "people/" + id, DisplayName: "X"}}, []string{"user.name"}},
		{"create other collection", &usersv2.CreateUserRequest{User: &usersv2.User{Name: "people/x", Email: "x@example.com", DisplayName: "X"}}, []string{"user.name"}},
		{"batch get not uuids", &usersv2.BatchGetUsersRequest{Names: []string{u.GetName(), "users/x", u.GetName(), "users/" + id + "0"}}, []string{"names[1]", "names[3]"}},
		{"batch get not names", &usersv2.BatchGetUsersRequest{Names: []string{id, u.GetName(), "", "users/"}}, []string{"names[0]", "names[2]", "names[3]"}},
		{"batch get too many", &usersv2.BatchGetUsersRequest{Names: slices.Repeat([]string{u.GetName()}, users.MaxBatchGet+1)}, []string{"names"}},

		{"get webhook not a uuid", &usersv2.GetWebhookRequest{Name: "webhooks/not-a-uuid"}, []string{"name"}},
		{"get webhook other collection", &usersv2.GetWebhookRequest{Name: "users/x"}, []string{"name"}},
		{"get webhook no name", &usersv2.GetWebhookRequest{}, []string{"name"}},
		{"delete webhook not a uuid", &usersv2.DeleteWebhookRequest{Name: "webhooks/42"}, []string{"name"}},
		{"update webhook no name", &usersv2.UpdateWebhookRequest{Webhook: &usersv2.Webhook{Url: "https://example.com/"}}, []string{"webhook.name"}},
		{"update webhook no name, ignored paths only", &usersv2.UpdateWebhookRequest{Webhook: &usersv2.Webhook{}, UpdateMask: maskPaths("create_time")}, []string{"webhook.name"}},
		{"update webhook other collection", &usersv2.UpdateWebhookRequest{Webhook: &usersv2.Webhook{Name: "hooks/x"}}, []string{"webhook.name"}},
		{"update webhook not a uuid", &usersv2.UpdateWebhookRequest{Webhook: &usersv2.Webhook{Name: "webhooks/x"}, UpdateMask: maskPaths("enabled")}, []string{"webhook.name"}},
		{"deliveries not a uuid", &usersv2.ListWebhookDeliveriesRequest{Parent: "webhooks/x"}, []string{"parent"}},
		{"deliveries no parent", &usersv2.ListWebhookDeliveriesRequest{}, []string{"parent"}},
		{"deliveries other collection", &usersv2.ListWebhookDeliveriesRequest{Parent: "users/x"}, []string{"parent"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := callV2(context.Background(), c, tt.req)
			checkErr(t, fmt.Sprintf("%T", tt.req), err, codes.InvalidArgument, "")
			if diff := cmp.Diff(tt.fields, badRequestFields(err)); diff != "" {
				t.Errorf("BadRequest fields (-want +got):\n%s\nerr = %v", diff, err)
			}
			if msg := status.Convert(err).Message(); v1Field.MatchString(msg) || strings.Contains(msg, "webhook_id") || strings.Contains(msg, "webhook.id") {
				t.Errorf("message %q names a field of the domain's", msg)
			}
		})
	}
}

// TestCrossVersion checks that users.v1 and users.v2 are two views of the
// same users: what one version writes, the other reads, with the same
// etags, request ids and page tokens.
func TestCrossVersion(t *testing.T) {
	c1, c2 := newClients(t)
	ctx := context.Background()

	// Every read of both versions, each answering in v2's form.
	reads := []struct {
		name string
		read func(id string) (*usersv2.User, error)
	}{
		{"v1 GetUser", func(id string) (*usersv2.User, error) {
			u, err := c1.GetUser(ctx, &usersv1.GetUserRequest{Id: id})
			return asV2(u), err
		}},
		{"v1 ListUsers", func(id string) (*usersv2.User, error) {
			res, err := c1.ListUsers(ctx, &usersv1.ListUsersRequest{ShowDeleted: true})
			if i := slices.IndexFunc(res.GetUsers(), func(u *usersv1.User) bool { return u.GetId() == id }); i >= 0 {
				return asV2(res.GetUsers()[i]), err
			}
			return nil, err
		}},
		{"v1 BatchGetUsers", func(id string) (*usersv2.User, error) {
			res, err := c1.BatchGetUsers(ctx, &usersv1.BatchGetUsersRequest{Ids: []string{id}})
			if err != nil {
				return nil, err
			}
			return asV2(res.GetUsers()[0]), nil
		}},
		{"v2 GetUser", func(id string) (*usersv2.User, error) {
			return c2.GetUser(ctx, &usersv2.GetUserRequest{Name: "users/" + id})
		}},
		{"v2 ListUsers", func(id string) (*usersv2.User, error) {
			res, err := c2.ListUsers(ctx, &usersv2.ListUsersRequest{ShowDeleted: true})
			if i := slices.Index(names(res.GetUsers()), userIn(users.DefaultTenant, id)); i >= 0 {
				return res.GetUsers()[i], err
			}
			return nil, err
		}},
		{"v2 BatchGetUsers", func(id string) (*usersv2.User, error) {
			res, err := c2.BatchGetUsers(ctx, &usersv2.BatchGetUsersRequest{Names: []string{"users/" + id}})
			if err != nil {
				return nil, err
			}
			return res.GetUsers()[0], nil
		}},
	}
	// seen checks that every read of both versions finds want.
	seen := func(t *testing.T, after string, want *usersv2.User) {
		t.Helper()
		for _, r := range reads {
			got, err := r.read(idOf(t, want.GetName()))
			if err != nil {
				t.Fatalf("after %s, %s err = %v", after, r.name, err)
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("after %s, %s (-want +got):\n%s", after, r.name, diff)
			}
		}
	}

	t.Run("create in either version, read in both", func(t *testing.T) {
		seen(t, "v1 CreateUser", asV2(mustCreate(t, c1, &usersv1.User{Email: "one@example.com", DisplayName: "One", Labels: map[string]string{"team": "core"}})))
		seen(t, "v2 CreateUser", mustCreateV2(t, c2, &usersv2.User{Email: "two@example.com", DisplayName: "Two", State: usersv2.User_STATE_SUSPENDED}))
	})

	t.Run("changes and etags cross versions", func(t *testing.T) {
		created := mustCreate(t, c1, user("life@example.com", "Life 1"))
		id, name := created.GetId(), "users/"+created.GetId()
		// v1's etag as v2's If-Match.
		updated, err := c2.UpdateUser(withMD(ctx, grpcserver.MDIfMatch, created.GetEtag()), &usersv2.UpdateUserRequest{
			User: &usersv2.User{Name: name, DisplayName: "Life 2"}, UpdateMask: maskOf("display_name"),
		})
		if err != nil {
			t.Fatalf("v2 UpdateUser with v1's etag err = %v", err)
		}
		seen(t, "v2 UpdateUser", updated)
		// v2's etag as v1's.
		again, err := c1.UpdateUser(ctx, &usersv1.UpdateUserRequest{
			User: &usersv1.User{Id: id, DisplayName: "Life 3", Etag: updated.GetEtag()}, UpdateMask: maskOf("display_name"),
		})
		if err != nil {
			t.Fatalf("v1 UpdateUser with v2's etag err = %v", err)
		}
		seen(t, "v1 UpdateUser", asV2(again))
		for _, etag := range []string{created.GetEtag(), updated.GetEtag()} {
			_, err := c2.DeleteUser(ctx, &usersv2.DeleteUserRequest{Name: name, Etag: etag})
			checkErr(t, "v2 DeleteUser with an etag v1's update made stale", err, codes.Aborted, "")
		}
		deleted, err := c1.DeleteUser(ctx, &usersv1.DeleteUserRequest{Id: id, Etag: again.GetEtag()})
		if err != nil {
			t.Fatalf("v1 DeleteUser err = %v", err)
		}
		seen(t, "v1 DeleteUser", asV2(deleted))
		if deleted.GetState() != usersv1.User_STATE_DELETED {
			t.Errorf("v1 DeleteUser state = %v, want STATE_DELETED", deleted.GetState())
		}
		undeleted, err := c2.UndeleteUser(ctx, &usersv2.UndeleteUserRequest{Name: name, Etag: deleted.GetEtag()})
		if err != nil {
			t.Fatalf("v2 UndeleteUser with v1's etag err = %v", err)
		}
		seen(t, "v2 UndeleteUser", undeleted)
		if undeleted.GetState() != usersv2.User_STATE_ACTIVE {
			t.Errorf("v2 UndeleteUser state = %v, want STATE_ACTIVE", undeleted.GetState())
		}
	})

	// A request id names one domain request, whichever version carries it:
	// a client that retries through v2 a create it first sent through v1
	// (say, after upgrading its client library mid-retry) must get the user
	// the first call created, not a second user nor an error. So the same
	// key with the same fields replays across versions, and the same key
	// with other fields is a reuse, in either direction.
	t.Run("request ids cross versions", func(t *testing.T) {
		first, err := c1.CreateUser(ctx, &usersv1.CreateUserRequest{User: user("idem@example.com", "Idem"), RequestId: "cross-1"})
		if err != nil {
			t.Fatalf("v1 CreateUser err = %v", err)
		}
		replay, err := c2.CreateUser(withMD(ctx, grpcserver.MDIdempotencyKey, "cross-1"), &usersv2.CreateUserRequest{User: userV2("idem@example.com", "Idem")})
		if err != nil || !cmp.Equal(asV2(first), replay, protocmp.Transform()) {
			t.Errorf("v2 CreateUser replaying v1's request id = %v, %v; want %v", replay, err, asV2(first))
		}
		_, err = c2.CreateUser(ctx, &usersv2.CreateUserRequest{User: userV2("idem@example.com", "Other"), RequestId: "cross-1"})
		checkErr(t, "v2 CreateUser reusing v1's request id", err, codes.InvalidArgument, "request_id")
		if got := errorReason(t, err); got != users.ReasonRequestIDReused {
			t.Errorf("v2 CreateUser reusing v1's request id: reason = %q, want %q", got, users.ReasonRequestIDReused)
		}

		second := mustCreateV2(t, c2, userV2("idem2@example.com", "Idem 2"))
		if _, err := c2.CreateUser(ctx, &usersv2.CreateUserRequest{User: userV2("idem3@example.com", "Idem 3"), RequestId: "cross-2"}); err != nil {
			t.Fatalf("v2 CreateUser err = %v", err)
		}
		_, err = c1.CreateUser(ctx, &usersv1.CreateUserRequest{User: user("idem2@example.com", "Idem 2"), RequestId: "cross-2"})
		checkErr(t, "v1 CreateUser reusing v2's request id", err, codes.InvalidArgument, "request_id")
		if got, err := c2.GetUser(ctx, &usersv2.GetUserRequest{Name: second.GetName()}); err != nil || !cmp.Equal(second, got, protocmp.Transform()) {
			t.Errorf("GetUser after a failed replay = %v, %v; want %v", got, err, second)
		}
	})

	t.Run("page tokens cross versions", func(t *testing.T) {
		all, err := c2.ListUsers(ctx, &usersv2.ListUsersRequest{})
		if err != nil || len(all.GetUsers()) < 3 {
			t.Fatalf("v2 ListUsers = %v, %v; want 3 users or more", all, err)
		}
		page1, err := c1.ListUsers(ctx, &usersv1.ListUsersRequest{PageSize: 2})
		if err != nil || page1.GetNextPageToken() == "" {
			t.Fatalf("v1 ListUsers(page_size 2) = %v, %v; want a next page token", page1, err)
		}
		rest, err := c2.ListUsers(ctx, &usersv2.ListUsersRequest{PageToken: page1.GetNextPageToken()})
		if err != nil {
			t.Fatalf("v2 ListUsers with v1's page token err = %v", err)
		}
		if diff := cmp.Diff(names(all.GetUsers())[2:], names(rest.GetUsers())); diff != "" {
			t.Errorf("v2 page after v1's first page (-want +got):\n%s", diff)
		}
	})
}
