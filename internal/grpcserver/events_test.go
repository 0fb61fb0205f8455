package grpcserver_test

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/grpcserver"
	"github.com/usersd/usersd/internal/sqlite"
	"github.com/usersd/usersd/internal/users"
)

// eventsEnv is users.v1 and users.v2 (api.V2(), as usersd serves it)
// served on 127.0.0.1:0 through the production unary chain, on a fresh
// SQLite database whose deleted users may be purged at once.
type eventsEnv struct {
	svc    *users.Service
	api    *grpcserver.Server
	srv    *grpc.Server
	client usersv1.UserServiceClient
	v2     usersv2.UserServiceClient
}

func newEventsEnv(t *testing.T) *eventsEnv {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "users.db"))
	if err != nil {
		t.Fatalf("sqlite.Open err = %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if err := sqlite.Migrate(ctx, db, nil); err != nil {
		t.Fatalf("sqlite.Migrate err = %v", err)
	}
	e := &eventsEnv{svc: users.NewService(sqlite.NewStore(db), users.Config{DeletedRetention: time.Nanosecond})}
	e.api = grpcserver.New(e.svc)
	ics := grpcserver.Interceptors(grpcserver.ChainConfig{Log: zerolog.Nop()})
	e.srv = grpc.NewServer(grpc.ChainUnaryInterceptor(ics...))
	usersv1.RegisterUserServiceServer(e.srv, e.api)
	usersv2.RegisterUserServiceServer(e.srv, e.api.V2())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen err = %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- e.srv.Serve(lis) }()
	t.Cleanup(func() {
		e.srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("Serve err = %v", err)
		}
	})
	conn, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("NewClient err = %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	e.client = usersv1.NewUserServiceClient(conn)
	e.v2 = usersv2.NewUserServiceClient(conn)
	return e
}

// eventSummary is what a test checks of an event.
type eventSummary struct {
	Type, UserID string
	Paths        []string
	HasUser      bool
}

func summarize(evs []*userEvent) []eventSummary {
	out := make([]eventSummary, len(evs))
	for i, ev := range evs {
		out[i] = eventSummary{Type: ev.Type, UserID: ev.User, Paths: ev.ChangedPaths, HasUser: ev.Snapshot != nil}
	}
	return out
}

// TestListUserEvents walks the feed of a create, an update, a delete and
// a purge a page at a time, and checks the cursors: each page's
// next_cursor is its last event's, and an empty page gives back after.
// Each version names the events and their user its way (userEvents/{id}
// and tenants/default/users/{id} in v2), and both versions list the same
// events.
func TestListUserEvents(t *testing.T) {
	forEachVersion(t, func(t *testing.T, e *eventsEnv, v apiVersion) {
		ctx := context.Background()
		u := mustCreate(t, e.client, user("ada@example.com", "Ada"))
		ref := v.userRef(u.GetId())
		if err := v.updateUser(ctx, u.GetId(), "Ada L.", map[string]string{"team": "math"}, "display_name", "labels"); err != nil {
			t.Fatalf("UpdateUser err = %v", err)
		}
		mustDelete(t, e.client, u.GetId())
		time.Sleep(2 * time.Millisecond) // past the retention of deleted users
		if n, err := e.svc.PurgeDeleted(ctx); err != nil || n != 1 {
			t.Fatalf("PurgeDeleted = %d, %v; want 1, nil", n, err)
		}

		var got []*userEvent
		after := ""
		for page := 0; ; page++ {
			evs, next, err := v.listUserEvents(ctx, after, 3)
			if err != nil {
				t.Fatalf("ListUserEvents(after %q) err = %v", after, err)
			}
			if len(evs) == 0 {
				if next != after {
					t.Errorf("empty page next_cursor = %q, want after %q", next, after)
				}
				break
			}
			if last := evs[len(evs)-1].Cursor; next != last {
				t.Errorf("page %d next_cursor = %q, want its last event's cursor %q", page, next, last)
			}
			got = append(got, evs...)
			after = next
			if page > 3 {
				t.Fatalf("the feed of 4 events did not end after %d pages", page)
			}
		}
		want := []eventSummary{
			{Type: "user.created", UserID: ref, HasUser: true},
			{Type: "user.updated", UserID: ref, Paths: []string{"displayName", "labels"}, HasUser: true},
			{Type: "user.deleted", UserID: ref, Paths: []string{"state", "deleteTime"}, HasUser: true},
			{Type: "user.purged", UserID: ref},
		}
		if diff := cmp.Diff(want, summarize(got)); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		if len(got) == len(want) {
			if s := got[1].Snapshot; s == nil || s.DisplayName != "Ada L." || s.Ref != ref {
				t.Errorf("user.updated user = %+v, want %s as the change left it", s, ref)
			}
			if s := got[2].Snapshot; s == nil || !s.Deleted || s.DeleteTime == nil {
				t.Errorf("user.deleted user = %+v, want it DELETED with a delete_time", s)
			}
		}
		for i, ev := range got {
			if _, ok := refID(ev.Ref, v.eventRef); !ok || ev.Time == nil || ev.Cursor == "" {
				t.Errorf("event %d = %+v, want a %s, a time and a cursor", i, ev, v.eventRef("{id}"))
			}
		}

		// The same feed through each version: the same events, ids,
		// cursors and times.
		for name, other := range e.versions() {
			evs, _, err := other.listUserEvents(ctx, "", 0)
			if err != nil {
				t.Fatalf("%s ListUserEvents err = %v", name, err)
			}
			if len(evs) != len(got) {
				t.Fatalf("%s has %d events, %s %d", name, len(evs), v.name(), len(got))
			}
			for i, ev := range got {
				id, _ := refID(ev.Ref, v.eventRef)
				one := evs[i]
				if one.Ref != other.eventRef(id) || one.Cursor != ev.Cursor || !one.Time.AsTime().Equal(ev.Time.AsTime()) {
					t.Errorf("event %d: %s %+v, %s %+v; want the same event", i, v.name(), ev, name, one)
				}
			}
		}
	})
}

