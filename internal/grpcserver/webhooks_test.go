package grpcserver_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/users"
)

func maskPaths(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }

// TestWebhooks walks a subscription through its life: the secret is shown
// on create and after a rotation only, updates change the fields the mask
// names and ignore output-only ones (and v2's name), and a deleted
// subscription is gone. Each version names the subscription its way
// (tenants/default/webhooks/{id} in v2), and both versions see the same
// subscription.
func TestWebhooks(t *testing.T) {
	forEachVersion(t, func(t *testing.T, e *eventsEnv, v apiVersion) {
		ctx := context.Background()
		created, err := v.createWebhook(ctx, &webhookFields{
			URL:                 "https://example.com/hooks",
			EventTypes:          []string{"user.deleted", "user.created", "user.deleted"},
			Enabled:             true,
			Secret:              "whsec_mine",
			ConsecutiveFailures: 7,
		})
		if err != nil {
			t.Fatalf("CreateWebhook err = %v", err)
		}
		ref := v.webhookRefOf(created)
		id, ok := refID(ref, v.webhookRef)
		if !ok {
			t.Fatalf("CreateWebhook name = %q, want %s", ref, v.webhookRef("{id}"))
		}
		if !strings.HasPrefix(created.GetSecret(), "whsec_") || created.GetSecret() == "whsec_mine" {
			t.Errorf("CreateWebhook secret = %q, want a new whsec_ secret", created.GetSecret())
		}
		fields := webhookFields{URL: "https://example.com/hooks", EventTypes: []string{"user.created", "user.deleted"}, Enabled: true}
		want := v.newWebhook(ref, fields)
		ignoreTimes := protocmp.IgnoreFields(want, "create_time", "update_time")
		ignoreSecret := protocmp.IgnoreFields(want, "secret")
		if diff := cmp.Diff(want, created, protocmp.Transform(), ignoreTimes, ignoreSecret); diff != "" {
			t.Errorf("CreateWebhook (-want +got):\n%s", diff)
		}
		if created.GetCreateTime() == nil || created.GetUpdateTime() == nil {
			t.Errorf("CreateWebhook times = %v, %v; want both set", created.GetCreateTime(), created.GetUpdateTime())
		}

		got, err := v.getWebhook(ctx, ref)
		if err != nil {
			t.Fatalf("GetWebhook err = %v", err)
		}
		if diff := cmp.Diff(want, got, protocmp.Transform(), ignoreTimes); diff != "" {
			t.Errorf("GetWebhook (-want +got), the secret must be empty:\n%s", diff)
		}
		for name, other := range e.versions() {
			w, err := other.getWebhook(ctx, other.webhookRef(id))
			if err != nil || w.GetUrl() != got.GetUrl() || !w.GetCreateTime().AsTime().Equal(got.GetCreateTime().AsTime()) {
				t.Errorf("%s GetWebhook(%s) = %v, %v; want the same subscription", name, other.webhookRef(id), w, err)
			}
		}
		list, err := v.listWebhooks(ctx)
		if err != nil {
			t.Fatalf("ListWebhooks err = %v", err)
		}
		if diff := cmp.Diff([]webhookMsg{want}, list, protocmp.Transform(), ignoreTimes); diff != "" {
			t.Errorf("ListWebhooks (-want +got), the secrets must be empty:\n%s", diff)
		}

		ignored := []string{"create_time", "consecutiveFailures"}
		if v.name() == "v2" {
			ignored = append(ignored, "name")
		}
		updated, err := v.updateWebhook(ctx, ref, webhookFields{URL: "https://example.org/other", Enabled: false}, append([]string{"enabled"}, ignored...)...)
		if err != nil {
			t.Fatalf("UpdateWebhook(enabled) err = %v", err)
		}
		fields.Enabled = false
		want = v.newWebhook(ref, fields)
		if diff := cmp.Diff(want, updated, protocmp.Transform(), ignoreTimes); diff != "" {
			t.Errorf("UpdateWebhook(enabled) (-want +got), url unchanged and no secret:\n%s", diff)
		}

		if v.name() == "v2" {
			same, err := v.updateWebhook(ctx, ref, webhookFields{URL: "https://example.org/other"}, "name", "update_time")
			if err != nil {
				t.Fatalf("UpdateWebhook(name only) err = %v", err)
			}
			if diff := cmp.Diff(want, same, protocmp.Transform(), ignoreTimes); diff != "" {
				t.Errorf("UpdateWebhook(name only) changed something (-want +got):\n%s", diff)
			}
		}

		rotated, err := v.updateWebhook(ctx, ref, webhookFields{}, "secret")
		if err != nil {
			t.Fatalf("UpdateWebhook(secret) err = %v", err)
		}
		if s := rotated.GetSecret(); !strings.HasPrefix(s, "whsec_") || s == created.GetSecret() {
			t.Errorf("rotated secret = %q, want a new whsec_ secret (was %q)", s, created.GetSecret())
		}
		if diff := cmp.Diff(want, rotated, protocmp.Transform(), ignoreTimes, ignoreSecret); diff != "" {
			t.Errorf("UpdateWebhook(secret) changed more than the secret (-want +got):\n%s", diff)
		}

		star, err := v.updateWebhook(ctx, ref, webhookFields{URL: "https://example.org/all", Enabled: true}, "*")
		if err != nil {
			t.Fatalf("UpdateWebhook(*) err = %v", err)
		}
		want = v.newWebhook(ref, webhookFields{URL: "https://example.org/all", Enabled: true})
		if diff := cmp.Diff(want, star, protocmp.Transform(), ignoreTimes); diff != "" {
			t.Errorf("UpdateWebhook(*) (-want +got):\n%s", diff)
		}

		if err := v.deleteWebhook(ctx, ref); err != nil {
			t.Fatalf("DeleteWebhook err = %v", err)
		}
		_, err = v.getWebhook(ctx, ref)
		checkErr(t, "GetWebhook after DeleteWebhook", err, codes.NotFound, "")
		err = v.deleteWebhook(ctx, ref)
		checkErr(t, "DeleteWebhook twice", err, codes.NotFound, "")
	})
}

