package userstest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/usersd/usersd/internal/users"
)

// WebhookStore is what the webhook tests use: the subscriptions, users
// whose changes make the events to dispatch, the feed they are read from,
// the dispatcher's position, and the tenants all of them belong to.
type WebhookStore interface {
	users.WebhookStore
	users.UserStore
	users.EventStore
	users.SinkStore
	users.TenantStore
}

// TestWebhookStore is the part of the suite for users.WebhookStore.
// newStore must return an empty, migrated store that lives until the test
// ends, made with a fake job queue that forwards what DispatchEvents
// enqueues to the returned Jobs.
func TestWebhookStore(t *testing.T, newStore func(t *testing.T) (WebhookStore, *Jobs)) {
	run(t, newStore, []test[WebhookStore]{
		{"WebhookCreateGetList", storeOnly(testWebhookCreateGetList)},
		{"WebhookNotFound", storeOnly(testWebhookNotFound)},
		{"WebhookUpdate", storeOnly(testWebhookUpdate)},
		{"WebhookDelete", storeOnly(testWebhookDelete)},
		{"WebhookLimit", storeOnly(testWebhookLimit)},
		{"DeliveryAttempts", storeOnly(testDeliveryAttempts)},
		{"DeliveryDisable", storeOnly(testDeliveryDisable)},
		{"DeliveryBatch", storeOnly(testDeliveryBatch)},
		{"Dispatch", testDispatch},
		{"DispatchNoSubscribers", testDispatchNoSubscribers},
		{"DispatchEnqueueFails", testDispatchEnqueueFails},
		// Tenants: tenants_isolation.go.
		{"TenantWebhookIsolation", storeOnly(testTenantWebhookIsolation)},
		{"TenantWebhookMissingTenant", storeOnly(testTenantWebhookMissingTenant)},
		{"TenantDispatch", testTenantDispatch},
		{"TenantPurgeWebhooks", storeOnly(testTenantPurgeWebhooks)},
	})
}

// NewWebhook returns an enabled subscription of the default tenant that is
// not stored yet, to events of the given types (none: every type); n makes
// its URL and times distinct.
func NewWebhook(n int, types ...users.EventType) *users.Webhook {
	ts := base.Add(time.Duration(n) * time.Minute)
	return &users.Webhook{
		Tenant:     users.DefaultTenant,
		ID:         users.NewID(),
		URL:        fmt.Sprintf("https://hooks.example.com/%d", n),
		EventTypes: types,
		Secret:     fmt.Sprintf("whsec_secret%d", n),
		Enabled:    true,
		CreateTime: ts,
		UpdateTime: ts,
	}
}

func createWebhook(t *testing.T, s users.WebhookStore, w *users.Webhook) *users.Webhook {
	t.Helper()
	got, err := s.CreateWebhook(context.Background(), w)
	if err != nil {
		t.Fatalf("CreateWebhook(%s) err = %v", w.URL, err)
	}
	return got
}

func getWebhook(t *testing.T, s users.WebhookStore, id string) *users.Webhook {
	t.Helper()
	got, err := s.GetWebhook(context.Background(), users.DefaultTenant, id)
	if err != nil {
		t.Fatalf("GetWebhook(%s) err = %v", id, err)
	}
	return got
}

func webhookIDs(ws []*users.Webhook) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.ID
	}
	return out
}

// checkLastAttempts checks the last attempt times of got, a subscription
// a store returned, and that GetWebhook and ListWebhooks read the same:
// success and failure as the store keeps them (users.Truncate; the zero
// time for none), in UTC.
func checkLastAttempts(t *testing.T, s users.WebhookStore, what string, got *users.Webhook, success, failure time.Time) {
	t.Helper()
	if !success.IsZero() {
		success = users.Truncate(success)
	}
	if !failure.IsZero() {
		failure = users.Truncate(failure)
	}
	ws, err := s.ListWebhooks(context.Background(), users.DefaultTenant)
	if err != nil {
		t.Fatalf("%s: ListWebhooks err = %v", what, err)
	}
	i := slices.IndexFunc(ws, func(w *users.Webhook) bool { return w.ID == got.ID })
	if i < 0 {
		t.Fatalf("%s: ListWebhooks lacks webhook %s", what, got.ID)
	}
	for _, r := range []struct {
		by string
		w  *users.Webhook
	}{{"returned", got}, {"GetWebhook", getWebhook(t, s, got.ID)}, {"ListWebhooks", ws[i]}} {
		for _, tt := range []struct {
			field     string
			got, want time.Time
		}{{"LastSuccessTime", r.w.LastSuccessTime, success}, {"LastFailureTime", r.w.LastFailureTime, failure}} {
			if !tt.got.Equal(tt.want) || tt.got.IsZero() != tt.want.IsZero() || (!tt.got.IsZero() && tt.got.Location() != time.UTC) {
				t.Errorf("%s: %s %s = %v, want %v (in UTC; zero for none)", what, r.by, tt.field, tt.got, tt.want)
			}
		}
	}
}