func TestListUserEventsErrors(t *testing.T) {
	forEachVersion(t, func(t *testing.T, e *eventsEnv, v apiVersion) {
		tests := []struct {
			name     string
			after    string
			pageSize int32
			field    string
		}{
			{"malformed cursor", "not a cursor", 0, "after"},
			{"cursor too long", string(make([]byte, 65)), 0, "after"},
			{"negative page size", "", -1, "page_size"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				_, _, err := v.listUserEvents(context.Background(), tc.after, tc.pageSize)
				checkErr(t, "ListUserEvents", err, codes.InvalidArgument, tc.field)
			})
		}
	})
}

// recvEvents receives n events from stream, of either API version,
// failing the test after a few seconds.
func recvEvents[E any](t *testing.T, stream grpc.ServerStreamingClient[E], n int) []*E {
	t.Helper()
	type result struct {
		ev  *E
		err error
	}
	var out []*E
	for len(out) < n {
		ch := make(chan result, 1)
		go func() {
			ev, err := stream.Recv()
			ch <- result{ev, err}
		}()
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatalf("Recv after %d of %d events err = %v", len(out), n, r.err)
			}
			out = append(out, r.ev)
		case <-time.After(5 * time.Second):
			t.Fatalf("Recv: no event %d of %d within 5s", len(out)+1, n)
		}
	}
	return out
}

// TestWatchUserEvents checks that a stream sends the backlog after its
// cursor, then events committed later, and ends when the client cancels.
func TestWatchUserEvents(t *testing.T) {
	forEachVersion(t, func(t *testing.T, e *eventsEnv, v apiVersion) {
		ada := mustCreate(t, e.client, user("ada@example.com", "Ada"))
		bob := mustCreate(t, e.client, user("bob@example.com", "Bob"))
		_, next, err := v.listUserEvents(context.Background(), "", 1)
		if err != nil {
			t.Fatalf("ListUserEvents err = %v", err)
		}

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		stream, err := v.watchUserEvents(ctx, next)
		if err != nil {
			t.Fatalf("WatchUserEvents err = %v", err)
		}
		backlog := recvEvents(t, stream, 1)
		if got := summarize(backlog); got[0].UserID != v.userRef(bob.GetId()) || got[0].Type != "user.created" || !got[0].HasUser {
			t.Errorf("backlog after Ada's event = %+v, want Bob's user.created", got)
		}
		if _, ok := refID(backlog[0].Ref, v.eventRef); !ok {
			t.Errorf("event name = %q, want %s", backlog[0].Ref, v.eventRef("{id}"))
		}
		mustDelete(t, e.client, ada.GetId())
		live := recvEvents(t, stream, 1)
		if got := summarize(live); got[0].UserID != v.userRef(ada.GetId()) || got[0].Type != "user.deleted" {
			t.Errorf("live event = %+v, want Ada's user.deleted", got)
		}
		if live[0].Cursor == backlog[0].Cursor {
			t.Errorf("live and backlog events share cursor %q", live[0].Cursor)
		}

		cancel()
		for {
			if _, err := stream.Recv(); err != nil {
				if status.Code(err) != codes.Canceled {
					t.Errorf("Recv after cancel err = %v, want Canceled", err)
				}
				break
			}
		}
	})
}