// TestWebhookErrors checks the errors of the webhook calls and the fields
// they name, each version's: v2 names webhooks by name, webhook.name and
// parent, and has cases of its own for malformed names.
func TestWebhookErrors(t *testing.T) {
	forEachVersion(t, func(t *testing.T, e *eventsEnv, v apiVersion) {
		ctx := context.Background()
		w, err := v.createWebhook(ctx, &webhookFields{URL: "https://example.com/hooks"})
		if err != nil {
			t.Fatalf("CreateWebhook err = %v", err)
		}
		ref := v.webhookRefOf(w)
		unknown := v.webhookRef("0190a5b4-0000-7000-8000-000000000000")
		create := func(w *webhookFields) func() error {
			return func() error { _, err := v.createWebhook(ctx, w); return err }
		}
		update := func(ref string, paths ...string) func() error {
			return func() error { _, err := v.updateWebhook(ctx, ref, webhookFields{}, paths...); return err }
		}
		get := func(ref string) func() error {
			return func() error { _, err := v.getWebhook(ctx, ref); return err }
		}
		deliveries := func(ref string, pageSize int32) func() error {
			return func() error { _, err := v.listWebhookDeliveries(ctx, ref, pageSize); return err }
		}
		del := func(ref string) func() error {
			return func() error { return v.deleteWebhook(ctx, ref) }
		}
		refField := map[string]string{"v1": "id", "v2": "name"}[v.name()]
		type errCase struct {
			name  string
			call  func() error
			code  codes.Code
			field string
		}
		tests := []errCase{
			{"create without webhook", create(nil), codes.InvalidArgument, "webhook"},
			{"create without url", create(&webhookFields{Enabled: true}), codes.InvalidArgument, "webhook.url"},
			{"create with a relative url", create(&webhookFields{URL: "/hooks"}), codes.InvalidArgument, "webhook.url"},
			{"create with a long url", create(&webhookFields{URL: "https://example.com/" + strings.Repeat("a", 2048)}), codes.InvalidArgument, "webhook.url"},
			{"create with an unknown event type", create(&webhookFields{URL: "https://example.com/hooks", EventTypes: []string{"user.created", "user.renamed"}}), codes.InvalidArgument, "webhook.event_types[1]"},
			{"get with a malformed " + refField, get(v.webhookRef("nope")), codes.InvalidArgument, refField},
			{"get unknown", get(unknown), codes.NotFound, ""},
			{"update unknown", update(unknown, "enabled"), codes.NotFound, ""},
			{"update an unknown path", update(ref, "headers"), codes.InvalidArgument, "update_mask"},
			{"update the url to nothing", update(ref, "url"), codes.InvalidArgument, "webhook.url"},
			{"deliveries of unknown", deliveries(unknown, 0), codes.NotFound, ""},
			{"deliveries, negative page size", deliveries(ref, -1), codes.InvalidArgument, "page_size"},
		}
		if v.name() == "v2" {
			call := func(req proto.Message) func() error {
				return func() error { return callV2(ctx, e.v2, req) }
			}
			tests = append(tests, []errCase{
				{"create with a malformed name", call(&usersv2.CreateWebhookRequest{Webhook: &usersv2.Webhook{Name: "hooks/1", Url: "https://example.com/hooks"}}), codes.InvalidArgument, "webhook.name"},
				{"get a user's name", get("users/0190a5b4-0000-7000-8000-000000000000"), codes.InvalidArgument, "name"},
				{"get without a name", get(""), codes.InvalidArgument, "name"},
				{"update without a name", call(&usersv2.UpdateWebhookRequest{Webhook: &usersv2.Webhook{Enabled: true}, UpdateMask: maskPaths("enabled")}), codes.InvalidArgument, "webhook.name"},
				{"update v1's id path", update(ref, "id"), codes.InvalidArgument, "update_mask"},
				{"delete with a malformed name", del("webhooks/"), codes.InvalidArgument, "name"},
				{"delete unknown", del(unknown), codes.NotFound, ""},
				{"deliveries with a malformed parent", deliveries("webhooks/x", 0), codes.InvalidArgument, "parent"},
			}...)
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				checkErr(t, tc.name, tc.call(), tc.code, tc.field)
			})
		}
	})
}

