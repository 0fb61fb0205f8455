package grpcserver

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/internal/users"
)

// toProto returns the API form of a user.
func toProto(u *users.User) *usersv1.User {
	pb := &usersv1.User{
		Id:          u.ID,
		Email:       u.Email,
		DisplayName: u.DisplayName,
		State:       usersv1.User_State(u.State),
		Labels:      u.Labels,
		CreateTime:  timestamppb.New(u.CreateTime),
		UpdateTime:  timestamppb.New(u.UpdateTime),
		Etag:        u.Etag(),
	}
	if !u.DeleteTime.IsZero() {
		pb.DeleteTime = timestamppb.New(u.DeleteTime)
	}
	return pb
}

func toProtos(us []*users.User) []*usersv1.User {
	out := make([]*usersv1.User, len(us))
	for i, u := range us {
		out[i] = toProto(u)
	}
	return out
}

// fromProto returns the fields of a user that callers may set.
func fromProto(u *usersv1.User) *users.User {
	if u == nil {
		return nil
	}
	return &users.User{
		ID:          u.GetId(),
		Email:       u.GetEmail(),
		DisplayName: u.GetDisplayName(),
		State:       users.State(u.GetState()),
		Labels:      u.GetLabels(),
	}
}

// operationPrefix starts the resource name of an operation,
// "operations/{id}", in both API versions.
const operationPrefix = "operations/"

// operationToProto returns the API form of an operation: its progress, and
// its outcome once it is done.
func operationToProto(op *users.Operation) *usersv1.Operation {
	pb := &usersv1.Operation{
		Name: operationPrefix + op.ID,
		Done: op.Done(),
		Metadata: &usersv1.ImportUsersMetadata{
			Total:      int32(op.Total),
			Imported:   int32(op.Imported),
			Failed:     int32(op.Failed),
			CreateTime: timestamppb.New(op.CreateTime),
			UpdateTime: timestamppb.New(op.UpdateTime),
		},
	}
	if pb.Done {
		pb.Response = &usersv1.ImportUsersResponse{Failures: make([]*usersv1.ImportFailure, len(op.Failures))}
		for i, f := range op.Failures {
			pb.Response.Failures[i] = &usersv1.ImportFailure{Index: int32(f.Index), Reason: f.Reason}
		}
	}
	return pb
}
