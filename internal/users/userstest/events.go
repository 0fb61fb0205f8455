package userstest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/usersd/usersd/internal/users"
)

// feedWait bounds how long a test waits for an event to reach the feed. On
// Postgres an event is held back while any transaction that began writing
// before it is still running, anywhere on the server: other tests'
// transactions among them.
const feedWait = 15 * time.Second

// EventStore is what the feed tests use: the feed, the stores whose
// changes append to it, and the tenants its events belong to.
type EventStore interface {
	users.EventStore
	users.UserStore
	users.ImportStore
	users.TenantStore
}

// TestEventStore is the part of the suite for users.EventStore. newStore
// must return an empty, migrated store that lives until the test ends.
func TestEventStore(t *testing.T, newStore func(t *testing.T) EventStore) {
	run(t, withoutJobs(newStore), []test[EventStore]{
		{"EventCreate", storeOnly(testEventCreate)},
		{"EventCreateNone", storeOnly(testEventCreateNone)},
		{"EventUpdate", storeOnly(testEventUpdate)},
		{"EventImport", storeOnly(testEventImport)},
		{"EventPurge", storeOnly(testEventPurge)},
		{"EventFeedPaging", storeOnly(testEventFeedPaging)},
		{"PurgeEvents", storeOnly(testPurgeEvents)},
		{"GetEvent", storeOnly(testGetEvent)},
		{"Cancelled", storeOnly(testCancelled)},
		// Tenants: tenants_isolation.go.
		{"TenantEvents", storeOnly(testTenantEvents)},
		{"TenantPurgeEvents", storeOnly(testTenantPurgeEvents)},
	})
}

// readTenantUntil reads the feed of the tenant (of every tenant for
// users.AllTenants) after the position until it has read an event for
// which stop returns true, and returns the events read, that one included.
// It fails the test if no such event comes within feedWait.
func readTenantUntil(t *testing.T, s users.EventStore, tenant string, after users.EventPos, stop func(users.Event) bool) []users.Event {
	t.Helper()
	var out []users.Event
	deadline := time.Now().Add(feedWait)
	for {
		evs, err := s.ListEvents(context.Background(), tenant, after, 100)
		if err != nil {
			t.Fatalf("ListEvents(%s, %+v) err = %v", tenant, after, err)
		}
		for _, ev := range evs {
			if !after.Less(ev.Pos) {
				t.Fatalf("ListEvents(%s, %+v) returned event %s at %+v, not after it", tenant, after, ev.ID, ev.Pos)
			}
			after = ev.Pos
			out = append(out, ev)
			if stop(ev) {
				return out
			}
		}
		if len(evs) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the awaited event did not reach the feed within %v; read %d events: %v", feedWait, len(out), summarizeEvents(out))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// readN reads the first n events of the default tenant after the
// position.
func readN(t *testing.T, s users.EventStore, after users.EventPos, n int) []users.Event {
	t.Helper()
	return readTenantN(t, s, users.DefaultTenant, after, n)
}

// readTenantN is readN on the feed of the tenant (of every tenant for
// users.AllTenants).
func readTenantN(t *testing.T, s users.EventStore, tenant string, after users.EventPos, n int) []users.Event {
	t.Helper()
	if n == 0 {
		return nil
	}
	return readTenantUntil(t, s, tenant, after, func(users.Event) bool { n--; return n == 0 })
}

// mark creates a user and reads the feed after the position up to that
// user's event, which it leaves out. Since the marker commits after every
// change made before it, what mark returns is every event of those changes
// still unread: a change that should append nothing shows up here if it did.
func mark(t *testing.T, s feed, after users.EventPos) []users.Event {
	t.Helper()
	return markIn(t, s, users.DefaultTenant, after)
}

// markIn is mark on the feed of the tenant, with a marker of the tenant.
func markIn(t *testing.T, s feed, tenant string, after users.EventPos) []users.Event {
	t.Helper()
	m := NewUser(999)
	m.Tenant = tenant
	m.Email = "marker-" + m.ID + "@example.com"
	create(t, s, m)
	evs := readTenantUntil(t, s, tenant, after, func(ev users.Event) bool { return ev.UserID == m.ID })
	return evs[:len(evs)-1]
}

// summarizeEvents is a readable form of events for failure messages: type,
// user and paths.
func summarizeEvents(evs []users.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = fmt.Sprintf("%s %s %v", ev.Type, ev.UserID, ev.Paths)
	}
	return out
}

// tracedContext returns a context within a sampled remote span, and the
// traceparent an event made in it carries.
func tracedContext() (context.Context, string) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
		Remote:     true,
	})
	return trace.ContextWithSpanContext(context.Background(), sc),
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
}

