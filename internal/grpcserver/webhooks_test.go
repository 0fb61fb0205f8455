package grpcserver_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/internal/users"
)

func maskPaths(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }

// TestWebhooks walks a subscription through its life: the secret is shown
// on create and after a rotation only, updates change the fields the mask
// names and ignore output-only ones, and a deleted subscription is gone.
func TestWebhooks(t *testing.T) {
	e := newEventsEnv(t)
	c, ctx := e.client, context.Background()

	created, err := c.CreateWebhook(ctx, &usersv1.CreateWebhookRequest{Webhook: &usersv1.Webhook{
		Url:                 "https://example.com/hooks",
		EventTypes:          []string{"user.deleted", "user.created", "user.deleted"},
		Enabled:             true,
		Secret:              "whsec_mine",
		ConsecutiveFailures: 7,
	}})
	if err != nil {
		t.Fatalf("CreateWebhook err = %v", err)
	}
	if !strings.HasPrefix(created.GetSecret(), "whsec_") || created.GetSecret() == "whsec_mine" {
		t.Errorf("CreateWebhook secret = %q, want a new whsec_ secret", created.GetSecret())
	}
	want := &usersv1.Webhook{
		Id:         created.GetId(),
		Url:        "https://example.com/hooks",
		EventTypes: []string{"user.created", "user.deleted"},
		Enabled:    true,
	}
	ignoreTimes := protocmp.IgnoreFields(&usersv1.Webhook{}, "create_time", "update_time")
	if diff := cmp.Diff(want, created, protocmp.Transform(), ignoreTimes, protocmp.IgnoreFields(&usersv1.Webhook{}, "secret")); diff != "" {
		t.Errorf("CreateWebhook (-want +got):\n%s", diff)
	}
	if created.GetCreateTime() == nil || created.GetUpdateTime() == nil {
		t.Errorf("CreateWebhook times = %v, %v; want both set", created.GetCreateTime(), created.GetUpdateTime())
	}

	got, err := c.GetWebhook(ctx, &usersv1.GetWebhookRequest{Id: created.GetId()})
	if err != nil {
		t.Fatalf("GetWebhook err = %v", err)
	}
	if diff := cmp.Diff(want, got, protocmp.Transform(), ignoreTimes); diff != "" {
		t.Errorf("GetWebhook (-want +got), the secret must be empty:\n%s", diff)
	}
	list, err := c.ListWebhooks(ctx, &usersv1.ListWebhooksRequest{})
	if err != nil {
		t.Fatalf("ListWebhooks err = %v", err)
	}
	if diff := cmp.Diff([]*usersv1.Webhook{want}, list.GetWebhooks(), protocmp.Transform(), ignoreTimes); diff != "" {
		t.Errorf("ListWebhooks (-want +got), the secrets must be empty:\n%s", diff)
	}

	updated, err := c.UpdateWebhook(ctx, &usersv1.UpdateWebhookRequest{
		Webhook:    &usersv1.Webhook{Id: created.GetId(), Url: "https://example.org/other", Enabled: false},
		UpdateMask: maskPaths("enabled", "create_time", "consecutiveFailures"),
	})
	if err != nil {
		t.Fatalf("UpdateWebhook(enabled) err = %v", err)
	}
	want.Enabled = false
	if diff := cmp.Diff(want, updated, protocmp.Transform(), ignoreTimes); diff != "" {
		t.Errorf("UpdateWebhook(enabled) (-want +got), url unchanged and no secret:\n%s", diff)
	}

	rotated, err := c.UpdateWebhook(ctx, &usersv1.UpdateWebhookRequest{
		Webhook:    &usersv1.Webhook{Id: created.GetId()},
		UpdateMask: maskPaths("secret"),
	})
	if err != nil {
		t.Fatalf("UpdateWebhook(secret) err = %v", err)
	}
	if s := rotated.GetSecret(); !strings.HasPrefix(s, "whsec_") || s == created.GetSecret() {
		t.Errorf("rotated secret = %q, want a new whsec_ secret (was %q)", s, created.GetSecret())
	}
	if diff := cmp.Diff(want, rotated, protocmp.Transform(), ignoreTimes, protocmp.IgnoreFields(&usersv1.Webhook{}, "secret")); diff != "" {
		t.Errorf("UpdateWebhook(secret) changed more than the secret (-want +got):\n%s", diff)
	}

	star, err := c.UpdateWebhook(ctx, &usersv1.UpdateWebhookRequest{
		Webhook:    &usersv1.Webhook{Id: created.GetId(), Url: "https://example.org/all", Enabled: true},
		UpdateMask: maskPaths("*"),
	})
	if err != nil {
		t.Fatalf("UpdateWebhook(*) err = %v", err)
	}
	want.Url, want.EventTypes, want.Enabled = "https://example.org/all", nil, true
	if diff := cmp.Diff(want, star, protocmp.Transform(), ignoreTimes); diff != "" {
		t.Errorf("UpdateWebhook(*) (-want +got):\n%s", diff)
	}

	if _, err := c.DeleteWebhook(ctx, &usersv1.DeleteWebhookRequest{Id: created.GetId()}); err != nil {
		t.Fatalf("DeleteWebhook err = %v", err)
	}
	_, err = c.GetWebhook(ctx, &usersv1.GetWebhookRequest{Id: created.GetId()})
	checkErr(t, "GetWebhook after DeleteWebhook", err, codes.NotFound, "")
	_, err = c.DeleteWebhook(ctx, &usersv1.DeleteWebhookRequest{Id: created.GetId()})
	checkErr(t, "DeleteWebhook twice", err, codes.NotFound, "")
}

