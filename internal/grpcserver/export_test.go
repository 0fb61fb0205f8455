package grpcserver_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/auth"
)

// exportAll calls ExportUsers and reads the stream to its end.
func exportAll(ctx context.Context, c usersv2.UserServiceClient, req *usersv2.ExportUsersRequest) ([]*usersv2.User, error) {
	stream, err := c.ExportUsers(ctx, req)
	if err != nil {
		return nil, err
	}
	var out []*usersv2.User
	for {
		u, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, u)
	}
}

// listAllV2 reads every page of the tenant's list.
func listAllV2(t *testing.T, ctx context.Context, c usersv2.UserServiceClient, req *usersv2.ListUsersRequest) []*usersv2.User {
	t.Helper()
	var out []*usersv2.User
	for {
		res, err := c.ListUsers(ctx, req)
		if err != nil {
			t.Fatalf("ListUsers(%v) err = %v", req, err)
		}
		out = append(out, res.GetUsers()...)
		if req.PageToken = res.GetNextPageToken(); req.PageToken == "" {
			return out
		}
	}
}

// TestExportUsers streams a tenant's users over gRPC, through the
// production interceptors with JWT authentication: the users as ListUsers
// has them, in its order (create time), filtered, the deleted ones when
// asked; a caller bound to another tenant, or a tenant that does not
// exist, gets NOT_FOUND; an invalid request INVALID_ARGUMENT naming the
// field; a token without users.admin PERMISSION_DENIED.
func TestExportUsers(t *testing.T) {
	e := newScopeEnv(t)
	e.createTenant(t, acme, 0)
	e.createTenant(t, globex, 0)
	ctx := e.platform
	for i := range 40 {
		u := e.createIn(t, acme, fmt.Sprintf("u%d@example.com", i), fmt.Sprintf("User %d", i))
		if i%8 == 0 {
			e.createIn(t, globex, fmt.Sprintf("u%d@example.com", i), "Globex user")
		}
		if i%10 == 3 {
			if _, err := e.v2.DeleteUser(ctx, &usersv2.DeleteUserRequest{Name: u.GetName()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	bound := e.bound(t, acme)
	for _, req := range []*usersv2.ExportUsersRequest{
		{Parent: "tenants/" + acme},
		{Parent: "tenants/" + acme, ShowDeleted: true},
		{Parent: "tenants/" + acme, Filter: `display_name = "User 7"`},
		{Parent: "tenants/" + acme, Filter: `state = "DELETED"`, ShowDeleted: true},
		{Parent: "tenants/" + globex},
	} {
		want := listAllV2(t, ctx, e.v2, &usersv2.ListUsersRequest{Parent: req.Parent, Filter: req.Filter, ShowDeleted: req.ShowDeleted, PageSize: 7})
		got, err := exportAll(ctx, e.v2, req)
		if err != nil {
			t.Fatalf("ExportUsers(%v) err = %v", req, err)
		}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" || len(want) == 0 {
			t.Errorf("ExportUsers(%v) (-ListUsers +export):\n%s", req, diff)
		}
		if req.Parent == "tenants/"+acme {
			// The caller bound to the tenant exports the same.
			if again, err := exportAll(bound, e.v2, req); err != nil || len(again) != len(got) {
				t.Errorf("ExportUsers(%v) bound to %s = %d users, %v; want %d", req, acme, len(again), err, len(got))
			}
		}
	}

	_, other := exportAll(bound, e.v2, &usersv2.ExportUsersRequest{Parent: "tenants/" + globex})
	_, nowhere := exportAll(bound, e.v2, &usersv2.ExportUsersRequest{Parent: "tenants/initech"})
	sameNotFound(t, "ExportUsers(globex, bound to acme)", other, nowhere)
	_, err := exportAll(bound, e.v2, &usersv2.ExportUsersRequest{}) // the default tenant
	checkErr(t, "ExportUsers(default tenant, bound to acme)", err, codes.NotFound, "")
	_, err = exportAll(ctx, e.v2, &usersv2.ExportUsersRequest{Parent: "tenants/initech"})
	checkErr(t, "ExportUsers(a tenant that does not exist)", err, codes.NotFound, "")

	for _, c := range []struct {
		req   *usersv2.ExportUsersRequest
		field string
	}{
		{&usersv2.ExportUsersRequest{Parent: "tenants/" + acme, Filter: "nope = 1"}, "filter"},
		{&usersv2.ExportUsersRequest{Parent: "tenants/Acme"}, "parent"},
		{&usersv2.ExportUsersRequest{Parent: "tenants/-"}, "parent"},
		{&usersv2.ExportUsersRequest{Parent: "users/x"}, "parent"},
	} {
		got, err := exportAll(ctx, e.v2, c.req)
		checkErr(t, fmt.Sprintf("ExportUsers(%v)", c.req), err, codes.InvalidArgument, c.field)
		if len(got) != 0 {
			t.Errorf("ExportUsers(%v) sent %d users before failing", c.req, len(got))
		}
	}
	_, err = exportAll(e.token(t, auth.ScopeRead, map[string]any{auth.DefaultTenantClaim: acme}), e.v2, &usersv2.ExportUsersRequest{Parent: "tenants/" + acme})
	checkErr(t, "ExportUsers(users.read)", err, codes.PermissionDenied, "")
	_, err = exportAll(context.Background(), e.v2, &usersv2.ExportUsersRequest{Parent: "tenants/" + acme})
	checkErr(t, "ExportUsers(no token)", err, codes.Unauthenticated, "")
}

// TestExportUsersCancel: a client that stops reading and cancels ends the
// export on the server (the test's goroutine check finds none left), and
// a client's deadline is the export's.
func TestExportUsersCancel(t *testing.T) {
	e := newScopeEnv(t)
	// 300 users of 10 KB each: more than the transport's flow-control
	// windows hold, so the export cannot have ended when the client
	// cancels.
	pad, err := structpb.NewStruct(map[string]any{"pad": strings.Repeat("x", 10_000)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		u := userV2(fmt.Sprintf("c%d@example.com", i), "C")
		u.Attributes = pad
		if _, err := e.v2.CreateUser(e.platform, &usersv2.CreateUserRequest{User: u}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(e.platform)
	stream, err := e.v2.ExportUsers(ctx, &usersv2.ExportUsersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	for err == nil {
		_, err = stream.Recv()
	}
	checkErr(t, "Recv after cancel", err, codes.Canceled, "")

	dctx, dcancel := context.WithTimeout(e.platform, time.Nanosecond)
	defer dcancel()
	_, err = exportAll(dctx, e.v2, &usersv2.ExportUsersRequest{})
	checkErr(t, "ExportUsers past its deadline", err, codes.DeadlineExceeded, "")
}