// wantEvent is what a test expects of an event. checkEvents takes an empty
// Tenant for users.DefaultTenant.
type wantEvent struct {
	Tenant      string
	Type        users.EventType
	UserID      string
	User        *users.User
	Paths       []string
	TraceParent string
}

// checkEvents compares evs with want, and checks what every event must
// have: an id that is a UUIDv7, a time in [from, to], and, for a purge, no
// user.
func checkEvents(t *testing.T, what string, evs []users.Event, want []wantEvent, from, to time.Time) {
	t.Helper()
	want = slices.Clone(want)
	for i := range want {
		if want[i].Tenant == "" {
			want[i].Tenant = users.DefaultTenant
		}
	}
	got := make([]wantEvent, len(evs))
	for i, ev := range evs {
		got[i] = wantEvent{Tenant: ev.Tenant, Type: ev.Type, UserID: ev.UserID, User: ev.User, Paths: ev.Paths, TraceParent: ev.TraceParent}
		if id, err := uuid.Parse(ev.ID); err != nil || id.Version() != 7 || id.String() != ev.ID {
			t.Errorf("%s: event %d id %q is not a canonical UUIDv7", what, i, ev.ID)
		}
		if ev.Time.Before(from) || ev.Time.After(to) || ev.Time != users.Truncate(ev.Time) {
			t.Errorf("%s: event %d time %v, want in [%v, %v], UTC, in µs", what, i, ev.Time, from, to)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s: events (-want +got):\n%s", what, diff)
	}
}

func testEventCreate(t *testing.T, s EventStore) {
	ctx, traceParent := tracedContext()
	from := users.Now()
	u := NewUser(1)
	u.Labels = map[string]string{"team": "core"}
	traced, err := s.CreateUser(ctx, u, nil)
	if err != nil {
		t.Fatalf("CreateUser err = %v", err)
	}
	plain := create(t, s, NewUser(2))
	keyed, err := s.CreateUser(context.Background(), NewUser(3), &users.IdempotencyKey{RequestID: "req", Fingerprint: []byte("fp")})
	if err != nil {
		t.Fatalf("CreateUser(key) err = %v", err)
	}
	evs := readN(t, s, users.EventPos{}, 3)
	checkEvents(t, "CreateUser", evs, []wantEvent{
		{Type: users.EventCreated, UserID: traced.ID, User: traced, TraceParent: traceParent},
		{Type: users.EventCreated, UserID: plain.ID, User: plain},
		{Type: users.EventCreated, UserID: keyed.ID, User: keyed},
	}, from, users.Now())
	if ids := []string{evs[0].ID, evs[1].ID, evs[2].ID}; ids[0] == ids[1] || ids[1] == ids[2] || ids[0] == ids[2] {
		t.Errorf("event ids %v are not distinct", ids)
	}
}

// testEventCreateNone checks that creates that insert nothing append
// nothing: a replay, a reused request id, a taken address.
func testEventCreateNone(t *testing.T, s EventStore) {
	ctx := context.Background()
	from := users.Now()
	key := &users.IdempotencyKey{RequestID: "req-1", Fingerprint: []byte("fp")}
	first, err := s.CreateUser(ctx, NewUser(1), key)
	if err != nil {
		t.Fatalf("CreateUser err = %v", err)
	}
	evs := readN(t, s, users.EventPos{}, 1)
	checkEvents(t, "first CreateUser", evs, []wantEvent{{Type: users.EventCreated, UserID: first.ID, User: first}}, from, users.Now())

	if _, err := s.CreateUser(ctx, NewUser(1), key); err != nil {
		t.Fatalf("replayed CreateUser err = %v", err)
	}
	if _, err := s.CreateUser(ctx, NewUser(2), &users.IdempotencyKey{RequestID: "req-1", Fingerprint: []byte("other")}); !errors.Is(err, users.ErrInvalid) {
		t.Fatalf("CreateUser(reused request id) err = %v, want ErrInvalid", err)
	}
	dup := NewUser(3)
	dup.Email = strings.ToUpper(first.Email)
	if _, err := s.CreateUser(ctx, dup, nil); !errors.Is(err, users.ErrEmailTaken) {
		t.Fatalf("CreateUser(taken address) err = %v, want ErrEmailTaken", err)
	}
	dup.Email = "free@example.com"
	dup.ID = first.ID // an id in use
	if _, err := s.CreateUser(ctx, dup, nil); err == nil {
		t.Fatal("CreateUser(id in use) succeeded")
	}
	if extra := mark(t, s, evs[0].Pos); len(extra) != 0 {
		t.Errorf("creates that stored nothing appended events: %v", summarizeEvents(extra))
	}
}

func testEventUpdate(t *testing.T, s EventStore) {
	ctx, traceParent := tracedContext()
	bg := context.Background()
	u := create(t, s, NewUser(1))
	other := create(t, s, NewUser(2))
	start := readN(t, s, users.EventPos{}, 2)[1].Pos
	from := users.Now()

	update := func(ctx context.Context, fn func(*users.User) error) *users.User {
		t.Helper()
		got, err := s.UpdateUser(ctx, users.DefaultTenant, u.ID, fn)
		if err != nil {
			t.Fatalf("UpdateUser err = %v", err)
		}
		return got
	}
	later := func(x *users.User) { x.UpdateTime = x.UpdateTime.Add(time.Minute) }
	var want []wantEvent
	expect := func(typ users.EventType, got *users.User, traceParent string, paths ...string) {
		want = append(want, wantEvent{Type: typ, UserID: u.ID, User: got, Paths: paths, TraceParent: traceParent})
	}

	got := update(ctx, func(x *users.User) error {
		x.DisplayName, x.Labels = "Renamed", map[string]string{"a": "b"}
		later(x)
		return nil
	})
	expect(users.EventUpdated, got, traceParent, "display_name", "labels")
	got = update(bg, func(x *users.User) error { x.Email = "NEW@example.com"; later(x); return nil })
	expect(users.EventUpdated, got, "", "email")
	got = update(bg, func(x *users.User) error { x.Email = "new@example.com"; later(x); return nil })
	expect(users.EventUpdated, got, "", "email") // a change of case is a change
	// Nothing an event lists changes: no event, though the revision moves.
	update(bg, func(x *users.User) error { later(x); return nil })
	update(bg, func(x *users.User) error { x.Labels = map[string]string{"a": "b"}; return nil })
	got = update(bg, func(x *users.User) error { x.Labels = nil; return nil })
	expect(users.EventUpdated, got, "", "labels")
	got = update(bg, func(x *users.User) error { x.State = users.StateSuspended; later(x); return nil })
	expect(users.EventUpdated, got, "", "state")
	got = update(ctx, softDelete)
	expect(users.EventDeleted, got, traceParent, "state", "delete_time")
	got = update(bg, func(x *users.User) error {
		x.State, x.DeleteTime = users.StateActive, time.Time{}
		later(x)
		return nil
	})
	expect(users.EventUndeleted, got, "", "state", "delete_time")
	got = update(bg, func(x *users.User) error { x.State = users.StateDeleted; x.DeleteTime = x.UpdateTime; return nil })
	expect(users.EventDeleted, got, "", "state", "delete_time")

	// u's address is free while u is deleted.
	moved, err := s.UpdateUser(bg, users.DefaultTenant, other.ID, func(x *users.User) error { x.Email = "new@example.com"; return nil })
	if err != nil {
		t.Fatalf("UpdateUser(address of a deleted user) err = %v", err)
	}
	want = append(want, wantEvent{Type: users.EventUpdated, UserID: other.ID, User: moved, Paths: []string{"email"}})

	// Updates that fail append nothing: the function's error, a taken
	// address, an unknown user.
	boom := errors.New("boom")
	if _, err := s.UpdateUser(bg, users.DefaultTenant, other.ID, func(x *users.User) error { x.DisplayName = "x"; return boom }); !errors.Is(err, boom) {
		t.Fatalf("UpdateUser(fn fails) err = %v, want %v", err, boom)
	}
	if _, err := s.UpdateUser(bg, users.DefaultTenant, u.ID, func(x *users.User) error {
		x.State, x.DeleteTime = users.StateActive, time.Time{}
		return nil
	}); !errors.Is(err, users.ErrEmailTaken) {
		t.Fatalf("UpdateUser(undelete to a taken address) err = %v, want ErrEmailTaken", err)
	}
	if _, err := s.UpdateUser(bg, users.DefaultTenant, uuid.Must(uuid.NewV7()).String(), func(*users.User) error { return nil }); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("UpdateUser(unknown) err = %v, want ErrNotFound", err)
	}
	checkEvents(t, "UpdateUser", mark(t, s, start), want, from, users.Now())
}

