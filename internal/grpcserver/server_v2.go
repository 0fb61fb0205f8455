package grpcserver

import (
	"context"

	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/users"
)

// ServerV2 implements users.v2.UserService on a users.Service: the same
// users and rules as Server's users.v1, named "users/{id}" instead of by
// bare id. Both can serve one Service side by side; a user created through
// one version is read, changed and replayed (same request id) through the
// other, with the same etags.
type ServerV2 struct {
	usersv2.UnimplementedUserServiceServer
	svc *users.Service
}

var _ usersv2.UserServiceServer = (*ServerV2)(nil)

// NewV2 returns a ServerV2 backed by svc.
func NewV2(svc *users.Service) *ServerV2 { return &ServerV2{svc: svc} }

// CreateUser implements users.v2.UserService.
func (s *ServerV2) CreateUser(ctx context.Context, req *usersv2.CreateUserRequest) (*usersv2.User, error) {
	in, err := fromProtoV2(req.GetUser())
	if err != nil {
		return nil, err
	}
	rid, err := orMD(ctx, req.GetRequestId(), "request_id", MDIdempotencyKey)
	if err != nil {
		return nil, err
	}
	return userV2(s.svc.Create(ctx, users.CreateRequest{User: in, RequestID: rid}))
}

// GetUser implements users.v2.UserService.
func (s *ServerV2) GetUser(ctx context.Context, req *usersv2.GetUserRequest) (*usersv2.User, error) {
	id, err := idFromName("name", req.GetName())
	if err != nil {
		return nil, err
	}
	return userV2(s.svc.Get(ctx, id))
}

// ListUsers implements users.v2.UserService.
func (s *ServerV2) ListUsers(ctx context.Context, req *usersv2.ListUsersRequest) (*usersv2.ListUsersResponse, error) {
	res, err := s.svc.List(ctx, listRequest(req))
	if err != nil {
		return nil, errorV2(err)
	}
	return &usersv2.ListUsersResponse{Users: toProtosV2(res.Users), NextPageToken: res.NextPageToken}, nil
}

// listParams is what the ListUsersRequest of every API version carries.
type listParams interface {
	GetPageSize() int32
	GetPageToken() string
	GetFilter() string
	GetOrderBy() string
	GetShowDeleted() bool
}

// listRequest returns the domain's form of a ListUsersRequest.
func listRequest(req listParams) users.ListRequest {
	return users.ListRequest{
		PageSize:    int(req.GetPageSize()),
		PageToken:   req.GetPageToken(),
		Filter:      req.GetFilter(),
		OrderBy:     req.GetOrderBy(),
		ShowDeleted: req.GetShowDeleted(),
	}
}

// UpdateUser implements users.v2.UserService.
func (s *ServerV2) UpdateUser(ctx context.Context, req *usersv2.UpdateUserRequest) (*usersv2.User, error) {
	in, err := fromProtoV2(req.GetUser())
	if err != nil {
		return nil, err
	}
	paths, err := pathsV2(req.GetUpdateMask().GetPaths())
	if err != nil {
		return nil, err
	}
	etag, err := orMD(ctx, req.GetUser().GetEtag(), "user.etag", MDIfMatch)
	if err != nil {
		return nil, err
	}
	return userV2(s.svc.Update(ctx, users.UpdateRequest{User: in, Paths: paths, Etag: etag}))
}

// DeleteUser implements users.v2.UserService.
func (s *ServerV2) DeleteUser(ctx context.Context, req *usersv2.DeleteUserRequest) (*usersv2.User, error) {
	return s.lifecycle(ctx, s.svc.Delete, req.GetName(), req.GetEtag())
}

// UndeleteUser implements users.v2.UserService.
func (s *ServerV2) UndeleteUser(ctx context.Context, req *usersv2.UndeleteUserRequest) (*usersv2.User, error) {
	return s.lifecycle(ctx, s.svc.Undelete, req.GetName(), req.GetEtag())
}

// lifecycle moves the named user with change (Delete or Undelete), under
// the etag of the request or of the If-Match metadata.
func (s *ServerV2) lifecycle(ctx context.Context, change func(ctx context.Context, id, etag string) (*users.User, error), name, etag string) (*usersv2.User, error) {
	id, err := idFromName("name", name)
	if err != nil {
		return nil, err
	}
	etag, err = orMD(ctx, etag, "etag", MDIfMatch)
	if err != nil {
		return nil, err
	}
	return userV2(change(ctx, id, etag))
}

// BatchGetUsers implements users.v2.UserService.
func (s *ServerV2) BatchGetUsers(ctx context.Context, req *usersv2.BatchGetUsersRequest) (*usersv2.BatchGetUsersResponse, error) {
	ids, err := idsFromNames(req.GetNames())
	if err != nil {
		return nil, err
	}
	us, err := s.svc.BatchGet(ctx, ids)
	if err != nil {
		return nil, errorV2(err)
	}
	return &usersv2.BatchGetUsersResponse{Users: toProtosV2(us)}, nil
}

// ImportUsers implements users.v2.UserService, as Server.ImportUsers does
// users.v1's; the name of a row is ignored like its output-only fields.
func (s *ServerV2) ImportUsers(ctx context.Context, req *usersv2.ImportUsersRequest) (*usersv2.Operation, error) {
	rid, err := orMD(ctx, req.GetRequestId(), "request_id", MDIdempotencyKey)
	if err != nil {
		return nil, err
	}
	rows, err := importRows(req.GetUsers(), func(u *usersv2.User) *usersv2.User {
		return &usersv2.User{Email: u.GetEmail(), DisplayName: u.GetDisplayName(), State: u.GetState(), Labels: u.GetLabels()}
	}, func(u *usersv2.User) *users.User {
		return &users.User{Email: u.GetEmail(), DisplayName: u.GetDisplayName(), State: users.State(u.GetState()), Labels: u.GetLabels()}
	})
	if err != nil {
		return nil, err
	}
	op, err := s.svc.Import(ctx, users.ImportRequest{Rows: rows, RequestID: rid})
	if err != nil {
		return nil, errorV2(err)
	}
	return operationToProtoV2(op), nil
}

// GetOperation implements users.v2.UserService.
func (s *ServerV2) GetOperation(ctx context.Context, req *usersv2.GetOperationRequest) (*usersv2.Operation, error) {
	id, err := operationID(req.GetName())
	if err != nil {
		return nil, err
	}
	op, err := s.svc.GetOperation(ctx, id)
	if err != nil {
		return nil, errorV2(err)
	}
	return operationToProtoV2(op), nil
}
