package grpcserver_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/grpcserver"
	"github.com/usersd/usersd/internal/inproc"
)

// TestV2Webhooks walks a subscription through its life through users.v2,
// as TestWebhooks does through v1: named webhooks/{id}, the secret shown
// on create and after a rotation only, updates that change the fields the
// mask names and ignore the name and output-only ones, and gone once
// deleted. v1 sees the same subscription.
func TestV2Webhooks(t *testing.T) {
	e := newEventsEnv(t)
	c, ctx := e.v2, context.Background()

	created, err := c.CreateWebhook(ctx, &usersv2.CreateWebhookRequest{Webhook: &usersv2.Webhook{
		Url:                 "https://example.com/hooks",
		EventTypes:          []string{"user.deleted", "user.created", "user.deleted"},
		Enabled:             true,
		Secret:              "whsec_mine",
		ConsecutiveFailures: 7,
	}})
	if err != nil {
		t.Fatalf("CreateWebhook err = %v", err)
	}
	name := created.GetName()
	id, ok := strings.CutPrefix(name, "webhooks/")
	if !ok || id == "" {
		t.Fatalf("CreateWebhook name = %q, want webhooks/{id}", name)
	}
	if !strings.HasPrefix(created.GetSecret(), "whsec_") || created.GetSecret() == "whsec_mine" {
		t.Errorf("CreateWebhook secret = %q, want a new whsec_ secret", created.GetSecret())
	}
	want := &usersv2.Webhook{
		Name:       name,
		Url:        "https://example.com/hooks",
		EventTypes: []string{"user.created", "user.deleted"},
		Enabled:    true,
	}
	ignoreTimes := protocmp.IgnoreFields(&usersv2.Webhook{}, "create_time", "update_time")
	if diff := cmp.Diff(want, created, protocmp.Transform(), ignoreTimes, protocmp.IgnoreFields(&usersv2.Webhook{}, "secret")); diff != "" {
		t.Errorf("CreateWebhook (-want +got):\n%s", diff)
	}

	got, err := c.GetWebhook(ctx, &usersv2.GetWebhookRequest{Name: name})
	if err != nil {
		t.Fatalf("GetWebhook err = %v", err)
	}
	if diff := cmp.Diff(want, got, protocmp.Transform(), ignoreTimes); diff != "" {
		t.Errorf("GetWebhook (-want +got), the secret must be empty:\n%s", diff)
	}
	v1, err := e.client.GetWebhook(ctx, &usersv1.GetWebhookRequest{Id: id})
	if err != nil || v1.GetUrl() != got.GetUrl() || !v1.GetCreateTime().AsTime().Equal(got.GetCreateTime().AsTime()) {
		t.Errorf("v1 GetWebhook(%s) = %v, %v; want the same subscription", id, v1, err)
	}
	list, err := c.ListWebhooks(ctx, &usersv2.ListWebhooksRequest{})
	if err != nil {
		t.Fatalf("ListWebhooks err = %v", err)
	}
	if diff := cmp.Diff([]*usersv2.Webhook{want}, list.GetWebhooks(), protocmp.Transform(), ignoreTimes); diff != "" {
		t.Errorf("ListWebhooks (-want +got), the secrets must be empty:\n%s", diff)
	}

	updated, err := c.UpdateWebhook(ctx, &usersv2.UpdateWebhookRequest{
		Webhook:    &usersv2.Webhook{Name: name, Url: "https://example.org/other", Enabled: false},
		UpdateMask: maskPaths("enabled", "name", "create_time", "consecutiveFailures"),
	})
	if err != nil {
		t.Fatalf("UpdateWebhook(enabled) err = %v", err)
	}
	want.Enabled = false
	if diff := cmp.Diff(want, updated, protocmp.Transform(), ignoreTimes); diff != "" {
		t.Errorf("UpdateWebhook(enabled) (-want +got), url unchanged and no secret:\n%s", diff)
	}

	same, err := c.UpdateWebhook(ctx, &usersv2.UpdateWebhookRequest{
		Webhook:    &usersv2.Webhook{Name: name, Url: "https://example.org/other"},
		UpdateMask: maskPaths("name", "update_time"),
	})
	if err != nil {
		t.Fatalf("UpdateWebhook(name only) err = %v", err)
	}
	if diff := cmp.Diff(want, same, protocmp.Transform(), ignoreTimes); diff != "" {
		t.Errorf("UpdateWebhook(name only) changed something (-want +got):\n%s", diff)
	}

	rotated, err := c.UpdateWebhook(ctx, &usersv2.UpdateWebhookRequest{
		Webhook:    &usersv2.Webhook{Name: name},
		UpdateMask: maskPaths("secret"),
	})
	if err != nil {
		t.Fatalf("UpdateWebhook(secret) err = %v", err)
	}
	if s := rotated.GetSecret(); !strings.HasPrefix(s, "whsec_") || s == created.GetSecret() {
		t.Errorf("rotated secret = %q, want a new whsec_ secret (was %q)", s, created.GetSecret())
	}
	if diff := cmp.Diff(want, rotated, protocmp.Transform(), ignoreTimes, protocmp.IgnoreFields(&usersv2.Webhook{}, "secret")); diff != "" {
		t.Errorf("UpdateWebhook(secret) changed more than the secret (-want +got):\n%s", diff)
	}

	star, err := c.UpdateWebhook(ctx, &usersv2.UpdateWebhookRequest{
		Webhook:    &usersv2.Webhook{Name: name, Url: "https://example.org/all", Enabled: true},
		UpdateMask: maskPaths("*"),
	})
	if err != nil {
		t.Fatalf("UpdateWebhook(*) err = %v", err)
	}
	want.Url, want.EventTypes, want.Enabled = "https://example.org/all", nil, true
	if diff := cmp.Diff(want, star, protocmp.Transform(), ignoreTimes); diff != "" {
		t.Errorf("UpdateWebhook(*) (-want +got):\n%s", diff)
	}

	if _, err := c.DeleteWebhook(ctx, &usersv2.DeleteWebhookRequest{Name: name}); err != nil {
		t.Fatalf("DeleteWebhook err = %v", err)
	}
	_, err = c.GetWebhook(ctx, &usersv2.GetWebhookRequest{Name: name})
	checkErr(t, "GetWebhook after DeleteWebhook", err, codes.NotFound, "")
	_, err = c.DeleteWebhook(ctx, &usersv2.DeleteWebhookRequest{Name: name})
	checkErr(t, "DeleteWebhook twice", err, codes.NotFound, "")
}

