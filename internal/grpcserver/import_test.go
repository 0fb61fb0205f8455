package grpcserver_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/grpcserver"
	"github.com/usersd/usersd/internal/inproc"
	"github.com/usersd/usersd/internal/sqlite"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

// runImports imports every chunk queued on jobs through svc, as the
// queue's workers would.
func runImports(t *testing.T, jobs *userstest.Queue[*sql.Tx], svc *users.Service) {
	t.Helper()
	for _, c := range jobs.TakeChunks() {
		if err := svc.ImportChunk(context.Background(), c); err != nil {
			t.Fatalf("ImportChunk(%s, %d) err = %v", c.OperationID, c.Chunk, err)
		}
	}
}

// newImportClients serves users.v1 and users.v2 through the production
// interceptor chain on a fresh SQLite database whose imports run 2 rows per
// job when the test says (runImports), and returns the job queue, the
// service and a client of each version.
func newImportClients(t *testing.T) (*userstest.Queue[*sql.Tx], *users.Service, usersv1.UserServiceClient, usersv2.UserServiceClient) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "users.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("sqlite.Open(%s) err = %v", path, err)
	}
	t.Cleanup(func() { db.Close() })
	if err := sqlite.Migrate(ctx, db, nil); err != nil {
		t.Fatalf("sqlite.Migrate err = %v", err)
	}
	jobs := &userstest.Queue[*sql.Tx]{}
	svc := users.NewService(sqlite.NewStore(db, sqlite.WithJobs(jobs)), users.Config{ImportChunkSize: 2})
	ics := grpcserver.Interceptors(grpcserver.ChainConfig{Log: zerolog.Nop()})
	ch := inproc.New(grpcserver.Chain(ics...))
	usersv1.RegisterUserServiceServer(ch, grpcserver.New(svc))
	usersv2.RegisterUserServiceServer(ch, grpcserver.NewV2(svc))
	return jobs, svc, usersv1.NewUserServiceClient(ch), usersv2.NewUserServiceClient(ch)
}

// ignoreOperationTimes leaves the times of an operation's metadata out of a
// comparison; they are checked apart.
var ignoreOperationTimes = cmp.Options{
	protocmp.Transform(),
	protocmp.IgnoreFields(&usersv1.ImportUsersMetadata{}, "create_time", "update_time"),
	protocmp.IgnoreFields(&usersv2.ImportUsersMetadata{}, "create_time", "update_time"),
}

// operationID returns the id of a v1 operation's name, failing the test
// when the name is not "operations/{UUID}": v1 is unchanged by tenants.
func operationID(t *testing.T, name string) string {
	t.Helper()
	return operationIDWithPrefix(t, "operations/", name)
}

// operationIDIn returns the id of a v2 operation's name, failing the test
// when the name is not the tenant's full name,
// "tenants/{tenant}/operations/{UUID}".
func operationIDIn(t *testing.T, tenant, name string) string {
	t.Helper()
	return operationIDWithPrefix(t, "tenants/"+tenant+"/operations/", name)
}

func operationIDWithPrefix(t *testing.T, prefix, name string) string {
	t.Helper()
	id, ok := strings.CutPrefix(name, prefix)
	if _, err := uuid.Parse(id); !ok || err != nil {
		t.Fatalf("operation name = %q, want %s{UUID}", name, prefix)
	}
	return id
}