func testWebhookCreateGetList(t *testing.T, s WebhookStore) {
	ctx := context.Background()
	if ws, err := s.ListWebhooks(ctx, users.DefaultTenant); err != nil || len(ws) != 0 {
		t.Fatalf("ListWebhooks(empty store) = %v, %v; want none", ws, err)
	}
	late := NewWebhook(3)
	typed := NewWebhook(1, users.EventCreated, users.EventUpdated)
	typed.ConsecutiveFailures, typed.DisabledReason, typed.Enabled = 7, "why not", false
	// Two created at the same time list by id.
	same1, same2 := NewWebhook(2), NewWebhook(2)
	same1.EventTypes = []users.EventType{} // reads back nil
	for _, w := range []*users.Webhook{late, same2, typed, same1} {
		got := createWebhook(t, s, w)
		want := w.Clone()
		if len(want.EventTypes) == 0 {
			want.EventTypes = nil
		}
		if diff := gocmp.Diff(want, got); diff != "" {
			t.Errorf("CreateWebhook returned (-want +got):\n%s", diff)
		}
		if diff := gocmp.Diff(want, getWebhook(t, s, w.ID)); diff != "" {
			t.Errorf("GetWebhook (-want +got):\n%s", diff)
		}
		// No attempt yet: no last attempt times.
		checkLastAttempts(t, s, "new webhook "+w.URL, got, time.Time{}, time.Time{})
	}
	first, second := same1, same2
	if second.ID < first.ID {
		first, second = second, first
	}
	ws, err := s.ListWebhooks(ctx, users.DefaultTenant)
	if err != nil {
		t.Fatalf("ListWebhooks err = %v", err)
	}
	if diff := gocmp.Diff(webhookIDs([]*users.Webhook{typed, first, second, late}), webhookIDs(ws)); diff != "" {
		t.Errorf("ListWebhooks order (-want +got):\n%s", diff)
	}
	if diff := gocmp.Diff(typed.EventTypes, ws[0].EventTypes); diff != "" {
		t.Errorf("ListWebhooks event types (-want +got):\n%s", diff)
	}

	// Times in another zone, below the microsecond, read back in UTC at
	// microsecond precision.
	odd := NewWebhook(4)
	odd.CreateTime = odd.CreateTime.Add(789 * time.Nanosecond).In(time.FixedZone("X", 3600))
	got := createWebhook(t, s, odd)
	if want := users.Truncate(odd.CreateTime); !got.CreateTime.Equal(want) || got.CreateTime.Location() != time.UTC {
		t.Errorf("CreateWebhook create time = %v, want %v in UTC", got.CreateTime, want)
	}
	if diff := gocmp.Diff(got, getWebhook(t, s, odd.ID)); diff != "" {
		t.Errorf("GetWebhook differs from what CreateWebhook returned (-returned +got):\n%s", diff)
	}

	if _, err := s.CreateWebhook(ctx, late); !errors.Is(err, users.ErrIDTaken) {
		t.Errorf("CreateWebhook(id in use) err = %v, want ErrIDTaken", err)
	}
}

