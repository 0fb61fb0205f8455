package grpcserver

import (
	"context"
	"math"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/names"
	"github.com/usersd/usersd/internal/users"
)

// ServerV2 implements users.v2.UserService on a users.Service. It is the
// implementation of the API: Server's users.v1 is a thin adapter over the
// same code (the unexported methods here, in domain terms), so a user
// created through one version is read, changed and replayed (same request
// id) through the other, with the same etags.
type ServerV2 struct {
	usersv2.UnimplementedUserServiceServer
	svc *users.Service

	// draining is closed by Drain; drainOnce guards it.
	draining  chan struct{}
	drainOnce sync.Once
}

var _ usersv2.UserServiceServer = (*ServerV2)(nil)

// NewV2 returns a ServerV2 backed by svc.
func NewV2(svc *users.Service) *ServerV2 {
	return &ServerV2{svc: svc, draining: make(chan struct{})}
}

// Drain ends the WatchUserEvents streams of both API versions served by
// this ServerV2 and the Server over it, at once and from then on, with
// UNAVAILABLE: clients reconnect (to another replica) and resume from
// their cursor. Call it when shutting down, before
// grpc.Server.GracefulStop, which would otherwise wait for the streams,
// which end only when their clients cancel. Unary calls are not affected.
// Drain may be called more than once.
func (s *ServerV2) Drain() { s.drainOnce.Do(func() { close(s.draining) }) }

// CreateUser implements users.v2.UserService.
func (s *ServerV2) CreateUser(ctx context.Context, req *usersv2.CreateUserRequest) (*usersv2.User, error) {
	tenant, err := parentOf(req.GetParent())
	if err != nil {
		return nil, err
	}
	in, err := fromProtoV2(req.GetUser())
	if err != nil {
		return nil, err
	}
	return userV2(s.createUser(ctx, tenant, in, req.GetRequestId()))
}

// createUser creates a user in the tenant under the request id of the
// request or of the Idempotency-Key metadata.
func (s *ServerV2) createUser(ctx context.Context, tenant string, in *users.User, requestID string) (*users.User, error) {
	rid, err := orMD(ctx, requestID, "request_id", MDIdempotencyKey)
	if err != nil {
		return nil, err
	}
	return s.svc.Create(ctx, users.CreateRequest{Tenant: tenant, User: in, RequestID: rid})
}

// GetUser implements users.v2.UserService.
func (s *ServerV2) GetUser(ctx context.Context, req *usersv2.GetUserRequest) (*usersv2.User, error) {
	tenant, id, err := scopedOf(names.Users, "id", req.GetName())
	if err != nil {
		return nil, err
	}
	return userV2(s.svc.Get(ctx, tenant, id))
}

// ListUsers implements users.v2.UserService.
func (s *ServerV2) ListUsers(ctx context.Context, req *usersv2.ListUsersRequest) (*usersv2.ListUsersResponse, error) {
	tenant, err := parentOf(req.GetParent())
	if err != nil {
		return nil, err
	}
	lr := listRequest(tenant, req)
	lr.Query, lr.ShowTotalSize = req.GetQuery(), req.GetShowTotalSize()
	res, err := s.svc.List(ctx, lr)
	if err != nil {
		return nil, err
	}
	return &usersv2.ListUsersResponse{
		Users: toProtosV2(res.Users), NextPageToken: res.NextPageToken,
		TotalSize: int32(min(res.TotalSize, math.MaxInt32)), TotalSizeEstimated: res.TotalEstimated,
	}, nil
}

// LookupUser implements users.v2.UserService.
func (s *ServerV2) LookupUser(ctx context.Context, req *usersv2.LookupUserRequest) (*usersv2.User, error) {
	tenant, err := parentOf(req.GetParent())
	if err != nil {
		return nil, err
	}
	return userV2(s.svc.Lookup(ctx, tenant, req.GetExternalId()))
}

// listParams is what the ListUsersRequest of every API version carries.
type listParams interface {
	GetPageSize() int32
	GetPageToken() string
	GetFilter() string
	GetOrderBy() string
	GetShowDeleted() bool
}