func TestWebhookErrors(t *testing.T) {
	e := newEventsEnv(t)
	c, ctx := e.client, context.Background()
	w, err := c.CreateWebhook(ctx, &usersv1.CreateWebhookRequest{Webhook: &usersv1.Webhook{Url: "https://example.com/hooks"}})
	if err != nil {
		t.Fatalf("CreateWebhook err = %v", err)
	}
	unknown := "0190a5b4-0000-7000-8000-000000000000"
	tests := []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"create without webhook", func() error {
			_, err := c.CreateWebhook(ctx, &usersv1.CreateWebhookRequest{})
			return err
		}, codes.InvalidArgument, "webhook"},
		{"create without url", func() error {
			_, err := c.CreateWebhook(ctx, &usersv1.CreateWebhookRequest{Webhook: &usersv1.Webhook{Enabled: true}})
			return err
		}, codes.InvalidArgument, "webhook.url"},
		{"create with a relative url", func() error {
			_, err := c.CreateWebhook(ctx, &usersv1.CreateWebhookRequest{Webhook: &usersv1.Webhook{Url: "/hooks"}})
			return err
		}, codes.InvalidArgument, "webhook.url"},
		{"create with a long url", func() error {
			_, err := c.CreateWebhook(ctx, &usersv1.CreateWebhookRequest{Webhook: &usersv1.Webhook{Url: "https://example.com/" + strings.Repeat("a", 2048)}})
			return err
		}, codes.InvalidArgument, "webhook.url"},
		{"create with an unknown event type", func() error {
			_, err := c.CreateWebhook(ctx, &usersv1.CreateWebhookRequest{Webhook: &usersv1.Webhook{Url: "https://example.com/hooks", EventTypes: []string{"user.created", "user.renamed"}}})
			return err
		}, codes.InvalidArgument, "webhook.event_types[1]"},
		{"get with a malformed id", func() error {
			_, err := c.GetWebhook(ctx, &usersv1.GetWebhookRequest{Id: "nope"})
			return err
		}, codes.InvalidArgument, "id"},
		{"get unknown", func() error {
			_, err := c.GetWebhook(ctx, &usersv1.GetWebhookRequest{Id: unknown})
			return err
		}, codes.NotFound, ""},
		{"update unknown", func() error {
			_, err := c.UpdateWebhook(ctx, &usersv1.UpdateWebhookRequest{Webhook: &usersv1.Webhook{Id: unknown}, UpdateMask: maskPaths("enabled")})
			return err
		}, codes.NotFound, ""},
		{"update an unknown path", func() error {
			_, err := c.UpdateWebhook(ctx, &usersv1.UpdateWebhookRequest{Webhook: &usersv1.Webhook{Id: w.GetId()}, UpdateMask: maskPaths("headers")})
			return err
		}, codes.InvalidArgument, "update_mask"},
		{"update the url to nothing", func() error {
			_, err := c.UpdateWebhook(ctx, &usersv1.UpdateWebhookRequest{Webhook: &usersv1.Webhook{Id: w.GetId()}, UpdateMask: maskPaths("url")})
			return err
		}, codes.InvalidArgument, "webhook.url"},
		{"deliveries of unknown", func() error {
			_, err := c.ListWebhookDeliveries(ctx, &usersv1.ListWebhookDeliveriesRequest{WebhookId: unknown})
			return err
		}, codes.NotFound, ""},
		{"deliveries, negative page size", func() error {
			_, err := c.ListWebhookDeliveries(ctx, &usersv1.ListWebhookDeliveriesRequest{WebhookId: w.GetId(), PageSize: -1})
			return err
		}, codes.InvalidArgument, "page_size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, tc.name, tc.call(), tc.code, tc.field)
		})
	}
}