func testWebhookNotFound(t *testing.T, s WebhookStore) {
	ctx := context.Background()
	createWebhook(t, s, NewWebhook(1))
	for _, id := range []string{users.NewID(), "not-a-uuid"} {
		if _, err := s.GetWebhook(ctx, users.DefaultTenant, id); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("GetWebhook(%q) err = %v, want ErrNotFound", id, err)
		}
		called := false
		_, err := s.UpdateWebhook(ctx, users.DefaultTenant, id, func(*users.Webhook) error { called = true; return nil })
		if !errors.Is(err, users.ErrNotFound) || called {
			t.Errorf("UpdateWebhook(%q) err = %v, fn called %v; want ErrNotFound, not called", id, err, called)
		}
		if err := s.DeleteWebhook(ctx, users.DefaultTenant, id); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("DeleteWebhook(%q) err = %v, want ErrNotFound", id, err)
		}
		a := users.DeliveryAttempt{WebhookID: id, EventID: users.NewID(), EventType: users.EventCreated, Attempt: 1, Time: users.Now()}
		if _, err := s.RecordDeliveryAttempts(ctx, id, []users.DeliveryAttempt{a}, 3); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("RecordDeliveryAttempts(webhook %q) err = %v, want ErrNotFound", id, err)
		}
		if as, err := s.ListDeliveryAttempts(ctx, id, 10); err != nil || len(as) != 0 {
			t.Errorf("ListDeliveryAttempts(%q) = %v, %v; want none", id, as, err)
		}
	}
}

func testWebhookUpdate(t *testing.T, s WebhookStore) {
	ctx := context.Background()
	w := createWebhook(t, s, NewWebhook(1, users.EventCreated))
	other := createWebhook(t, s, NewWebhook(2))
	later := w.UpdateTime.Add(time.Hour)
	got, err := s.UpdateWebhook(ctx, users.DefaultTenant, w.ID, func(x *users.Webhook) error {
		if diff := gocmp.Diff(w, x); diff != "" {
			t.Errorf("UpdateWebhook fn got (-want +got):\n%s", diff)
		}
		x.URL = "https://other.example.com/hook"
		x.EventTypes = []users.EventType{users.EventDeleted, users.EventPurged}
		x.Secret = "whsec_new"
		x.Enabled = false
		x.ConsecutiveFailures = 4
		x.DisabledReason = "paused"
		x.UpdateTime = later
		// What UpdateWebhook does not write.
		x.ID = users.NewID()
		x.CreateTime = later
		x.LastSuccessTime, x.LastFailureTime = later, later
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateWebhook err = %v", err)
	}
	want := &users.Webhook{
		Tenant: users.DefaultTenant, ID: w.ID, URL: "https://other.example.com/hook", EventTypes: []users.EventType{users.EventDeleted, users.EventPurged},
		Secret: "whsec_new", ConsecutiveFailures: 4, DisabledReason: "paused", CreateTime: w.CreateTime, UpdateTime: later,
	}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("UpdateWebhook returned (-want +got):\n%s", diff)
	}
	if diff := gocmp.Diff(want, getWebhook(t, s, w.ID)); diff != "" {
		t.Errorf("GetWebhook after UpdateWebhook (-want +got):\n%s", diff)
	}
	// Back to every type.
	got, err = s.UpdateWebhook(ctx, users.DefaultTenant, w.ID, func(x *users.Webhook) error { x.EventTypes = nil; return nil })
	if err != nil || got.EventTypes != nil || getWebhook(t, s, w.ID).EventTypes != nil {
		t.Errorf("UpdateWebhook(no event types) = %+v, %v; want nil event types", got, err)
	}

	// An error from fn changes nothing.
	before := getWebhook(t, s, w.ID)
	boom := errors.New("boom")
	_, err = s.UpdateWebhook(ctx, users.DefaultTenant, w.ID, func(x *users.Webhook) error { x.URL = "https://x.example.com"; return boom })
	if !errors.Is(err, boom) {
		t.Errorf("UpdateWebhook(fn fails) err = %v, want %v", err, boom)
	}
	if diff := gocmp.Diff(before, getWebhook(t, s, w.ID)); diff != "" {
		t.Errorf("UpdateWebhook whose fn failed changed the webhook (-before +after):\n%s", diff)
	}
	if diff := gocmp.Diff(other, getWebhook(t, s, other.ID)); diff != "" {
		t.Errorf("UpdateWebhook changed another webhook (-before +after):\n%s", diff)
	}
}