func testEventImport(t *testing.T, s EventStore) {
	ctx, traceParent := tracedContext()
	live := create(t, s, NewUser(1))
	start := readN(t, s, users.EventPos{}, 1)[0].Pos
	from := users.Now()
	op, chunks := createImport(t, s, "req-events", 4)
	valid := ImportedUsers(chunks[0])
	valid[0].User.Labels = map[string]string{"row": "0"}
	valid[2].User.Email = strings.ToUpper(live.Email) // taken: no user, no event
	if err := s.ImportChunk(ctx, op.ID, 0, valid, nil); err != nil {
		t.Fatalf("ImportChunk err = %v", err)
	}
	// The chunk again: nothing imported, nothing appended.
	if err := s.ImportChunk(ctx, op.ID, 0, ImportedUsers(chunks[0]), nil); err != nil {
		t.Fatalf("ImportChunk again err = %v", err)
	}
	var want []wantEvent
	for _, i := range []int{0, 1, 3} {
		u, err := s.GetUser(context.Background(), users.DefaultTenant, valid[i].User.ID)
		if err != nil {
			t.Fatalf("GetUser(row %d) err = %v", i, err)
		}
		want = append(want, wantEvent{Type: users.EventCreated, UserID: u.ID, User: u, TraceParent: traceParent})
	}
	checkEvents(t, "ImportChunk", mark(t, s, start), want, from, users.Now())
}

