package main

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	usersv1 "github.com/usersd/usersd/api/users/v1"
)

// wantCode fails unless err has the code and, for INVALID_ARGUMENT, names
// the field in its BadRequest.
func wantCode(t *testing.T, what string, err error, code codes.Code, field string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code {
		t.Fatalf("%s: code %v (%v), want %v", what, st.Code(), st.Message(), code)
	}
	if field == "" {
		return
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, fv := range br.GetFieldViolations() {
				if fv.GetField() == field {
					return
				}
			}
		}
	}
	t.Errorf("%s: field %q not named in %v", what, field, st.Details())
}

// TestGRPCEndToEnd drives every RPC of users.v1 over the gRPC port of a
// running usersd, on each store, successes and errors.
func TestGRPCEndToEnd(t *testing.T) {
	runOnStores(t, func(t *testing.T, s *testServer) {
		ctx := context.Background()
		c := s.Client

		// CreateUser, idempotent through metadata.
		mdCtx := metadata.AppendToOutgoingContext(ctx, "idempotency-key", "grpc-e2e")
		u, err := c.CreateUser(mdCtx, &usersv1.CreateUserRequest{User: &usersv1.User{Email: "e2e@example.com", DisplayName: "E2E"}})
		if err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		again, err := c.CreateUser(ctx, &usersv1.CreateUserRequest{RequestId: "grpc-e2e", User: &usersv1.User{Email: "e2e@example.com", DisplayName: "E2E"}})
		if err != nil || again.GetId() != u.GetId() {
			t.Fatalf("replayed CreateUser = %v, %v; want id %s", again.GetId(), err, u.GetId())
		}
		_, err = c.CreateUser(ctx, &usersv1.CreateUserRequest{RequestId: "grpc-e2e", User: &usersv1.User{Email: "e2e@example.com", DisplayName: "Other"}})
		wantCode(t, "reused request id", err, codes.InvalidArgument, "request_id")
		_, err = c.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{Email: "E2E@example.com", DisplayName: "Dup"}})
		wantCode(t, "duplicate email", err, codes.AlreadyExists, "")
		_, err = c.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{Email: "x", DisplayName: "X"}})
		wantCode(t, "bad email", err, codes.InvalidArgument, "user.email")
		_, err = c.CreateUser(ctx, &usersv1.CreateUserRequest{})
		wantCode(t, "no user", err, codes.InvalidArgument, "user")

		// GetUser.
		got, err := c.GetUser(ctx, &usersv1.GetUserRequest{Id: u.GetId()})
		if err != nil || got.GetEtag() != u.GetEtag() {
			t.Fatalf("GetUser = %v, %v", got, err)
		}
		_, err = c.GetUser(ctx, &usersv1.GetUserRequest{Id: "0190a5b4-0000-7000-8000-000000000000"})
		wantCode(t, "unknown id", err, codes.NotFound, "")
		_, err = c.GetUser(ctx, &usersv1.GetUserRequest{Id: "nope"})
		wantCode(t, "bad id", err, codes.InvalidArgument, "id")

		// UpdateUser with a mask and an etag.
		upd, err := c.UpdateUser(ctx, &usersv1.UpdateUserRequest{
			User:       &usersv1.User{Id: u.GetId(), DisplayName: "Renamed", Etag: u.GetEtag()},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"display_name"}},
		})
		if err != nil || upd.GetDisplayName() != "Renamed" {
			t.Fatalf("UpdateUser = %v, %v", upd, err)
		}
		_, err = c.UpdateUser(ctx, &usersv1.UpdateUserRequest{User: &usersv1.User{Id: u.GetId(), DisplayName: "Stale", Etag: u.GetEtag()}})
		wantCode(t, "stale etag", err, codes.Aborted, "")
		_, err = c.UpdateUser(ctx, &usersv1.UpdateUserRequest{
			User:       &usersv1.User{Id: u.GetId()},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"nickname"}},
		})
		wantCode(t, "bad mask", err, codes.InvalidArgument, "update_mask")

		// ListUsers and BatchGetUsers.
		for i := range 4 {
			if _, err := c.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{
				Email: fmt.Sprintf("list%d@example.com", i), DisplayName: "L",
			}}); err != nil {
				t.Fatal(err)
			}
		}
		page, err := c.ListUsers(ctx, &usersv1.ListUsersRequest{PageSize: 3, OrderBy: "email desc"})
		if err != nil || len(page.GetUsers()) != 3 || page.GetNextPageToken() == "" {
			t.Fatalf("ListUsers page 1 = %d users, token %q, %v", len(page.GetUsers()), page.GetNextPageToken(), err)
		}
		rest, err := c.ListUsers(ctx, &usersv1.ListUsersRequest{PageSize: 3, OrderBy: "email desc", PageToken: page.GetNextPageToken()})
		if err != nil || len(rest.GetUsers()) != 2 || rest.GetNextPageToken() != "" {
			t.Fatalf("ListUsers page 2 = %d users, token %q, %v", len(rest.GetUsers()), rest.GetNextPageToken(), err)
		}
		_, err = c.ListUsers(ctx, &usersv1.ListUsersRequest{OrderBy: "email", PageToken: page.GetNextPageToken()})
		wantCode(t, "foreign token", err, codes.InvalidArgument, "page_token")
		_, err = c.ListUsers(ctx, &usersv1.ListUsersRequest{Filter: "state ~ 1"})
		wantCode(t, "bad filter", err, codes.InvalidArgument, "filter")
		_, err = c.ListUsers(ctx, &usersv1.ListUsersRequest{PageSize: -5})
		wantCode(t, "negative page size", err, codes.InvalidArgument, "page_size")
		batch, err := c.BatchGetUsers(ctx, &usersv1.BatchGetUsersRequest{Ids: []string{rest.GetUsers()[1].GetId(), u.GetId()}})
		if err != nil || len(batch.GetUsers()) != 2 || batch.GetUsers()[1].GetId() != u.GetId() {
			t.Fatalf("BatchGetUsers = %v, %v", batch, err)
		}
		_, err = c.BatchGetUsers(ctx, &usersv1.BatchGetUsersRequest{Ids: []string{u.GetId(), "0190a5b4-0000-7000-8000-000000000000"}})
		wantCode(t, "batch with unknown id", err, codes.NotFound, "")

		// DeleteUser and UndeleteUser.
		del, err := c.DeleteUser(ctx, &usersv1.DeleteUserRequest{Id: u.GetId(), Etag: upd.GetEtag()})
		if err != nil || del.GetState() != usersv1.User_STATE_DELETED || del.GetDeleteTime() == nil {
			t.Fatalf("DeleteUser = %v, %v", del, err)
		}
		_, err = c.DeleteUser(ctx, &usersv1.DeleteUserRequest{Id: u.GetId()})
		wantCode(t, "delete twice", err, codes.FailedPrecondition, "")
		_, err = c.UpdateUser(ctx, &usersv1.UpdateUserRequest{User: &usersv1.User{Id: u.GetId(), DisplayName: "Ghost"}})
		wantCode(t, "update deleted", err, codes.FailedPrecondition, "")
		und, err := c.UndeleteUser(ctx, &usersv1.UndeleteUserRequest{Id: u.GetId()})
		if err != nil || und.GetState() != usersv1.User_STATE_ACTIVE || und.GetDeleteTime() != nil {
			t.Fatalf("UndeleteUser = %v, %v", und, err)
		}
		_, err = c.UndeleteUser(ctx, &usersv1.UndeleteUserRequest{Id: u.GetId()})
		wantCode(t, "undelete active", err, codes.FailedPrecondition, "")
	})
}