func testWebhookDelete(t *testing.T, s WebhookStore) {
	ctx := context.Background()
	w := createWebhook(t, s, NewWebhook(1))
	keep := createWebhook(t, s, NewWebhook(2))
	for i, hook := range []*users.Webhook{w, w, keep} {
		a := users.DeliveryAttempt{WebhookID: hook.ID, EventID: users.NewID(), EventType: users.EventCreated, Attempt: 1, Success: true, Status: 200, Time: base.Add(time.Duration(i) * time.Second)}
		if _, err := s.RecordDeliveryAttempts(ctx, a.WebhookID, []users.DeliveryAttempt{a}, 3); err != nil {
			t.Fatalf("RecordDeliveryAttempts err = %v", err)
		}
	}
	if err := s.DeleteWebhook(ctx, users.DefaultTenant, w.ID); err != nil {
		t.Fatalf("DeleteWebhook err = %v", err)
	}
	if _, err := s.GetWebhook(ctx, users.DefaultTenant, w.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("GetWebhook after DeleteWebhook err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteWebhook(ctx, users.DefaultTenant, w.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("second DeleteWebhook err = %v, want ErrNotFound", err)
	}
	if as, err := s.ListDeliveryAttempts(ctx, w.ID, 10); err != nil || len(as) != 0 {
		t.Errorf("ListDeliveryAttempts of the deleted webhook = %v, %v; want none", as, err)
	}
	if as, err := s.ListDeliveryAttempts(ctx, keep.ID, 10); err != nil || len(as) != 1 {
		t.Errorf("ListDeliveryAttempts of another webhook = %v, %v; want its 1 attempt", as, err)
	}
	if ws, err := s.ListWebhooks(ctx, users.DefaultTenant); err != nil || !gocmp.Equal(webhookIDs(ws), []string{keep.ID}) {
		t.Errorf("ListWebhooks after DeleteWebhook = %v, %v; want [%s]", webhookIDs(ws), err, keep.ID)
	}
}

func testWebhookLimit(t *testing.T, s WebhookStore) {
	ctx := context.Background()
	const racers = 10
	for i := range users.MaxWebhooks - racers/2 {
		createWebhook(t, s, NewWebhook(i))
	}
	// Concurrent creates stop at the limit.
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		created int
	)
	for i := range racers {
		wg.Go(func() {
			_, err := s.CreateWebhook(ctx, NewWebhook(1000+i))
			var inv *users.InvalidError
			switch {
			case err == nil:
				mu.Lock()
				created++
				mu.Unlock()
			case !errors.As(err, &inv) || len(inv.Violations) != 1 || inv.Violations[0].Field != "webhook":
				t.Errorf("CreateWebhook past the limit err = %v, want an InvalidError on field webhook", err)
			}
		})
	}
	wg.Wait()
	if created != racers/2 {
		t.Errorf("%d of %d concurrent CreateWebhook succeeded, want %d", created, racers, racers/2)
	}
	ws, err := s.ListWebhooks(ctx, users.DefaultTenant)
	if err != nil || len(ws) != users.MaxWebhooks {
		t.Fatalf("ListWebhooks = %d webhooks, %v; want %d", len(ws), err, users.MaxWebhooks)
	}
	if _, err := s.CreateWebhook(ctx, NewWebhook(2000)); !errors.Is(err, users.ErrInvalid) {
		t.Errorf("CreateWebhook at the limit err = %v, want ErrInvalid", err)
	}
	if err := s.DeleteWebhook(ctx, users.DefaultTenant, ws[0].ID); err != nil {
		t.Fatal(err)
	}
	createWebhook(t, s, NewWebhook(2001))
}