func testEventPurge(t *testing.T, s EventStore) {
	ctx, traceParent := tracedContext()
	bg := context.Background()
	cutoff := base.Add(24 * time.Hour)
	var gone []string
	for i := range 4 {
		u := create(t, s, NewUser(i))
		if i == 3 {
			break // stays live
		}
		at := cutoff.Add(-time.Duration(3-i) * time.Hour)
		if _, err := s.UpdateUser(bg, users.DefaultTenant, u.ID, func(x *users.User) error {
			x.State, x.DeleteTime, x.UpdateTime = users.StateDeleted, at, at
			return nil
		}); err != nil {
			t.Fatalf("UpdateUser(delete) err = %v", err)
		}
		gone = append(gone, u.ID)
	}
	start := readN(t, s, users.EventPos{}, 7)[6].Pos
	from := users.Now()
	if n, err := s.PurgeDeleted(ctx, cutoff, 2); err != nil || n != 2 {
		t.Fatalf("PurgeDeleted(limit 2) = %d, %v; want 2", n, err)
	}
	if n, err := s.PurgeDeleted(bg, cutoff, 10); err != nil || n != 1 {
		t.Fatalf("PurgeDeleted = %d, %v; want 1", n, err)
	}
	if n, err := s.PurgeDeleted(bg, cutoff, 10); err != nil || n != 0 {
		t.Fatalf("PurgeDeleted again = %d, %v; want 0", n, err)
	}
	evs := mark(t, s, start)
	// The users deleted longest ago go first; within one purge, in any
	// order.
	if len(evs) == 3 {
		slices.SortFunc(evs[:2], func(a, b users.Event) int { return strings.Compare(a.UserID, b.UserID) })
	}
	first := slices.Sorted(slices.Values(gone[:2]))
	checkEvents(t, "PurgeDeleted", evs, []wantEvent{
		{Type: users.EventPurged, UserID: first[0], TraceParent: traceParent},
		{Type: users.EventPurged, UserID: first[1], TraceParent: traceParent},
		{Type: users.EventPurged, UserID: gone[2]},
	}, from, users.Now())
}