func TestImportUsers(t *testing.T) {
	jobs, svc, c, _ := newImportClients(t)
	ctx := context.Background()

	rows := []*usersv1.User{
		0: {Email: "ada@example.com", DisplayName: "Ada", State: usersv1.User_STATE_SUSPENDED, Labels: map[string]string{"team": "core"}},
		// Output-only fields are ignored, malformed or not.
		1: {Email: "grace@example.com", DisplayName: "Grace", Id: "not-a-uuid", Etag: strings.Repeat("e", 100), CreateTime: timestamppb.Now()},
		// Broken rules of User: failed at the edge, by protovalidate.
		2: {Email: "not an email", DisplayName: "Bad"},
		3: {Email: "labels@example.com", DisplayName: "Labels", Labels: map[string]string{"Bad Key": "v"}},
		4: {Email: "state@example.com", DisplayName: "State", State: 42},
		// Broken rules of the domain: failed by the chunk's job.
		5: {Email: "noname@example.com"},
		6: {Email: "deleted@example.com", DisplayName: "Deleted", State: usersv1.User_STATE_DELETED},
		// Taken by row 0: failed by the store.
		7: {Email: "ADA@example.com", DisplayName: "Ada again"},
		8: {Email: "linus@example.com", DisplayName: "Linus"},
	}
	req := &usersv1.ImportUsersRequest{Users: rows, RequestId: "import-1"}
	started, err := c.ImportUsers(ctx, req)
	if err != nil {
		t.Fatalf("ImportUsers err = %v; want no error, whatever its rows", err)
	}
	id := operationID(t, started.GetName())
	want := &usersv1.Operation{Name: started.GetName(), Metadata: &usersv1.ImportUsersMetadata{Total: int32(len(rows))}}
	if diff := cmp.Diff(want, started, ignoreOperationTimes); diff != "" {
		t.Errorf("ImportUsers (-want +got):\n%s", diff)
	}
	md := started.GetMetadata()
	if md.GetCreateTime() == nil || !proto.Equal(md.GetCreateTime(), md.GetUpdateTime()) {
		t.Errorf("ImportUsers metadata times = %v, %v; want both set and equal", md.GetCreateTime(), md.GetUpdateTime())
	}

	if got, err := c.GetOperation(ctx, &usersv1.GetOperationRequest{Id: id}); err != nil || !proto.Equal(got, started) {
		t.Errorf("GetOperation before the jobs ran = %v, %v; want %v", got, err, started)
	}

	runImports(t, jobs, svc)
	got, err := c.GetOperation(ctx, &usersv1.GetOperationRequest{Id: strings.ToUpper(id)})
	if err != nil {
		t.Fatalf("GetOperation err = %v", err)
	}
	want = &usersv1.Operation{
		Name:     started.GetName(),
		Done:     true,
		Metadata: &usersv1.ImportUsersMetadata{Total: 9, Imported: 3, Failed: 6},
		Response: &usersv1.ImportUsersResponse{Failures: []*usersv1.ImportFailure{
			{Index: 2, Reason: "email: must be a valid email address"},
			{Index: 3, Reason: `labels["Bad Key"]: does not match regex pattern ` + "`^[a-z][a-z0-9_.-]{0,62}$`"},
			{Index: 4, Reason: "state: value must be one of the defined enum values"},
			{Index: 5, Reason: "display_name: required"},
			{Index: 6, Reason: "state: a new user is ACTIVE or SUSPENDED"},
			{Index: 7, Reason: "email: already in use by another user"},
		}},
	}
	if diff := cmp.Diff(want, got, ignoreOperationTimes); diff != "" {
		t.Errorf("GetOperation when done (-want +got):\n%s", diff)
	}
	if got.GetMetadata().GetUpdateTime().AsTime().Before(md.GetCreateTime().AsTime()) {
		t.Errorf("GetOperation update_time = %v, before create_time %v", got.GetMetadata().GetUpdateTime(), md.GetCreateTime())
	}

	t.Run("replay", func(t *testing.T) {
		again, err := c.ImportUsers(ctx, req)
		if err != nil || !proto.Equal(again, got) {
			t.Errorf("ImportUsers replay = %v, %v; want the operation as it is now, %v", again, err, got)
		}
		if queued := jobs.Queued(); queued != 0 {
			t.Errorf("ImportUsers replay queued %d chunks, want none", queued)
		}
		// The same key in the header is the same request.
		if _, err := c.ImportUsers(withMD(ctx, grpcserver.MDIdempotencyKey, "import-1"), req); err != nil {
			t.Errorf("ImportUsers replay with the same idempotency-key err = %v", err)
		}
	})

	t.Run("request id reused", func(t *testing.T) {
		// Rows that fail alike are still different rows.
		other := proto.CloneOf(req)
		other.Users[2].Email = "also not an email"
		_, err := c.ImportUsers(ctx, other)
		checkErr(t, "ImportUsers", err, codes.InvalidArgument, "request_id")
		if got := errorReason(t, err); got != users.ReasonRequestIDReused {
			t.Errorf("ImportUsers reason = %q, want %q", got, users.ReasonRequestIDReused)
		}
	})
}