func testDeliveryAttempts(t *testing.T, s WebhookStore) {
	ctx := context.Background()
	w := createWebhook(t, s, NewWebhook(1))
	other := createWebhook(t, s, NewWebhook(2))
	t0 := base.Add(time.Hour)
	attempts := []users.DeliveryAttempt{
		{WebhookID: w.ID, EventID: users.NewID(), EventType: users.EventCreated, Attempt: 1, Status: 503, Latency: 1500 * time.Microsecond, Error: "status 503", Time: t0},
		{WebhookID: w.ID, EventID: users.NewID(), EventType: users.EventUpdated, Attempt: 2, Status: 0, Latency: 10 * time.Second, Error: "dial tcp: connection refused", Time: t0.Add(time.Second)},
		// The same time as the one before: recorded later, listed first.
		{WebhookID: w.ID, EventID: users.NewID(), EventType: users.EventPurged, Attempt: 3, Status: 204, Latency: 42 * time.Millisecond, Success: true, Time: t0.Add(time.Second)},
		{WebhookID: other.ID, EventID: users.NewID(), EventType: users.EventCreated, Attempt: 1, Status: 200, Success: true, Time: t0.Add(time.Hour)},
	}
	wantFailures := []int{1, 2, 0, 0}
	// The last success and failure after each attempt: a success leaves
	// the last failure, and the other way round.
	wantLast := []struct{ success, failure time.Time }{
		{time.Time{}, attempts[0].Time},
		{time.Time{}, attempts[1].Time},
		{attempts[2].Time, attempts[1].Time},
		{attempts[3].Time, time.Time{}},
	}
	for i, a := range attempts {
		got, err := s.RecordDeliveryAttempts(ctx, a.WebhookID, []users.DeliveryAttempt{a}, 50)
		if err != nil {
			t.Fatalf("RecordDeliveryAttempts #%d err = %v", i, err)
		}
		if got.ID != a.WebhookID || got.ConsecutiveFailures != wantFailures[i] || !got.Enabled {
			t.Errorf("RecordDeliveryAttempts #%d = webhook %s with %d failures, enabled %v; want %s with %d, enabled",
				i, got.ID, got.ConsecutiveFailures, got.Enabled, a.WebhookID, wantFailures[i])
		}
		checkLastAttempts(t, s, fmt.Sprintf("RecordDeliveryAttempts #%d", i), got, wantLast[i].success, wantLast[i].failure)
	}
	// UpdateWebhook keeps them.
	updated, err := s.UpdateWebhook(ctx, users.DefaultTenant, w.ID, func(x *users.Webhook) error { x.URL = "https://other.example.com/hook"; return nil })
	if err != nil {
		t.Fatalf("UpdateWebhook err = %v", err)
	}
	checkLastAttempts(t, s, "UpdateWebhook after the attempts", updated, attempts[2].Time, attempts[1].Time)
	for _, tt := range []struct {
		limit int
		want  []users.DeliveryAttempt
	}{
		{10, []users.DeliveryAttempt{attempts[2], attempts[1], attempts[0]}},
		{2, []users.DeliveryAttempt{attempts[2], attempts[1]}},
		{0, nil},
		{-1, nil},
	} {
		got, err := s.ListDeliveryAttempts(ctx, w.ID, tt.limit)
		if err != nil {
			t.Fatalf("ListDeliveryAttempts(limit %d) err = %v", tt.limit, err)
		}
		if diff := gocmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ListDeliveryAttempts(limit %d) (-want +got):\n%s", tt.limit, diff)
		}
	}

	// Purging before the second attempt's time leaves the later ones.
	if n, err := s.PurgeDeliveryAttempts(ctx, t0.Add(time.Second)); err != nil || n != 1 {
		t.Fatalf("PurgeDeliveryAttempts = %d, %v; want 1 (the first attempt)", n, err)
	}
	got, err := s.ListDeliveryAttempts(ctx, w.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := gocmp.Diff([]users.DeliveryAttempt{attempts[2], attempts[1]}, got); diff != "" {
		t.Errorf("after the purge, ListDeliveryAttempts (-want +got):\n%s", diff)
	}
	if got, _ := s.ListDeliveryAttempts(ctx, other.ID, 10); len(got) != 1 {
		t.Errorf("after the purge, %d attempts to the other webhook, want its 1", len(got))
	}
}

