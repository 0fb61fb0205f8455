package grpcserver

import (
	"context"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/internal/users"
)

// CreateWebhook implements users.v1.UserService. Its answer is the only
// one, with that of a rotation, that carries the secret.
func (s *Server) CreateWebhook(ctx context.Context, req *usersv1.CreateWebhookRequest) (*usersv1.Webhook, error) {
	w := req.GetWebhook()
	created, err := s.svc.CreateWebhook(ctx, users.WebhookRequest{
		URL:        w.GetUrl(),
		EventTypes: eventTypes(w.GetEventTypes()),
		Enabled:    w.GetEnabled(),
	})
	if err != nil {
		return nil, err
	}
	return webhookToProto(created, true), nil
}

// GetWebhook implements users.v1.UserService.
func (s *Server) GetWebhook(ctx context.Context, req *usersv1.GetWebhookRequest) (*usersv1.Webhook, error) {
	w, err := s.svc.GetWebhook(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return webhookToProto(w, false), nil
}

// ListWebhooks implements users.v1.UserService.
func (s *Server) ListWebhooks(ctx context.Context, _ *usersv1.ListWebhooksRequest) (*usersv1.ListWebhooksResponse, error) {
	ws, err := s.svc.ListWebhooks(ctx)
	if err != nil {
		return nil, err
	}
	res := &usersv1.ListWebhooksResponse{Webhooks: make([]*usersv1.Webhook, len(ws))}
	for i, w := range ws {
		res.Webhooks[i] = webhookToProto(w, false)
	}
	return res, nil
}

// webhookOutputOnly are the update mask paths UpdateWebhook ignores, by
// proto and JSON name: the id, which names the subscription, and the
// output-only fields. secret is not among them: it rotates the secret.
var webhookOutputOnly = map[string]bool{
	"id":                   true,
	"consecutive_failures": true, "consecutiveFailures": true,
	"disabled_reason": true, "disabledReason": true,
	"create_time": true, "createTime": true,
	"update_time": true, "updateTime": true,
}

// UpdateWebhook implements users.v1.UserService. "*" in the mask stands
// for url, event_types and enabled.
func (s *Server) UpdateWebhook(ctx context.Context, req *usersv1.UpdateWebhookRequest) (*usersv1.Webhook, error) {
	w := req.GetWebhook()
	var paths []string
	rotate := false
	for _, p := range req.GetUpdateMask().GetPaths() {
		switch {
		case webhookOutputOnly[p]:
			continue
		case p == "*":
			paths = append(paths, "url", "event_types", "enabled")
			continue
		case p == "secret":
			rotate = true
		}
		paths = append(paths, p)
	}
	if len(paths) == 0 && len(req.GetUpdateMask().GetPaths()) > 0 {
		// Only output-only fields: nothing to change, but the domain's
		// empty mask would mean url, event_types and enabled.
		return s.GetWebhook(ctx, &usersv1.GetWebhookRequest{Id: w.GetId()})
	}
	updated, err := s.svc.UpdateWebhook(ctx, w.GetId(), users.WebhookRequest{
		URL:        w.GetUrl(),
		EventTypes: eventTypes(w.GetEventTypes()),
		Enabled:    w.GetEnabled(),
		Paths:      paths,
	})
	if err != nil {
		return nil, err
	}
	return webhookToProto(updated, rotate), nil
}

// DeleteWebhook implements users.v1.UserService.
func (s *Server) DeleteWebhook(ctx context.Context, req *usersv1.DeleteWebhookRequest) (*emptypb.Empty, error) {
	if err := s.svc.DeleteWebhook(ctx, req.GetId()); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// ListWebhookDeliveries implements users.v1.UserService.
func (s *Server) ListWebhookDeliveries(ctx context.Context, req *usersv1.ListWebhookDeliveriesRequest) (*usersv1.ListWebhookDeliveriesResponse, error) {
	as, err := s.svc.ListDeliveryAttempts(ctx, req.GetWebhookId(), int(req.GetPageSize()))
	if err != nil {
		return nil, err
	}
	res := &usersv1.ListWebhookDeliveriesResponse{Deliveries: make([]*usersv1.WebhookDelivery, len(as))}
	for i, a := range as {
		res.Deliveries[i] = &usersv1.WebhookDelivery{
			EventId:   a.EventID,
			EventType: string(a.EventType),
			Attempt:   int32(a.Attempt),
			Status:    int32(a.Status),
			Latency:   durationpb.New(a.Latency),
			Success:   a.Success,
			Error:     a.Error,
			Time:      timestamppb.New(a.Time),
		}
	}
	return res, nil
}

// webhookToProto returns the API form of a subscription; with its secret
// only when withSecret is true.
func webhookToProto(w *users.Webhook, withSecret bool) *usersv1.Webhook {
	pb := &usersv1.Webhook{
		Id:                  w.ID,
		Url:                 w.URL,
		Enabled:             w.Enabled,
		ConsecutiveFailures: int32(w.ConsecutiveFailures),
		DisabledReason:      w.DisabledReason,
		CreateTime:          timestamppb.New(w.CreateTime),
		UpdateTime:          timestamppb.New(w.UpdateTime),
	}
	for _, t := range w.EventTypes {
		pb.EventTypes = append(pb.EventTypes, string(t))
	}
	if withSecret {
		pb.Secret = w.Secret
	}
	return pb
}

func eventTypes(in []string) []users.EventType {
	if len(in) == 0 {
		return nil
	}
	out := make([]users.EventType, len(in))
	for i, t := range in {
		out[i] = users.EventType(t)
	}
	return out
}