// listRequest returns the domain's form of a ListUsersRequest of any
// version, in the tenant.
func listRequest(tenant string, req listParams) users.ListRequest {
	return users.ListRequest{
		Tenant:      tenant,
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
	return userV2(s.updateUser(ctx, in, paths, req.GetUser().GetEtag(), false))
}

// updateUser changes the fields of in (of its tenant) named by paths,
// under the etag of the request or of the If-Match metadata.
//
// base: the caller's version has no profile fields (v1; see
// users.UpdateRequest.BaseFields).
func (s *ServerV2) updateUser(ctx context.Context, in *users.User, paths []string, etag string, base bool) (*users.User, error) {
	etag, err := orMD(ctx, etag, "user.etag", MDIfMatch)
	if err != nil {
		return nil, err
	}
	var tenant string
	if in != nil {
		tenant = in.Tenant
	}
	return s.svc.Update(ctx, users.UpdateRequest{Tenant: tenant, User: in, Paths: paths, Etag: etag, BaseFields: base})
}

// DeleteUser implements users.v2.UserService.
func (s *ServerV2) DeleteUser(ctx context.Context, req *usersv2.DeleteUserRequest) (*usersv2.User, error) {
	tenant, id, err := scopedOf(names.Users, "id", req.GetName())
	if err != nil {
		return nil, err
	}
	return userV2(s.lifecycle(ctx, s.svc.Delete, tenant, id, req.GetEtag()))
}

// UndeleteUser implements users.v2.UserService.
func (s *ServerV2) UndeleteUser(ctx context.Context, req *usersv2.UndeleteUserRequest) (*usersv2.User, error) {
	tenant, id, err := scopedOf(names.Users, "id", req.GetName())
	if err != nil {
		return nil, err
	}
	return userV2(s.lifecycle(ctx, s.svc.Undelete, tenant, id, req.GetEtag()))
}

// lifecycle moves the tenant's user with the id with change (Delete or
// Undelete), under the etag of the request or of the If-Match metadata.
func (s *ServerV2) lifecycle(ctx context.Context, change func(ctx context.Context, tenant, id, etag string) (*users.User, error), tenant, id, etag string) (*users.User, error) {
	etag, err := orMD(ctx, etag, "etag", MDIfMatch)
	if err != nil {
		return nil, err
	}
	return change(ctx, tenant, id, etag)
}

// BatchGetUsers implements users.v2.UserService.
func (s *ServerV2) BatchGetUsers(ctx context.Context, req *usersv2.BatchGetUsersRequest) (*usersv2.BatchGetUsersResponse, error) {
	tenant, ids, err := idsFromNames(req.GetParent(), req.GetNames())
	if err != nil {
		return nil, err
	}
	us, err := s.svc.BatchGet(ctx, tenant, ids)
	if err != nil {
		return nil, err
	}
	return &usersv2.BatchGetUsersResponse{Users: toProtosV2(us)}, nil
}

// ImportUsers implements users.v2.UserService. Each row is checked against
// the rules of User on its own (importRows): a row that breaks them
// reaches the domain rejected, so that it fails alone. The name and
// output-only fields of the rows are ignored.
func (s *ServerV2) ImportUsers(ctx context.Context, req *usersv2.ImportUsersRequest) (*usersv2.Operation, error) {
	tenant, err := parentOf(req.GetParent())
	if err != nil {
		return nil, err
	}
	op, err := s.importUsers(ctx, tenant, req.GetRequestId(), func() ([]users.ImportRow, error) {
		return importRows(req.GetUsers(), importRowV2, settableV2)
	})
	if err != nil {
		return nil, err
	}
	return operationToProtoV2(op), nil
}

// importUsers starts the import into the tenant of the rows that rows
// returns, under the request id of the request or of the Idempotency-Key
// metadata, which is checked first.
func (s *ServerV2) importUsers(ctx context.Context, tenant, requestID string, rows func() ([]users.ImportRow, error)) (*users.Operation, error) {
	rid, err := orMD(ctx, requestID, "request_id", MDIdempotencyKey)
	if err != nil {
		return nil, err
	}
	rs, err := rows()
	if err != nil {
		return nil, err
	}
	return s.svc.Import(ctx, users.ImportRequest{Tenant: tenant, Rows: rs, RequestID: rid})
}

// GetOperation implements users.v2.UserService.
func (s *ServerV2) GetOperation(ctx context.Context, req *usersv2.GetOperationRequest) (*usersv2.Operation, error) {
	tenant, id, err := scopedOf(names.Operations, "id", req.GetName())
	if err != nil {
		return nil, err
	}
	op, err := s.svc.GetOperation(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	return operationToProtoV2(op), nil
}

// ListUserEvents implements users.v2.UserService.
func (s *ServerV2) ListUserEvents(ctx context.Context, req *usersv2.ListUserEventsRequest) (*usersv2.ListUserEventsResponse, error) {
	tenant, err := parentOf(req.GetParent())
	if err != nil {
		return nil, err
	}
	page, err := s.svc.ListEvents(ctx, tenant, req.GetAfter(), int(req.GetPageSize()))
	if err != nil {
		return nil, err
	}
	res := &usersv2.ListUserEventsResponse{Events: make([]*usersv2.UserEvent, len(page.Events)), NextCursor: page.Next}
	for i, ev := range page.Events {
		res.Events[i] = eventToProtoV2(ev)
	}
	return res, nil
}

// WatchUserEvents implements users.v2.UserService; see watch.
func (s *ServerV2) WatchUserEvents(req *usersv2.WatchUserEventsRequest, stream grpc.ServerStreamingServer[usersv2.UserEvent]) error {
	tenant, err := parentOf(req.GetParent())
	if err != nil {
		return streamStatus(stream.Context(), usersv2.UserService_WatchUserEvents_FullMethodName, err)
	}
	return s.watch(stream.Context(), usersv2.UserService_WatchUserEvents_FullMethodName, req, tenant, req.GetAfter(), func(ev users.Event) error {
		return stream.Send(eventToProtoV2(ev))
	})
}

// CreateWebhook implements users.v2.UserService. Its answer is the only
// one, with that of a rotation, that carries the secret.
func (s *ServerV2) CreateWebhook(ctx context.Context, req *usersv2.CreateWebhookRequest) (*usersv2.Webhook, error) {
	tenant, err := parentOf(req.GetParent())
	if err != nil {
		return nil, err
	}
	in := webhookRequest(req.GetWebhook()) // the name is ignored
	in.Tenant, in.AllTenants = tenant, req.GetWebhook().GetAllTenants()
	created, err := s.svc.CreateWebhook(ctx, in)
	if err != nil {
		return nil, err
	}
	// A new subscription has no backlog yet.
	return webhookToProtoV2(created, true, users.WebhookBacklog{}, time.Now()), nil
}

// GetWebhook implements users.v2.UserService.
func (s *ServerV2) GetWebhook(ctx context.Context, req *usersv2.GetWebhookRequest) (*usersv2.Webhook, error) {
	tenant, id, err := scopedOf(names.Webhooks, "id", req.GetName())
	if err != nil {
		return nil, err
	}
	w, err := s.svc.GetWebhook(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	return s.webhookV2(ctx, w, false)
}

// ListWebhooks implements users.v2.UserService.
func (s *ServerV2) ListWebhooks(ctx context.Context, req *usersv2.ListWebhooksRequest) (*usersv2.ListWebhooksResponse, error) {
	tenant, err := parentOf(req.GetParent())
	if err != nil {
		return nil, err
	}
	ws, err := s.svc.ListWebhooks(ctx, tenant)
	if err != nil {
		return nil, err
	}
	backlogs, err := s.svc.WebhookBacklogs(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	res := &usersv2.ListWebhooksResponse{Webhooks: make([]*usersv2.Webhook, len(ws))}
	for i, w := range ws {
		res.Webhooks[i] = webhookToProtoV2(w, false, backlogs[w.ID], now)
	}
	return res, nil
}

// UpdateWebhook implements users.v2.UserService; see updateWebhook.
func (s *ServerV2) UpdateWebhook(ctx context.Context, req *usersv2.UpdateWebhookRequest) (*usersv2.Webhook, error) {
	w := req.GetWebhook()
	tenant, id, err := scopedOf(names.Webhooks, "webhook.id", w.GetName())
	if err != nil {
		return nil, err
	}
	if id == "" {
		// As the domain says it, before a mask of ignored fields only
		// looks the subscription up by its empty id.
		return nil, users.Invalid("webhook.id", "required")
	}
	in := webhookRequest(w)
	in.Tenant = tenant
	updated, rotated, err := s.updateWebhook(ctx, id, in, req.GetUpdateMask().GetPaths(), "name")
	if err != nil {
		return nil, err
	}
	return s.webhookV2(ctx, updated, rotated)
}

// webhookV2 is the v2 form of w, with its backlog as it is now.
func (s *ServerV2) webhookV2(ctx context.Context, w *users.Webhook, withSecret bool) (*usersv2.Webhook, error) {
	backlogs, err := s.svc.WebhookBacklogs(ctx)
	if err != nil {
		return nil, err
	}
	return webhookToProtoV2(w, withSecret, backlogs[w.ID], time.Now()), nil
}

// DeleteWebhook implements users.v2.UserService.
func (s *ServerV2) DeleteWebhook(ctx context.Context, req *usersv2.DeleteWebhookRequest) (*emptypb.Empty, error) {
	tenant, id, err := scopedOf(names.Webhooks, "id", req.GetName())
	if err != nil {
		return nil, err
	}
	if err := s.svc.DeleteWebhook(ctx, tenant, id); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// ListWebhookDeliveries implements users.v2.UserService.
func (s *ServerV2) ListWebhookDeliveries(ctx context.Context, req *usersv2.ListWebhookDeliveriesRequest) (*usersv2.ListWebhookDeliveriesResponse, error) {
	tenant, id, err := scopedOf(names.Webhooks, "webhook_id", req.GetParent())
	if err != nil {
		return nil, err
	}
	as, err := s.svc.ListDeliveryAttempts(ctx, tenant, id, int(req.GetPageSize()))
	if err != nil {
		return nil, err
	}
	res := &usersv2.ListWebhookDeliveriesResponse{Deliveries: make([]*usersv2.WebhookDelivery, len(as))}
	for i, a := range as {
		res.Deliveries[i] = deliveryToProtoV2(a)
	}
	return res, nil
}

// userV2 returns the v2 form of a domain call's result.
func userV2(u *users.User, err error) (*usersv2.User, error) {
	if err != nil {
		return nil, err
	}
	return toProtoV2(u), nil
}