func testDeliveryDisable(t *testing.T, s WebhookStore) {
	ctx := context.Background()
	w := createWebhook(t, s, NewWebhook(1))
	never := createWebhook(t, s, NewWebhook(2))
	record := func(hook *users.Webhook, n int, success bool, errText string, disableAfter int) *users.Webhook {
		t.Helper()
		a := users.DeliveryAttempt{WebhookID: hook.ID, EventID: users.NewID(), EventType: users.EventCreated, Attempt: 1,
			Success: success, Error: errText, Time: base.Add(time.Duration(n) * time.Hour)}
		got, err := s.RecordDeliveryAttempts(ctx, hook.ID, []users.DeliveryAttempt{a}, disableAfter)
		if err != nil {
			t.Fatalf("RecordDeliveryAttempts #%d err = %v", n, err)
		}
		if diff := gocmp.Diff(got, getWebhook(t, s, hook.ID)); diff != "" {
			t.Errorf("RecordDeliveryAttempts #%d returned other than GetWebhook reads (-returned +got):\n%s", n, diff)
		}
		return got
	}
	check := func(what string, got *users.Webhook, failures int, enabled bool, reason string) {
		t.Helper()
		if got.ConsecutiveFailures != failures || got.Enabled != enabled || got.DisabledReason != reason {
			t.Errorf("%s: failures %d, enabled %v, reason %q; want %d, %v, %q",
				what, got.ConsecutiveFailures, got.Enabled, got.DisabledReason, failures, enabled, reason)
		}
	}
	check("1 failure", record(w, 1, false, "status 500", 3), 1, true, "")
	check("2 failures", record(w, 2, false, "status 500", 3), 2, true, "")
	check("a success", record(w, 3, true, "", 3), 0, true, "")
	check("1 failure after it", record(w, 4, false, "status 502", 3), 1, true, "")
	check("2 failures after it", record(w, 5, false, "status 502", 3), 2, true, "")
	got := record(w, 6, false, "dial tcp: connection refused", 3)
	check("3 failures", got, 3, false, "disabled after 3 failed deliveries in a row; last: dial tcp: connection refused")
	if want := base.Add(6 * time.Hour); !got.UpdateTime.Equal(want) {
		t.Errorf("update time of the disabled webhook = %v, want the attempt's %v", got.UpdateTime, want)
	}
	// Attempts already queued still count; the reason stays.
	check("4 failures", record(w, 7, false, "status 500", 3), 4, false, "disabled after 3 failed deliveries in a row; last: dial tcp: connection refused")
	if as, err := s.ListDeliveryAttempts(ctx, w.ID, 100); err != nil || len(as) != 7 {
		t.Errorf("ListDeliveryAttempts = %d attempts, %v; want 7", len(as), err)
	}
	// A threshold of 0 never disables.
	for i := range 5 {
		got = record(never, 10+i, false, "status 500", 0)
	}
	check("threshold 0", got, 5, true, "")
}

// testDeliveryBatch records several attempts in one call: all stored, each
// applied in turn (the disabling one in the middle names its error), and
// an attempt to another subscription refuses the whole batch.
func testDeliveryBatch(t *testing.T, s WebhookStore) {
	ctx := context.Background()
	w := createWebhook(t, s, NewWebhook(1))
	other := createWebhook(t, s, NewWebhook(2))
	attempt := func(hook *users.Webhook, n int, success bool, errText string) users.DeliveryAttempt {
		return users.DeliveryAttempt{WebhookID: hook.ID, EventID: users.NewID(), EventType: users.EventCreated, Attempt: 1,
			Success: success, Error: errText, Time: base.Add(time.Duration(n) * time.Minute)}
	}
	as := []users.DeliveryAttempt{
		attempt(w, 1, false, "status 500"),
		attempt(w, 2, true, ""),
		attempt(w, 3, false, "status 502"),
		attempt(w, 4, false, "status 503"),
		attempt(w, 5, false, "status 504"),
	}
	got, err := s.RecordDeliveryAttempts(ctx, w.ID, as, 2)
	if err != nil {
		t.Fatalf("RecordDeliveryAttempts err = %v", err)
	}
	const reason = "disabled after 2 failed deliveries in a row; last: status 503"
	if got.ConsecutiveFailures != 3 || got.Enabled || got.DisabledReason != reason || !got.UpdateTime.Equal(as[3].Time) {
		t.Errorf("after the batch: failures %d, enabled %v, reason %q, updated %v; want 3, false, %q, %v",
			got.ConsecutiveFailures, got.Enabled, got.DisabledReason, got.UpdateTime, reason, as[3].Time)
	}
	if diff := gocmp.Diff(got, getWebhook(t, s, w.ID)); diff != "" {
		t.Errorf("RecordDeliveryAttempts returned other than GetWebhook reads (-returned +got):\n%s", diff)
	}
	// The last success is the batch's only one, the last failure its last
	// attempt, though the subscription was disabled before it.
	checkLastAttempts(t, s, "after the batch", got, as[1].Time, as[4].Time)
	if stored, err := s.ListDeliveryAttempts(ctx, w.ID, 100); err != nil || len(stored) != len(as) {
		t.Errorf("ListDeliveryAttempts = %d attempts, %v; want %d", len(stored), err, len(as))
	}

	mixed := []users.DeliveryAttempt{attempt(other, 6, true, ""), attempt(w, 7, true, "")}
	if _, err := s.RecordDeliveryAttempts(ctx, other.ID, mixed, 2); err == nil {
		t.Error("RecordDeliveryAttempts with an attempt to another webhook succeeded")
	}
	if stored, _ := s.ListDeliveryAttempts(ctx, other.ID, 100); len(stored) != 0 {
		t.Errorf("the refused batch stored %d attempts", len(stored))
	}
	got, err = s.RecordDeliveryAttempts(ctx, other.ID, nil, 2)
	if err != nil || got.ID != other.ID {
		t.Fatalf("RecordDeliveryAttempts(none) = %v, %v; want the webhook", got, err)
	}
	checkLastAttempts(t, s, "after the refused batch and none", got, time.Time{}, time.Time{})

	// Times in another zone, below the microsecond, read back in UTC at
	// microsecond precision.
	failure := attempt(other, 8, false, "status 500")
	failure.Time = failure.Time.Add(789 * time.Nanosecond).In(time.FixedZone("X", 3600))
	success := attempt(other, 9, true, "")
	success.Time = success.Time.Add(123 * time.Nanosecond).In(time.FixedZone("Y", -7200))
	got, err = s.RecordDeliveryAttempts(ctx, other.ID, []users.DeliveryAttempt{failure}, 2)
	if err != nil {
		t.Fatalf("RecordDeliveryAttempts(a failure) err = %v", err)
	}
	checkLastAttempts(t, s, "after a failure", got, time.Time{}, failure.Time)
	got, err = s.RecordDeliveryAttempts(ctx, other.ID, []users.DeliveryAttempt{success}, 2)
	if err != nil {
		t.Fatalf("RecordDeliveryAttempts(a success) err = %v", err)
	}
	checkLastAttempts(t, s, "after a success", got, success.Time, failure.Time)
}

