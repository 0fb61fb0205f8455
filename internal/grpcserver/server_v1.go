package grpcserver

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/internal/users"
)

// Server implements users.v1.UserService, which is frozen, as a thin
// adapter over a ServerV2: each method converts its request to the domain's
// terms, makes the same call as users.v2 through the same code, and
// converts the answer back (convert_v1.go). New capabilities land in v2
// only.
type Server struct {
	usersv1.UnimplementedUserServiceServer
	v2 *ServerV2
}

var _ usersv1.UserServiceServer = (*Server)(nil)

// New returns a Server backed by svc, over a ServerV2 of its own (V2).
func New(svc *users.Service) *Server { return &Server{v2: NewV2(svc)} }

// V2 returns the ServerV2 this Server adapts: register it for users.v2, so
// that one Drain ends the streams of both versions.
func (s *Server) V2() *ServerV2 { return s.v2 }

// Drain is the Drain of the ServerV2 beneath: it ends the WatchUserEvents
// streams of both API versions.
func (s *Server) Drain() { s.v2.Drain() }

// CreateUser implements users.v1.UserService.
func (s *Server) CreateUser(ctx context.Context, req *usersv1.CreateUserRequest) (*usersv1.User, error) {
	return userV1(s.v2.createUser(ctx, users.DefaultTenant, fromProto(req.GetUser()), req.GetRequestId()))
}

// GetUser implements users.v1.UserService.
func (s *Server) GetUser(ctx context.Context, req *usersv1.GetUserRequest) (*usersv1.User, error) {
	return userV1(s.v2.svc.Get(ctx, users.DefaultTenant, req.GetId()))
}

// ListUsers implements users.v1.UserService.
func (s *Server) ListUsers(ctx context.Context, req *usersv1.ListUsersRequest) (*usersv1.ListUsersResponse, error) {
	lr := listRequest(users.DefaultTenant, req)
	lr.BaseFields = true // v1 has no profile fields
	res, err := s.v2.svc.List(ctx, lr)
	if err != nil {
		return nil, err
	}
	return &usersv1.ListUsersResponse{Users: toProtos(res.Users), NextPageToken: res.NextPageToken}, nil
}

// UpdateUser implements users.v1.UserService.
func (s *Server) UpdateUser(ctx context.Context, req *usersv1.UpdateUserRequest) (*usersv1.User, error) {
	return userV1(s.v2.updateUser(ctx, fromProto(req.GetUser()), req.GetUpdateMask().GetPaths(), req.GetUser().GetEtag(), true))
}

// DeleteUser implements users.v1.UserService.
func (s *Server) DeleteUser(ctx context.Context, req *usersv1.DeleteUserRequest) (*usersv1.User, error) {
	return userV1(s.v2.lifecycle(ctx, s.v2.svc.Delete, users.DefaultTenant, req.GetId(), req.GetEtag()))
}

// UndeleteUser implements users.v1.UserService.
func (s *Server) UndeleteUser(ctx context.Context, req *usersv1.UndeleteUserRequest) (*usersv1.User, error) {
	return userV1(s.v2.lifecycle(ctx, s.v2.svc.Undelete, users.DefaultTenant, req.GetId(), req.GetEtag()))
}

// BatchGetUsers implements users.v1.UserService.
func (s *Server) BatchGetUsers(ctx context.Context, req *usersv1.BatchGetUsersRequest) (*usersv1.BatchGetUsersResponse, error) {
	us, err := s.v2.svc.BatchGet(ctx, users.DefaultTenant, req.GetIds())
	if err != nil {
		return nil, err
	}
	return &usersv1.BatchGetUsersResponse{Users: toProtos(us)}, nil
}

// ImportUsers implements users.v1.UserService, as ServerV2.ImportUsers
// does; the id of a row is ignored like its output-only fields.
func (s *Server) ImportUsers(ctx context.Context, req *usersv1.ImportUsersRequest) (*usersv1.Operation, error) {
	op, err := s.v2.importUsers(ctx, users.DefaultTenant, req.GetRequestId(), func() ([]users.ImportRow, error) {
		return importRows(req.GetUsers(), importRowV1, func(u *usersv1.User) (*users.User, error) { return fromProto(u), nil })
	})
	if err != nil {
		return nil, err
	}
	return operationToProto(op), nil
}

// GetOperation implements users.v1.UserService.
func (s *Server) GetOperation(ctx context.Context, req *usersv1.GetOperationRequest) (*usersv1.Operation, error) {
	op, err := s.v2.svc.GetOperation(ctx, users.DefaultTenant, req.GetId())
	if err != nil {
		return nil, err
	}
	if op.Kind != users.OperationImport {
		// v1 knows imports only: a schema check is v2's.
		return nil, fmt.Errorf("operation %s: %w", op.ID, users.ErrNotFound)
	}
	return operationToProto(op), nil
}