// TestListWebhookDeliveries checks the conversion of delivery attempts,
// newest first.
func TestListWebhookDeliveries(t *testing.T) {
	e := newEventsEnv(t)
	ctx := context.Background()
	w, err := e.client.CreateWebhook(ctx, &usersv1.CreateWebhookRequest{Webhook: &usersv1.Webhook{Url: "https://example.com/hooks", Enabled: true}})
	if err != nil {
		t.Fatalf("CreateWebhook err = %v", err)
	}
	mustCreate(t, e.client, user("ada@example.com", "Ada"))
	evs, err := e.client.ListUserEvents(ctx, &usersv1.ListUserEventsRequest{})
	if err != nil || len(evs.GetEvents()) != 1 {
		t.Fatalf("ListUserEvents = %v, %v; want Ada's user.created", evs, err)
	}
	ev := evs.GetEvents()[0]
	recordTwoAttempts(t, e.svc, w.GetId(), ev.GetId())
	res, err := e.client.ListWebhookDeliveries(ctx, &usersv1.ListWebhookDeliveriesRequest{WebhookId: w.GetId()})
	if err != nil {
		t.Fatalf("ListWebhookDeliveries err = %v", err)
	}
	want := []*usersv1.WebhookDelivery{
		{EventId: ev.GetId(), EventType: "user.created", Attempt: 2, Status: 204, Latency: durationpb.New(15 * time.Millisecond), Success: true},
		{EventId: ev.GetId(), EventType: "user.created", Attempt: 1, Status: 503, Latency: durationpb.New(120 * time.Millisecond), Error: "HTTP 503"},
	}
	if diff := cmp.Diff(want, res.GetDeliveries(), protocmp.Transform(), protocmp.IgnoreFields(&usersv1.WebhookDelivery{}, "time")); diff != "" {
		t.Errorf("ListWebhookDeliveries (-want +got):\n%s", diff)
	}
	for _, d := range res.GetDeliveries() {
		if d.GetTime() == nil {
			t.Errorf("delivery %v has no time", d)
		}
	}
	one, err := e.client.ListWebhookDeliveries(ctx, &usersv1.ListWebhookDeliveriesRequest{WebhookId: w.GetId(), PageSize: 1})
	if err != nil || len(one.GetDeliveries()) != 1 {
		t.Errorf("ListWebhookDeliveries(page_size 1) = %v, %v; want one delivery", one.GetDeliveries(), err)
	}
}

// recordTwoAttempts records two delivery attempts of the event to the
// subscription: a 503 after 120 ms, then a 204 after 15 ms, a millisecond
// apart so that their order is known.
func recordTwoAttempts(t *testing.T, svc *users.Service, webhookID, eventID string) {
	t.Helper()
	for _, a := range []users.DeliveryAttempt{
		{WebhookID: webhookID, EventID: eventID, EventType: users.EventCreated, Attempt: 1, Status: 503, Latency: 120 * time.Millisecond, Error: "HTTP 503"},
		{WebhookID: webhookID, EventID: eventID, EventType: users.EventCreated, Attempt: 2, Status: 204, Latency: 15 * time.Millisecond, Success: true},
	} {
		if _, err := svc.RecordDeliveryAttempt(context.Background(), a); err != nil {
			t.Fatalf("RecordDeliveryAttempt err = %v", err)
		}
		time.Sleep(time.Millisecond) // distinct times, for the order
	}
}