// dispatchAll calls DispatchEvents until it has read want events in all,
// waiting for events to reach the feed, and fails the test if it reads
// more.
func dispatchAll(t *testing.T, s users.WebhookStore, limit, want int) {
	t.Helper()
	total := 0
	deadline := time.Now().Add(feedWait)
	for total < want {
		n, err := s.DispatchEvents(context.Background(), limit)
		if err != nil {
			t.Fatalf("DispatchEvents err = %v", err)
		}
		if n > limit {
			t.Fatalf("DispatchEvents(%d) read %d events", limit, n)
		}
		total += n
		if n == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("DispatchEvents read %d events within %v, want %d", total, feedWait, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if total != want {
		t.Fatalf("DispatchEvents read %d events, want %d", total, want)
	}
}

func sortDeliveries(ds []users.Delivery) []users.Delivery {
	ds = slices.Clone(ds)
	slices.SortFunc(ds, func(a, b users.Delivery) int {
		return cmp.Or(cmp.Compare(a.EventID, b.EventID), cmp.Compare(a.WebhookID, b.WebhookID))
	})
	return ds
}

func checkPosition(t *testing.T, s users.SinkStore, want users.EventPos) {
	t.Helper()
	if got, err := s.SinkPosition(context.Background(), "webhooks"); err != nil || got != want {
		t.Errorf("SinkPosition(webhooks) = %+v, %v; want %+v", got, err, want)
	}
}

func testDispatch(t *testing.T, s WebhookStore, jobs *Jobs) {
	ctx := context.Background()
	if n, err := s.DispatchEvents(ctx, 100); err != nil || n != 0 {
		t.Errorf("DispatchEvents(no events) = %d, %v; want 0", n, err)
	}
	all := createWebhook(t, s, NewWebhook(1))
	updates := createWebhook(t, s, NewWebhook(2, users.EventUpdated))
	off := NewWebhook(3)
	off.Enabled = false
	createWebhook(t, s, off)
	createdDeleted := createWebhook(t, s, NewWebhook(4, users.EventCreated, users.EventDeleted))

	u1, u2 := create(t, s, NewUser(1)), create(t, s, NewUser(2))
	if _, err := s.UpdateUser(ctx, users.DefaultTenant, u1.ID, func(u *users.User) error { u.DisplayName = "renamed"; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateUser(ctx, users.DefaultTenant, u2.ID, softDelete); err != nil {
		t.Fatal(err)
	}
	evs := readN(t, s, users.EventPos{}, 4)
	var want []users.Delivery
	for i, hooks := range [][]*users.Webhook{
		{all, createdDeleted}, // u1 created
		{all, createdDeleted}, // u2 created
		{all, updates},        // u1 updated
		{all, createdDeleted}, // u2 deleted
	} {
		for _, w := range hooks {
			want = append(want, users.Delivery{WebhookID: w.ID, EventID: evs[i].ID, Time: evs[i].Time})
		}
	}
	dispatchAll(t, s, 100, 4)
	if diff := gocmp.Diff(sortDeliveries(want), sortDeliveries(jobs.Deliveries())); diff != "" {
		t.Errorf("deliveries enqueued (-want +got):\n%s", diff)
	}
	checkPosition(t, s, evs[3].Pos)

	// Nothing new: nothing dispatched.
	if n, err := s.DispatchEvents(ctx, 100); err != nil || n != 0 {
		t.Errorf("second DispatchEvents = %d, %v; want 0", n, err)
	}
	if got := len(jobs.Deliveries()); got != len(want) {
		t.Errorf("%d deliveries after the second DispatchEvents, want %d", got, len(want))
	}
	checkPosition(t, s, evs[3].Pos)

	// limit bounds each call; the position follows.
	create(t, s, NewUser(3))
	create(t, s, NewUser(4))
	more := readN(t, s, evs[3].Pos, 2)
	for i, ev := range more {
		dispatchAll(t, s, 1, 1)
		checkPosition(t, s, ev.Pos)
		want = append(want, users.Delivery{WebhookID: all.ID, EventID: ev.ID, Time: ev.Time},
			users.Delivery{WebhookID: createdDeleted.ID, EventID: ev.ID, Time: ev.Time})
		if diff := gocmp.Diff(sortDeliveries(want), sortDeliveries(jobs.Deliveries())); diff != "" {
			t.Errorf("deliveries after DispatchEvents(1) #%d (-want +got):\n%s", i, diff)
		}
	}
	if n, err := s.DispatchEvents(ctx, 0); err != nil || n != 0 {
		t.Errorf("DispatchEvents(0) = %d, %v; want 0", n, err)
	}
}

func testDispatchNoSubscribers(t *testing.T, s WebhookStore, jobs *Jobs) {
	create(t, s, NewUser(1))
	evs := readN(t, s, users.EventPos{}, 1)
	// Events no one wants are read all the same: a subscription created
	// later starts with the events after it.
	dispatchAll(t, s, 100, 1)
	checkPosition(t, s, evs[0].Pos)
	w := createWebhook(t, s, NewWebhook(1))
	u := create(t, s, NewUser(2))
	next := readN(t, s, evs[0].Pos, 1)
	if next[0].UserID != u.ID {
		t.Fatalf("event after the first is user %s's, want %s's", next[0].UserID, u.ID)
	}
	dispatchAll(t, s, 100, 1)
	want := []users.Delivery{{WebhookID: w.ID, EventID: next[0].ID, Time: next[0].Time}}
	if diff := gocmp.Diff(want, jobs.Deliveries()); diff != "" {
		t.Errorf("deliveries enqueued (-want +got):\n%s", diff)
	}
}

func testDispatchEnqueueFails(t *testing.T, s WebhookStore, jobs *Jobs) {
	ctx := context.Background()
	w := createWebhook(t, s, NewWebhook(1))
	create(t, s, NewUser(1))
	create(t, s, NewUser(2))
	// Once ListEvents returns them, DispatchEvents reads them too.
	evs := readN(t, s, users.EventPos{}, 2)

	boom := errors.New("queue unavailable")
	jobs.Fail(boom)
	if n, err := s.DispatchEvents(ctx, 100); !errors.Is(err, boom) {
		t.Fatalf("DispatchEvents with a failing queue = %d, %v; want %v", n, err, boom)
	}
	checkPosition(t, s, users.EventPos{})

	// The next dispatch sends the same events.
	jobs.Fail(nil)
	dispatchAll(t, s, 100, 2)
	want := []users.Delivery{{WebhookID: w.ID, EventID: evs[0].ID, Time: evs[0].Time}, {WebhookID: w.ID, EventID: evs[1].ID, Time: evs[1].Time}}
	if diff := gocmp.Diff(sortDeliveries(want), sortDeliveries(jobs.Deliveries())); diff != "" {
		t.Errorf("deliveries enqueued (-want +got):\n%s", diff)
	}
	checkPosition(t, s, evs[1].Pos)
}