// testEventFeedPaging reads the same feed in pages of several sizes, from
// cursors.
func testEventFeedPaging(t *testing.T, s EventStore) {
	ctx := context.Background()
	const n = 30
	for i := range n / 2 {
		u := create(t, s, NewUser(i))
		if _, err := s.UpdateUser(ctx, users.DefaultTenant, u.ID, func(x *users.User) error { x.DisplayName += "!"; return nil }); err != nil {
			t.Fatalf("UpdateUser err = %v", err)
		}
	}
	all := readN(t, s, users.EventPos{}, n)
	seen := map[string]bool{}
	for i, ev := range all {
		if seen[ev.ID] {
			t.Errorf("event %s read twice", ev.ID)
		}
		seen[ev.ID] = true
		if i > 0 && !all[i-1].Pos.Less(ev.Pos) {
			t.Errorf("event %d at %+v is not after event %d at %+v", i, ev.Pos, i-1, all[i-1].Pos)
		}
	}
	for _, size := range []int{1, 2, 7, n, n + 1} {
		var got []users.Event
		cursor := ""
		for range n + 2 {
			after, err := users.ParseEventCursor(cursor)
			if err != nil {
				t.Fatalf("ParseEventCursor(%q) err = %v", cursor, err)
			}
			page, err := s.ListEvents(ctx, users.DefaultTenant, after, size)
			if err != nil {
				t.Fatalf("ListEvents(%+v, %d) err = %v", after, size, err)
			}
			if len(page) > size {
				t.Fatalf("ListEvents(limit %d) returned %d events", size, len(page))
			}
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			cursor = page[len(page)-1].Pos.Cursor()
		}
		if diff := cmp.Diff(all, got); diff != "" {
			t.Errorf("feed read %d at a time (-all at once +paged):\n%s", size, diff)
		}
	}
	// From the middle, from the end, and no limit.
	if got, err := s.ListEvents(ctx, users.DefaultTenant, all[9].Pos, 5); err != nil || !cmp.Equal(all[10:15], got) {
		t.Errorf("ListEvents(after event 9, 5) = %v, %v; want events 10 to 14", summarizeEvents(got), err)
	}
	if got, err := s.ListEvents(ctx, users.DefaultTenant, all[n-1].Pos, 10); err != nil || len(got) != 0 {
		t.Errorf("ListEvents(after the last event) = %v, %v; want none", summarizeEvents(got), err)
	}
	for _, limit := range []int{0, -1} {
		if got, err := s.ListEvents(ctx, users.DefaultTenant, users.EventPos{}, limit); err != nil || len(got) != 0 {
			t.Errorf("ListEvents(limit %d) = %d events, %v; want none", limit, len(got), err)
		}
	}
}

func testPurgeEvents(t *testing.T, s EventStore) {
	ctx := context.Background()
	for i := range 3 {
		create(t, s, NewUser(i))
	}
	old := readN(t, s, users.EventPos{}, 3)
	time.Sleep(2 * time.Millisecond)
	cutoff := users.Now()
	time.Sleep(2 * time.Millisecond)
	for i := range 2 {
		create(t, s, NewUser(10+i))
	}
	recent := readN(t, s, old[2].Pos, 2)

	for _, step := range []struct{ limit, want int }{{0, 0}, {2, 2}, {2, 1}, {2, 0}} {
		n, err := s.PurgeEvents(ctx, cutoff, step.limit)
		if err != nil || n != step.want {
			t.Errorf("PurgeEvents(limit %d) = %d, %v; want %d", step.limit, n, err, step.want)
		}
	}
	// The feed now starts at the recent events, and cursors of purged
	// events still resume before them.
	for _, after := range []users.EventPos{{}, old[0].Pos, old[2].Pos} {
		got, err := s.ListEvents(ctx, users.DefaultTenant, after, 10)
		if err != nil || !cmp.Equal(recent, got) {
			t.Errorf("ListEvents(%+v) after the purge = %v, %v; want the %d recent events", after, summarizeEvents(got), err, len(recent))
		}
	}
	// New events follow the old ones, even once every event is purged.
	if n, err := s.PurgeEvents(ctx, users.Now().Add(time.Hour), 10); err != nil || n != 2 {
		t.Errorf("PurgeEvents(everything) = %d, %v; want 2", n, err)
	}
	next := create(t, s, NewUser(20))
	got := readN(t, s, recent[1].Pos, 1)
	if got[0].UserID != next.ID || !recent[1].Pos.Less(got[0].Pos) {
		t.Errorf("event after purging everything = %+v, want user %s's after %+v", got[0], next.ID, recent[1].Pos)
	}
}