// TestWatchUserEventsBacklogPages checks a backlog longer than a page of
// the stream (500 events): every event once, in feed order.
func TestWatchUserEventsBacklogPages(t *testing.T) {
	e := newEventsEnv(t)
	const n = 1100
	for i := range n {
		if _, err := e.svc.Create(context.Background(), users.CreateRequest{User: &users.User{Email: newEmail(), DisplayName: "User"}}); err != nil {
			t.Fatalf("Create %d err = %v", i, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := e.client.WatchUserEvents(ctx, &usersv1.WatchUserEventsRequest{})
	if err != nil {
		t.Fatalf("WatchUserEvents err = %v", err)
	}
	got := recvEvents(t, stream, n)
	seen := map[string]bool{}
	for i, ev := range got {
		if seen[ev.GetId()] {
			t.Fatalf("event %d (%s) sent twice", i, ev.GetId())
		}
		seen[ev.GetId()] = true
	}
	res, err := e.client.ListUserEvents(context.Background(), &usersv1.ListUserEventsRequest{After: got[n-2].GetCursor()})
	if err != nil || len(res.GetEvents()) != 1 || res.GetEvents()[0].GetId() != got[n-1].GetId() {
		t.Errorf("the event after the stream's last but one = %v, %v; want its last", res.GetEvents(), err)
	}
}

func TestWatchUserEventsInvalid(t *testing.T) {
	forEachVersion(t, func(t *testing.T, e *eventsEnv, v apiVersion) {
		for _, after := range []string{"not a cursor", string(make([]byte, 65))} {
			stream, err := v.watchUserEvents(context.Background(), after)
			if err == nil {
				_, err = stream.Recv()
			}
			checkErr(t, "WatchUserEvents", err, codes.InvalidArgument, "after")
		}
	})
}

// TestWatchUserEventsDrain checks the shutdown of streams: Drain, the v1
// Server's that usersd calls, ends the streams of both API versions that
// are open with UNAVAILABLE, those that start after it too, and
// GracefulStop then has no stream to wait for.
func TestWatchUserEventsDrain(t *testing.T) {
	e := newEventsEnv(t)
	mustCreate(t, e.client, user("ada@example.com", "Ada"))
	vs := e.versions()
	open := func(v apiVersion) grpc.ServerStreamingClient[userEvent] {
		t.Helper()
		stream, err := v.watchUserEvents(context.Background(), "")
		if err != nil {
			t.Fatalf("%s WatchUserEvents err = %v", v.name(), err)
		}
		return stream
	}
	checkDrained := func(name string, s grpc.ServerStreamingClient[userEvent]) {
		t.Helper()
		var err error
		for err == nil {
			_, err = s.Recv()
		}
		if errors.Is(err, io.EOF) || status.Code(err) != codes.Unavailable {
			t.Errorf("%s: Recv after Drain err = %v, want Unavailable", name, err)
		} else if msg := status.Convert(err).Message(); msg != "server shutting down; resume from your cursor" {
			t.Errorf("%s: Unavailable message = %q", name, msg)
		}
	}
	first, second, v2 := open(vs["v1"]), open(vs["v1"]), open(vs["v2"])
	recvEvents(t, first, 1) // all are caught up and polling
	recvEvents(t, second, 1)
	recvEvents(t, v2, 1)

	e.api.Drain()
	e.api.Drain() // a second call is harmless
	checkDrained("stream opened after Drain", open(vs["v1"]))
	stopped := make(chan struct{})
	go func() {
		e.srv.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("GracefulStop still waits 5s after Drain")
	}
	checkDrained("first stream", first)
	checkDrained("second stream", second)
	checkDrained("v2 stream", v2)
}