// TestListWebhookDeliveries checks the conversion of delivery attempts,
// newest first, with the event by its ref (userEvents/{id} in v2) and
// the attempt's time (v2's create_time).
func TestListWebhookDeliveries(t *testing.T) {
	forEachVersion(t, func(t *testing.T, e *eventsEnv, v apiVersion) {
		ctx := context.Background()
		w, err := v.createWebhook(ctx, &webhookFields{URL: "https://example.com/hooks", Enabled: true})
		if err != nil {
			t.Fatalf("CreateWebhook err = %v", err)
		}
		ref := v.webhookRefOf(w)
		id, _ := refID(ref, v.webhookRef)
		mustCreate(t, e.client, user("ada@example.com", "Ada"))
		evs, _, err := v.listUserEvents(ctx, "", 0)
		if err != nil || len(evs) != 1 {
			t.Fatalf("ListUserEvents = %+v, %v; want Ada's user.created", summarize(evs), err)
		}
		ev := evs[0]
		eventID, _ := refID(ev.Ref, v.eventRef)
		recordTwoAttempts(t, e.svc, id, eventID)
		res, err := v.listWebhookDeliveries(ctx, ref, 0)
		if err != nil {
			t.Fatalf("ListWebhookDeliveries err = %v", err)
		}
		want := []webhookDelivery{
			{Event: ev.Ref, EventType: "user.created", Attempt: 2, Status: 204, Latency: durationpb.New(15 * time.Millisecond), Success: true},
			{Event: ev.Ref, EventType: "user.created", Attempt: 1, Status: 503, Latency: durationpb.New(120 * time.Millisecond), Error: "HTTP 503"},
		}
		if diff := cmp.Diff(want, res, protocmp.Transform(), cmpopts.IgnoreFields(webhookDelivery{}, "Time")); diff != "" {
			t.Errorf("ListWebhookDeliveries (-want +got):\n%s", diff)
		}
		for _, d := range res {
			if d.Time == nil {
				t.Errorf("delivery %+v has no time", d)
			}
		}
		one, err := v.listWebhookDeliveries(ctx, ref, 1)
		if err != nil || len(one) != 1 {
			t.Errorf("ListWebhookDeliveries(page_size 1) = %v, %v; want one delivery", one, err)
		}
	})
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