// TestV2WebhookErrors checks the errors of users.v2's webhook calls and
// the fields they name, v2's: name, webhook.name, parent.
func TestV2WebhookErrors(t *testing.T) {
	e := newEventsEnv(t)
	c, ctx := e.v2, context.Background()
	w, err := c.CreateWebhook(ctx, &usersv2.CreateWebhookRequest{Webhook: &usersv2.Webhook{Url: "https://example.com/hooks"}})
	if err != nil {
		t.Fatalf("CreateWebhook err = %v", err)
	}
	unknown := "webhooks/0190a5b4-0000-7000-8000-000000000000"
	tests := []struct {
		name  string
		req   proto.Message
		code  codes.Code
		field string
	}{
		{"create without webhook", &usersv2.CreateWebhookRequest{}, codes.InvalidArgument, "webhook"},
		{"create without url", &usersv2.CreateWebhookRequest{Webhook: &usersv2.Webhook{Enabled: true}}, codes.InvalidArgument, "webhook.url"},
		{"create with a relative url", &usersv2.CreateWebhookRequest{Webhook: &usersv2.Webhook{Url: "/hooks"}}, codes.InvalidArgument, "webhook.url"},
		{"create with a long url", &usersv2.CreateWebhookRequest{Webhook: &usersv2.Webhook{Url: "https://example.com/" + strings.Repeat("a", 2048)}}, codes.InvalidArgument, "webhook.url"},
		{"create with an unknown event type", &usersv2.CreateWebhookRequest{Webhook: &usersv2.Webhook{Url: "https://example.com/hooks", EventTypes: []string{"user.created", "user.renamed"}}}, codes.InvalidArgument, "webhook.event_types[1]"},
		{"create with a malformed name", &usersv2.CreateWebhookRequest{Webhook: &usersv2.Webhook{Name: "hooks/1", Url: "https://example.com/hooks"}}, codes.InvalidArgument, "webhook.name"},
		{"get with a malformed name", &usersv2.GetWebhookRequest{Name: "webhooks/nope"}, codes.InvalidArgument, "name"},
		{"get a user's name", &usersv2.GetWebhookRequest{Name: "users/0190a5b4-0000-7000-8000-000000000000"}, codes.InvalidArgument, "name"},
		{"get without a name", &usersv2.GetWebhookRequest{}, codes.InvalidArgument, "name"},
		{"get unknown", &usersv2.GetWebhookRequest{Name: unknown}, codes.NotFound, ""},
		{"update unknown", &usersv2.UpdateWebhookRequest{Webhook: &usersv2.Webhook{Name: unknown}, UpdateMask: maskPaths("enabled")}, codes.NotFound, ""},
		{"update without a name", &usersv2.UpdateWebhookRequest{Webhook: &usersv2.Webhook{Enabled: true}, UpdateMask: maskPaths("enabled")}, codes.InvalidArgument, "webhook.name"},
		{"update an unknown path", &usersv2.UpdateWebhookRequest{Webhook: &usersv2.Webhook{Name: w.GetName()}, UpdateMask: maskPaths("headers")}, codes.InvalidArgument, "update_mask"},
		{"update v1's id path", &usersv2.UpdateWebhookRequest{Webhook: &usersv2.Webhook{Name: w.GetName()}, UpdateMask: maskPaths("id")}, codes.InvalidArgument, "update_mask"},
		{"update the url to nothing", &usersv2.UpdateWebhookRequest{Webhook: &usersv2.Webhook{Name: w.GetName()}, UpdateMask: maskPaths("url")}, codes.InvalidArgument, "webhook.url"},
		{"delete with a malformed name", &usersv2.DeleteWebhookRequest{Name: "webhooks/"}, codes.InvalidArgument, "name"},
		{"delete unknown", &usersv2.DeleteWebhookRequest{Name: unknown}, codes.NotFound, ""},
		{"deliveries of unknown", &usersv2.ListWebhookDeliveriesRequest{Parent: unknown}, codes.NotFound, ""},
		{"deliveries with a malformed parent", &usersv2.ListWebhookDeliveriesRequest{Parent: "webhooks/x"}, codes.InvalidArgument, "parent"},
		{"deliveries, negative page size", &usersv2.ListWebhookDeliveriesRequest{Parent: w.GetName(), PageSize: -1}, codes.InvalidArgument, "page_size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, tc.name, callV2(ctx, c, tc.req), tc.code, tc.field)
		})
	}
}

