package users_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/trace"

	"github.com/usersd/usersd/internal/users"
)

func TestEventCursor(t *testing.T) {
	for _, p := range []users.EventPos{
		{}, {Seq: 1}, {Tx: 1}, {Tx: 751, Seq: 3}, {Tx: 1 << 40, Seq: 1 << 50},
		{Tx: math.MaxUint64, Seq: math.MaxInt64},
	} {
		c := p.Cursor()
		got, err := users.ParseEventCursor(c)
		if err != nil || got != p {
			t.Errorf("ParseEventCursor(%+v.Cursor() = %q) = %+v, %v; want %+v", p, c, got, err, p)
		}
	}
	if c := (users.EventPos{}).Cursor(); c != "" {
		t.Errorf("zero EventPos.Cursor() = %q, want \"\"", c)
	}
	// The encoding is stable: cursors that consumers keep must stay valid.
	if c := (users.EventPos{Tx: 751, Seq: 3}).Cursor(); c != "Ae8FAw" {
		t.Errorf("EventPos{751, 3}.Cursor() = %q, want %q", c, "Ae8FAw")
	}

	raw := func(b ...byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	valid := (users.EventPos{Tx: 751, Seq: 3}).Cursor()
	for name, c := range map[string]string{
		"not base64":         "!!!",
		"padded base64":      base64.URLEncoding.EncodeToString([]byte{1, 0xef, 0x05, 0x03}),
		"std base64":         base64.RawStdEncoding.EncodeToString([]byte{1, 0xff, 0xff, 3}),
		"line break":         valid[:2] + "\n" + valid[2:],
		"space":              " " + valid,
		"too short":          raw(1, 2),
		"other version":      raw(2, 1, 1),
		"trailing byte":      raw(1, 1, 1, 0),
		"truncated varint":   raw(1, 1, 0x80),
		"non-minimal varint": raw(1, 0x81, 0x00, 1),
		"seq over int64":     raw(append([]byte{1, 0}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)...),
		"a page token":       "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	} {
		if p, err := users.ParseEventCursor(c); err == nil {
			t.Errorf("%s: ParseEventCursor(%q) = %+v, want an error", name, c, p)
		}
	}
}

func TestEventPosLess(t *testing.T) {
	tests := []struct {
		a, b users.EventPos
		want bool
	}{
		{users.EventPos{}, users.EventPos{Seq: 1}, true},
		{users.EventPos{Seq: 1}, users.EventPos{Seq: 1}, false},
		{users.EventPos{Tx: 1, Seq: 9}, users.EventPos{Tx: 2, Seq: 1}, true},
		{users.EventPos{Tx: 2, Seq: 1}, users.EventPos{Tx: 1, Seq: 9}, false},
		{users.EventPos{Tx: 2, Seq: 1}, users.EventPos{Tx: 2, Seq: 2}, true},
	}
	for _, tt := range tests {
		if got := tt.a.Less(tt.b); got != tt.want {
			t.Errorf("%+v.Less(%+v) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestTraceParent(t *testing.T) {
	if got := users.TraceParent(context.Background()); got != "" {
		t.Errorf("TraceParent(no span) = %q, want \"\"", got)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:  trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
	})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	if got, want := users.TraceParent(ctx), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"; got != want {
		t.Errorf("TraceParent(unsampled span) = %q, want %q", got, want)
	}
	ctx = trace.ContextWithSpanContext(context.Background(), sc.WithTraceFlags(trace.FlagsSampled))
	if got, want := users.TraceParent(ctx), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"; got != want {
		t.Errorf("TraceParent(sampled span) = %q, want %q", got, want)
	}
	invalid := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: sc.TraceID()}))
	if got := users.TraceParent(invalid); got != "" {
		t.Errorf("TraceParent(no span id) = %q, want \"\"", got)
	}
}