// ListUserEvents implements users.v1.UserService.
func (s *Server) ListUserEvents(ctx context.Context, req *usersv1.ListUserEventsRequest) (*usersv1.ListUserEventsResponse, error) {
	page, err := s.v2.svc.ListEvents(ctx, users.DefaultTenant, req.GetAfter(), int(req.GetPageSize()))
	if err != nil {
		return nil, err
	}
	res := &usersv1.ListUserEventsResponse{Events: make([]*usersv1.UserEvent, 0, len(page.Events)), NextCursor: page.Next}
	for _, ev := range page.Events {
		if !ev.Type.IsGroupEvent() { // v1 knows users only: groups are v2's
			res.Events = append(res.Events, eventToProto(ev))
		}
	}
	return res, nil
}

// WatchUserEvents implements users.v1.UserService with ServerV2's stream,
// in v1's form.
func (s *Server) WatchUserEvents(req *usersv1.WatchUserEventsRequest, stream grpc.ServerStreamingServer[usersv1.UserEvent]) error {
	return s.v2.watch(stream.Context(), usersv1.UserService_WatchUserEvents_FullMethodName, req, users.DefaultTenant, req.GetAfter(), func(ev users.Event) error {
		if ev.Type.IsGroupEvent() {
			return nil // v1 knows users only
		}
		return stream.Send(eventToProto(ev))
	})
}

// CreateWebhook implements users.v1.UserService. Its answer is the only
// one, with that of a rotation, that carries the secret.
func (s *Server) CreateWebhook(ctx context.Context, req *usersv1.CreateWebhookRequest) (*usersv1.Webhook, error) {
	in := webhookRequest(req.GetWebhook())
	in.Tenant = users.DefaultTenant
	created, err := s.v2.svc.CreateWebhook(ctx, in)
	if err != nil {
		return nil, err
	}
	return webhookToProto(created, true), nil
}

// GetWebhook implements users.v1.UserService.
func (s *Server) GetWebhook(ctx context.Context, req *usersv1.GetWebhookRequest) (*usersv1.Webhook, error) {
	w, err := s.v2.svc.GetWebhook(ctx, users.DefaultTenant, req.GetId())
	if err != nil {
		return nil, err
	}
	return webhookToProto(w, false), nil
}

// ListWebhooks implements users.v1.UserService.
func (s *Server) ListWebhooks(ctx context.Context, _ *usersv1.ListWebhooksRequest) (*usersv1.ListWebhooksResponse, error) {
	ws, err := s.v2.svc.ListWebhooks(ctx, users.DefaultTenant)
	if err != nil {
		return nil, err
	}
	res := &usersv1.ListWebhooksResponse{Webhooks: make([]*usersv1.Webhook, len(ws))}
	for i, w := range ws {
		res.Webhooks[i] = webhookToProto(w, false)
	}
	return res, nil
}

// UpdateWebhook implements users.v1.UserService; see updateWebhook.
func (s *Server) UpdateWebhook(ctx context.Context, req *usersv1.UpdateWebhookRequest) (*usersv1.Webhook, error) {
	w := req.GetWebhook()
	in := webhookRequest(w)
	in.Tenant = users.DefaultTenant
	updated, rotated, err := s.v2.updateWebhook(ctx, w.GetId(), in, req.GetUpdateMask().GetPaths(), "id")
	if err != nil {
		return nil, err
	}
	return webhookToProto(updated, rotated), nil
}

// DeleteWebhook implements users.v1.UserService.
func (s *Server) DeleteWebhook(ctx context.Context, req *usersv1.DeleteWebhookRequest) (*emptypb.Empty, error) {
	if err := s.v2.svc.DeleteWebhook(ctx, users.DefaultTenant, req.GetId()); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// ListWebhookDeliveries implements users.v1.UserService.
func (s *Server) ListWebhookDeliveries(ctx context.Context, req *usersv1.ListWebhookDeliveriesRequest) (*usersv1.ListWebhookDeliveriesResponse, error) {
	as, err := s.v2.svc.ListDeliveryAttempts(ctx, users.DefaultTenant, req.GetWebhookId(), int(req.GetPageSize()))
	if err != nil {
		return nil, err
	}
	res := &usersv1.ListWebhookDeliveriesResponse{Deliveries: make([]*usersv1.WebhookDelivery, len(as))}
	for i, a := range as {
		res.Deliveries[i] = deliveryToProto(a)
	}
	return res, nil
}

// userV1 returns the v1 form of a domain call's result.
func userV1(u *users.User, err error) (*usersv1.User, error) {
	if err != nil {
		return nil, err
	}
	return toProto(u), nil
}