// TestV2WebhookHandlersCheckNames calls users.v2's webhook methods without
// the protovalidate interceptor, which rejects malformed names first in
// usersd: the handlers and the domain check them again, and the fields
// they name are v2's (the Errors interceptor maps the domain's).
func TestV2WebhookHandlersCheckNames(t *testing.T) {
	ch := inproc.New(grpcserver.ErrorInterceptor)
	usersv2.RegisterUserServiceServer(ch, grpcserver.NewV2(newService(t)))
	c := usersv2.NewUserServiceClient(ch)
	tests := []struct {
		name   string
		req    proto.Message
		fields []string
	}{
		{"get not a uuid", &usersv2.GetWebhookRequest{Name: "webhooks/not-a-uuid"}, []string{"name"}},
		{"get other collection", &usersv2.GetWebhookRequest{Name: "users/x"}, []string{"name"}},
		{"get no name", &usersv2.GetWebhookRequest{}, []string{"name"}},
		{"delete not a uuid", &usersv2.DeleteWebhookRequest{Name: "webhooks/42"}, []string{"name"}},
		{"update no name", &usersv2.UpdateWebhookRequest{Webhook: &usersv2.Webhook{Url: "https://example.com/"}}, []string{"webhook.name"}},
		{"update no name, ignored paths only", &usersv2.UpdateWebhookRequest{Webhook: &usersv2.Webhook{}, UpdateMask: maskPaths("create_time")}, []string{"webhook.name"}},
		{"update other collection", &usersv2.UpdateWebhookRequest{Webhook: &usersv2.Webhook{Name: "hooks/x"}}, []string{"webhook.name"}},
		{"update not a uuid", &usersv2.UpdateWebhookRequest{Webhook: &usersv2.Webhook{Name: "webhooks/x"}, UpdateMask: maskPaths("enabled")}, []string{"webhook.name"}},
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

// TestV2ListWebhookDeliveries checks the v2 form of delivery attempts,
// newest first: the event by name, the attempt's time as create_time.
func TestV2ListWebhookDeliveries(t *testing.T) {
	e := newEventsEnv(t)
	ctx := context.Background()
	w, err := e.v2.CreateWebhook(ctx, &usersv2.CreateWebhookRequest{Webhook: &usersv2.Webhook{Url: "https://example.com/hooks", Enabled: true}})
	if err != nil {
		t.Fatalf("CreateWebhook err = %v", err)
	}
	id := strings.TrimPrefix(w.GetName(), "webhooks/")
	mustCreate(t, e.client, user("ada@example.com", "Ada"))
	evs, err := e.v2.ListUserEvents(ctx, &usersv2.ListUserEventsRequest{})
	if err != nil || len(evs.GetEvents()) != 1 {
		t.Fatalf("ListUserEvents = %v, %v; want Ada's user.created", evs, err)
	}
	ev := evs.GetEvents()[0]
	eventID := strings.TrimPrefix(ev.GetName(), "userEvents/")
	recordTwoAttempts(t, e.svc, id, eventID)
	res, err := e.v2.ListWebhookDeliveries(ctx, &usersv2.ListWebhookDeliveriesRequest{Parent: w.GetName()})
	if err != nil {
		t.Fatalf("ListWebhookDeliveries err = %v", err)
	}
	want := []*usersv2.WebhookDelivery{
		{Event: ev.GetName(), EventType: "user.created", Attempt: 2, Status: 204, Latency: durationpb.New(15 * time.Millisecond), Success: true},
		{Event: ev.GetName(), EventType: "user.created", Attempt: 1, Status: 503, Latency: durationpb.New(120 * time.Millisecond), Error: "HTTP 503"},
	}
	if diff := cmp.Diff(want, res.GetDeliveries(), protocmp.Transform(), protocmp.IgnoreFields(&usersv2.WebhookDelivery{}, "create_time")); diff != "" {
		t.Errorf("ListWebhookDeliveries (-want +got):\n%s", diff)
	}
	for _, d := range res.GetDeliveries() {
		if d.GetCreateTime() == nil {
			t.Errorf("delivery %v has no create_time", d)
		}
	}
	one, err := e.v2.ListWebhookDeliveries(ctx, &usersv2.ListWebhookDeliveriesRequest{Parent: w.GetName(), PageSize: 1})
	if err != nil || len(one.GetDeliveries()) != 1 {
		t.Errorf("ListWebhookDeliveries(page_size 1) = %v, %v; want one delivery", one.GetDeliveries(), err)
	}
}