func TestChangeEvent(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	old := &users.User{
		Tenant: "acme", ID: "u", Email: "a@example.com", DisplayName: "A", State: users.StateActive,
		Labels: map[string]string{"k": "v"}, CreateTime: t0, UpdateTime: t0, Revision: 3,
	}
	deleted := old.Clone()
	deleted.State, deleted.DeleteTime = users.StateDeleted, t0
	tests := []struct {
		name      string
		old       *users.User
		change    func(u *users.User)
		wantType  users.EventType // "" for no event
		wantPaths []string
	}{
		{"nothing", old, func(*users.User) {}, "", nil},
		{"times and revision only", old, func(u *users.User) { u.UpdateTime = t0.Add(time.Hour); u.Revision++ }, "", nil},
		{"labels, same contents", old, func(u *users.User) { u.Labels = map[string]string{"k": "v"} }, "", nil},
		{"labels nil and empty", &users.User{ID: "u"}, func(u *users.User) { u.Labels = map[string]string{} }, "", nil},
		{"display name", old, func(u *users.User) { u.DisplayName = "B" }, users.EventUpdated, []string{"display_name"}},
		{"email case", old, func(u *users.User) { u.Email = "A@example.com" }, users.EventUpdated, []string{"email"}},
		{"labels removed", old, func(u *users.User) { u.Labels = nil }, users.EventUpdated, []string{"labels"}},
		{"suspend", old, func(u *users.User) { u.State = users.StateSuspended }, users.EventUpdated, []string{"state"}},
		{"every field, in order", old, func(u *users.User) {
			u.Labels, u.State, u.DisplayName, u.Email = nil, users.StateSuspended, "B", "b@example.com"
		}, users.EventUpdated, []string{"email", "display_name", "state", "labels"}},
		{"delete", old, func(u *users.User) { u.State, u.DeleteTime = users.StateDeleted, t0 }, users.EventDeleted, []string{"state", "delete_time"}},
		{"delete suspended", &users.User{ID: "u", State: users.StateSuspended}, func(u *users.User) { u.State = users.StateDeleted }, users.EventDeleted, []string{"state"}},
		{"undelete", deleted, func(u *users.User) { u.State, u.DeleteTime = users.StateActive, time.Time{} }, users.EventUndeleted, []string{"state", "delete_time"}},
		{"deleted user renamed", deleted, func(u *users.User) { u.DisplayName = "B" }, users.EventUpdated, []string{"display_name"}},
	}
	for _, tt := range tests {
		next := tt.old.Clone()
		tt.change(next)
		ev, ok := users.ChangeEvent(context.Background(), tt.old, next)
		if ok != (tt.wantType != "") {
			t.Errorf("%s: ChangeEvent ok = %v, want %v", tt.name, ok, !ok)
			continue
		}
		if !ok {
			continue
		}
		if ev.Tenant != next.Tenant {
			t.Errorf("%s: ChangeEvent tenant = %q, want the user's %q", tt.name, ev.Tenant, next.Tenant)
		}
		if ev.Type != tt.wantType || !cmp.Equal(ev.Paths, tt.wantPaths) || ev.UserID != "u" || !cmp.Equal(ev.User, next) {
			t.Errorf("%s: ChangeEvent = %s %s %v %+v; want %s u %v %+v", tt.name, ev.Type, ev.UserID, ev.Paths, ev.User, tt.wantType, tt.wantPaths, next)
		}
		if ev.User == next {
			t.Errorf("%s: the event holds the caller's user, not a copy", tt.name)
		}
	}
}

// TestServiceEvents follows a user's life through the Service and reads it
// back from the feed, a page at a time.
func TestServiceEvents(t *testing.T) {
	svc := newService(t, users.Config{})
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)

	u, err := svc.Create(ctx, users.CreateRequest{User: newUser(1), RequestID: "req-1"})
	if err != nil {
		t.Fatalf("Create err = %v", err)
	}
	if _, err := svc.Create(ctx, users.CreateRequest{User: newUser(1), RequestID: "req-1"}); err != nil {
		t.Fatalf("Create(replay) err = %v", err)
	}
	// Setting a field to its value changes nothing: no event.
	if _, err := svc.Update(ctx, users.UpdateRequest{User: &users.User{ID: u.ID, DisplayName: u.DisplayName}}); err != nil {
		t.Fatalf("Update(same name) err = %v", err)
	}
	if _, err := svc.Update(ctx, users.UpdateRequest{User: &users.User{ID: u.ID, DisplayName: "Renamed", Labels: map[string]string{"a": "b"}}}); err != nil {
		t.Fatalf("Update err = %v", err)
	}
	if _, err := svc.Update(ctx, users.UpdateRequest{User: &users.User{ID: u.ID, State: users.StateSuspended}, Paths: []string{"state"}}); err != nil {
		t.Fatalf("Update(suspend) err = %v", err)
	}
	if _, err := svc.Delete(ctx, users.DefaultTenant, u.ID, ""); err != nil {
		t.Fatalf("Delete err = %v", err)
	}
	if _, err := svc.Delete(ctx, users.DefaultTenant, u.ID, ""); err == nil {
		t.Fatal("Delete(deleted) succeeded")
	}
	last, err := svc.Undelete(context.Background(), users.DefaultTenant, u.ID, "")
	if err != nil {
		t.Fatalf("Undelete err = %v", err)
	}

	type summary struct {
		Type        users.EventType
		Paths       []string
		TraceParent string
	}
	traceParent := "00-01000000000000000000000000000000-0200000000000000-01"
	want := []summary{
		{users.EventCreated, nil, traceParent},
		{users.EventUpdated, []string{"display_name", "labels"}, traceParent},
		{users.EventUpdated, []string{"state"}, traceParent},
		{users.EventDeleted, []string{"state", "delete_time"}, traceParent},
		{users.EventUndeleted, []string{"state", "delete_time"}, ""},
	}
	var (
		got   []summary
		after string
		evs   []users.Event
	)
	for range 10 {
		page, err := svc.ListEvents(context.Background(), users.DefaultTenant, after, 2)
		if err != nil {
			t.Fatalf("ListEvents(%q) err = %v", after, err)
		}
		if len(page.Events) == 0 {
			if page.Next != after {
				t.Errorf("ListEvents(%q) on an empty page: Next = %q, want the cursor given", after, page.Next)
			}
			break
		}
		if len(page.Events) > 2 {
			t.Errorf("ListEvents(page size 2) returned %d events", len(page.Events))
		}
		if lastEv := page.Events[len(page.Events)-1]; page.Next != lastEv.Pos.Cursor() {
			t.Errorf("Next = %q, want the last event's cursor %q", page.Next, lastEv.Pos.Cursor())
		}
		for _, ev := range page.Events {
			got = append(got, summary{ev.Type, ev.Paths, ev.TraceParent})
			evs = append(evs, ev)
		}
		after = page.Next
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if len(evs) == len(want) {
		if diff := cmp.Diff(last, evs[len(evs)-1].User); diff != "" {
			t.Errorf("snapshot of the undelete (-Undelete's user +event's):\n%s", diff)
		}
	}
}