func TestImportUsersErrors(t *testing.T) {
	_, _, c, c2 := newImportClients(t)
	ctx := context.Background()
	one := []*usersv1.User{user("one@example.com", "One")}
	tooMany := slices.Repeat(one, users.MaxImportUsers+1)
	oneV2 := []*usersv2.User{userV2("one@example.com", "One")}

	tests := []struct {
		name  string
		md    []string
		call  func(context.Context) error
		code  codes.Code
		field string
	}{
		{name: "no users", call: func(ctx context.Context) error {
			_, err := c.ImportUsers(ctx, &usersv1.ImportUsersRequest{RequestId: "r"})
			return err
		}, code: codes.InvalidArgument, field: "users"},
		{name: "too many users", call: func(ctx context.Context) error {
			_, err := c.ImportUsers(ctx, &usersv1.ImportUsersRequest{Users: tooMany, RequestId: "r"})
			return err
		}, code: codes.InvalidArgument, field: "users"},
		{name: "no request_id", call: func(ctx context.Context) error {
			_, err := c.ImportUsers(ctx, &usersv1.ImportUsersRequest{Users: one})
			return err
		}, code: codes.InvalidArgument, field: "request_id"},
		// request_id is required in the request: the header does not
		// stand in for it.
		{name: "only an idempotency-key", md: []string{grpcserver.MDIdempotencyKey, "r"}, call: func(ctx context.Context) error {
			_, err := c.ImportUsers(ctx, &usersv1.ImportUsersRequest{Users: one})
			return err
		}, code: codes.InvalidArgument, field: "request_id"},
		{name: "request_id with a space", call: func(ctx context.Context) error {
			_, err := c.ImportUsers(ctx, &usersv1.ImportUsersRequest{Users: one, RequestId: "a b"})
			return err
		}, code: codes.InvalidArgument, field: "request_id"},
		{name: "request_id too long", call: func(ctx context.Context) error {
			_, err := c.ImportUsers(ctx, &usersv1.ImportUsersRequest{Users: one, RequestId: strings.Repeat("r", 129)})
			return err
		}, code: codes.InvalidArgument, field: "request_id"},
		{name: "idempotency-key differs", md: []string{grpcserver.MDIdempotencyKey, "s"}, call: func(ctx context.Context) error {
			_, err := c.ImportUsers(ctx, &usersv1.ImportUsersRequest{Users: one, RequestId: "r"})
			return err
		}, code: codes.InvalidArgument, field: "request_id"},
		{name: "operation id not a UUID", call: func(ctx context.Context) error {
			_, err := c.GetOperation(ctx, &usersv1.GetOperationRequest{Id: "not-a-uuid"})
			return err
		}, code: codes.InvalidArgument, field: "id"},
		{name: "no operation id", call: func(ctx context.Context) error {
			_, err := c.GetOperation(ctx, &usersv1.GetOperationRequest{})
			return err
		}, code: codes.InvalidArgument, field: "id"},
		{name: "unknown operation", call: func(ctx context.Context) error {
			_, err := c.GetOperation(ctx, &usersv1.GetOperationRequest{Id: uuid.NewString()})
			return err
		}, code: codes.NotFound},

		{name: "v2 no users", call: func(ctx context.Context) error {
			_, err := c2.ImportUsers(ctx, &usersv2.ImportUsersRequest{RequestId: "r"})
			return err
		}, code: codes.InvalidArgument, field: "users"},
		{name: "v2 no request_id", call: func(ctx context.Context) error {
			_, err := c2.ImportUsers(ctx, &usersv2.ImportUsersRequest{Users: oneV2})
			return err
		}, code: codes.InvalidArgument, field: "request_id"},
		{name: "v2 operation name of a user", call: func(ctx context.Context) error {
			_, err := c2.GetOperation(ctx, &usersv2.GetOperationRequest{Name: "users/" + uuid.NewString()})
			return err
		}, code: codes.InvalidArgument, field: "name"},
		{name: "v2 operation name without a UUID", call: func(ctx context.Context) error {
			_, err := c2.GetOperation(ctx, &usersv2.GetOperationRequest{Name: "operations/x"})
			return err
		}, code: codes.InvalidArgument, field: "name"},
		{name: "v2 no operation name", call: func(ctx context.Context) error {
			_, err := c2.GetOperation(ctx, &usersv2.GetOperationRequest{})
			return err
		}, code: codes.InvalidArgument, field: "name"},
		{name: "v2 unknown operation", call: func(ctx context.Context) error {
			_, err := c2.GetOperation(ctx, &usersv2.GetOperationRequest{Name: "operations/" + uuid.NewString()})
			return err
		}, code: codes.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, tt.name, tt.call(withMD(ctx, tt.md...)), tt.code, tt.field)
		})
	}
}