func testGetEvent(t *testing.T, s EventStore) {
	ctx := context.Background()
	u := create(t, s, NewUser(1))
	create(t, s, NewUser(2))
	evs := readN(t, s, users.EventPos{}, 2)
	got, err := s.GetEvent(ctx, evs[0].ID)
	if err != nil {
		t.Fatalf("GetEvent err = %v", err)
	}
	if diff := cmp.Diff(&evs[0], got); diff != "" {
		t.Errorf("GetEvent (-ListEvents +GetEvent):\n%s", diff)
	}
	if got.UserID != u.ID {
		t.Errorf("GetEvent user = %s, want %s", got.UserID, u.ID)
	}
	for _, id := range []string{uuid.Must(uuid.NewV7()).String(), "not-a-uuid", u.ID} {
		if _, err := s.GetEvent(ctx, id); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("GetEvent(%q) err = %v, want ErrNotFound", id, err)
		}
	}
	if n, err := s.PurgeEvents(ctx, users.Now().Add(time.Hour), 10); err != nil || n != 2 {
		t.Fatalf("PurgeEvents = %d, %v; want 2", n, err)
	}
	if _, err := s.GetEvent(ctx, evs[0].ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("GetEvent after PurgeEvents err = %v, want ErrNotFound", err)
	}
}

func testCancelled(t *testing.T, s EventStore) {
	u := create(t, s, NewUser(1))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.GetUser(ctx, users.DefaultTenant, u.ID); err == nil {
		t.Error("GetUser with a cancelled context succeeded")
	}
	if _, err := s.UpdateUser(ctx, users.DefaultTenant, u.ID, func(*users.User) error { return nil }); err == nil {
		t.Error("UpdateUser with a cancelled context succeeded")
	}
	if _, err := s.CreateUser(ctx, NewUser(2), nil); err == nil {
		t.Error("CreateUser with a cancelled context succeeded")
	}

	op, chunks := NewImport("req-cancelled", 2)
	if _, err := s.CreateImport(ctx, op, importKey(op, "fp"), chunks); err == nil {
		t.Error("CreateImport with a cancelled context succeeded")
	}
	if _, err := s.GetOperation(context.Background(), users.DefaultTenant, op.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("GetOperation after a cancelled CreateImport err = %v, want ErrNotFound", err)
	}
	op, chunks = createImport(t, s, "req-live", 2)
	if _, err := s.GetOperation(ctx, users.DefaultTenant, op.ID); err == nil {
		t.Error("GetOperation with a cancelled context succeeded")
	}
	if err := s.ImportChunk(ctx, op.ID, 0, ImportedUsers(chunks[0]), nil); err == nil {
		t.Error("ImportChunk with a cancelled context succeeded")
	}
	if got := getOperation(t, s, op.ID); got.ChunksDone != 0 {
		t.Errorf("after a cancelled ImportChunk, ChunksDone = %d, want 0", got.ChunksDone)
	}
	if _, err := s.PurgeDeleted(ctx, time.Now(), 10); err == nil {
		t.Error("PurgeDeleted with a cancelled context succeeded")
	}
	if _, err := s.ListEvents(ctx, users.DefaultTenant, users.EventPos{}, 10); err == nil {
		t.Error("ListEvents with a cancelled context succeeded")
	}
	if _, err := s.PurgeEvents(ctx, time.Now(), 10); err == nil {
		t.Error("PurgeEvents with a cancelled context succeeded")
	}
	// The cancelled changes appended nothing: the feed holds the creation
	// of the user above, and nothing else.
	evs := mark(t, s, users.EventPos{})
	if len(evs) != 1 || evs[0].UserID != u.ID {
		t.Errorf("events after cancelled calls = %v, want only user %s's creation", summarizeEvents(evs), u.ID)
	}
}