func TestServiceListEventsPageSize(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, users.Config{})
	for i := range users.MaxEventPageSize + 1 {
		mustCreate(t, svc, newUser(i))
	}
	for _, tt := range []struct{ size, want int }{
		{0, users.DefaultEventPageSize},
		{1, 1},
		{users.MaxEventPageSize, users.MaxEventPageSize},
		{users.MaxEventPageSize + 1, users.MaxEventPageSize},
		{math.MaxInt32, users.MaxEventPageSize},
	} {
		page, err := svc.ListEvents(ctx, users.DefaultTenant, "", tt.size)
		if err != nil || len(page.Events) != tt.want {
			t.Errorf("ListEvents(page size %d) = %d events, %v; want %d", tt.size, len(page.Events), err, tt.want)
		}
	}
	page, err := svc.ListEvents(ctx, users.DefaultTenant, "", users.MaxEventPageSize)
	if err != nil {
		t.Fatal(err)
	}
	rest, err := svc.ListEvents(ctx, users.DefaultTenant, page.Next, 0)
	if err != nil || len(rest.Events) != 1 || rest.Next != rest.Events[0].Pos.Cursor() {
		t.Errorf("ListEvents(after the first %d) = %+v, %v; want the last event", users.MaxEventPageSize, rest, err)
	}
}

func TestServiceListEventsInvalid(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, users.Config{})
	_, err := svc.ListEvents(ctx, users.DefaultTenant, "", -1)
	checkInvalid(t, "ListEvents(page size -1)", err, "page_size")
	for _, after := range []string{"garbage!", "AQ", " ", (users.EventPos{Seq: 1}).Cursor() + "A"} {
		_, err := svc.ListEvents(ctx, users.DefaultTenant, after, 10)
		checkInvalid(t, fmt.Sprintf("ListEvents(after %q)", after), err, "after")
	}
	// A cursor of another store's feed (a Postgres transaction id) is no
	// position in SQLite's.
	_, err = svc.ListEvents(ctx, users.DefaultTenant, (users.EventPos{Tx: 5, Seq: 1}).Cursor(), 10)
	checkInvalid(t, "ListEvents(a Postgres cursor on SQLite)", err, "after")
}

func TestServicePurgeEvents(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name      string
		retention time.Duration
		age       time.Duration // how far the clock is past the events
		want      int
	}{
		{"default retention, younger", 0, users.DefaultEventRetention - time.Minute, 0},
		{"default retention, older", 0, users.DefaultEventRetention + time.Minute, 3},
		{"an hour, younger", time.Hour, 59 * time.Minute, 0},
		{"an hour, older", time.Hour, 61 * time.Minute, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := &clock{t: time.Now()}
			svc := newService(t, users.Config{Now: clk.Now, EventRetention: tt.retention})
			for i := range 3 {
				mustCreate(t, svc, newUser(i))
			}
			clk.Advance(tt.age)
			n, err := svc.PurgeEvents(ctx)
			if err != nil || n != tt.want {
				t.Errorf("PurgeEvents = %d, %v; want %d", n, err, tt.want)
			}
			page, err := svc.ListEvents(ctx, users.DefaultTenant, "", 0)
			if err != nil || len(page.Events) != 3-tt.want {
				t.Errorf("after PurgeEvents, ListEvents = %d events, %v; want %d", len(page.Events), err, 3-tt.want)
			}
		})
	}
}