// TestImportUsersV2 checks what v2 does differently: rows are v2 users,
// whose name is ignored, and operations are read by name.
func TestImportUsersV2(t *testing.T) {
	jobs, svc, c1, c := newImportClients(t)
	ctx := context.Background()

	rows := []*usersv2.User{
		{Name: "users/not-a-uuid", Email: "ada@example.com", DisplayName: "Ada"},
		{Email: "bad", DisplayName: "Bad"},
		{Email: "grace@example.com", DisplayName: "Grace", Labels: map[string]string{"k": strings.Repeat("v", 256)}},
	}
	started, err := c.ImportUsers(ctx, &usersv2.ImportUsersRequest{Users: rows, RequestId: "v2"})
	if err != nil {
		t.Fatalf("ImportUsers err = %v", err)
	}
	if started.GetDone() || started.GetResponse() != nil || started.GetMetadata().GetTotal() != 3 {
		t.Errorf("ImportUsers = %v; want not done, no response, total 3", started)
	}
	runImports(t, jobs, svc)
	got, err := c.GetOperation(ctx, &usersv2.GetOperationRequest{Name: started.GetName()})
	if err != nil {
		t.Fatalf("GetOperation(%s) err = %v", started.GetName(), err)
	}
	want := &usersv2.Operation{
		Name:     started.GetName(),
		Done:     true,
		Metadata: &usersv2.ImportUsersMetadata{Total: 3, Imported: 1, Failed: 2},
		Response: &usersv2.ImportUsersResponse{Failures: []*usersv2.ImportFailure{
			{Index: 1, Reason: "email: must be a valid email address"},
			{Index: 2, Reason: `labels["k"]: must be at most 255 characters`},
		}},
	}
	if diff := cmp.Diff(want, got, ignoreOperationTimes); diff != "" {
		t.Errorf("GetOperation (-want +got):\n%s", diff)
	}

	// One operation, read through either version, each naming it its way:
	// v1 as it always has, v2 with the default tenant.
	id := operationIDIn(t, users.DefaultTenant, got.GetName())
	v1, err := c1.GetOperation(ctx, &usersv1.GetOperationRequest{Id: id})
	if err != nil {
		t.Fatalf("v1 GetOperation err = %v", err)
	}
	if v1.GetName() != "operations/"+id || !v1.GetDone() || len(v1.GetResponse().GetFailures()) != 2 {
		t.Errorf("v1 GetOperation = %v; want the v2 operation %v, named operations/%s", v1, got, id)
	}

	// A replay through v1 of the same rows is the same request.
	if _, err := c1.ImportUsers(ctx, &usersv1.ImportUsersRequest{RequestId: "v2", Users: []*usersv1.User{
		user("ada@example.com", "Ada"), user("bad", "Bad"), {Email: "grace@example.com", DisplayName: "Grace", Labels: rows[2].GetLabels()},
	}}); err != nil {
		t.Errorf("v1 ImportUsers replay of a v2 import err = %v", err)
	}
}
