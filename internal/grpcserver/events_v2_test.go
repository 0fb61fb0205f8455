package grpcserver_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
)

func summarizeV2(evs []*usersv2.UserEvent) []eventSummary {
	out := make([]eventSummary, len(evs))
	for i, ev := range evs {
		out[i] = eventSummary{Type: ev.GetType(), UserID: ev.GetUser(), Paths: ev.GetChangedPaths(), HasUser: ev.GetSnapshot() != nil}
	}
	return out
}

// TestV2ListUserEvents walks the feed through users.v2, as
// TestListUserEvents does through v1: events named userEvents/{id}, their
// user by name, and the same cursors as v1's.
func TestV2ListUserEvents(t *testing.T) {
	e := newEventsEnv(t)
	ctx := context.Background()
	u := mustCreate(t, e.client, user("ada@example.com", "Ada"))
	name := "users/" + u.GetId()
	if _, err := e.v2.UpdateUser(ctx, &usersv2.UpdateUserRequest{
		User:       &usersv2.User{Name: name, DisplayName: "Ada L.", Labels: map[string]string{"team": "math"}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"display_name", "labels"}},
	}); err != nil {
		t.Fatalf("UpdateUser err = %v", err)
	}
	mustDelete(t, e.client, u.GetId())
	time.Sleep(2 * time.Millisecond) // past the retention of deleted users
	if n, err := e.svc.PurgeDeleted(ctx); err != nil || n != 1 {
		t.Fatalf("PurgeDeleted = %d, %v; want 1, nil", n, err)
	}

	var got []*usersv2.UserEvent
	after := ""
	for page := 0; ; page++ {
		res, err := e.v2.ListUserEvents(ctx, &usersv2.ListUserEventsRequest{After: after, PageSize: 3})
		if err != nil {
			t.Fatalf("ListUserEvents(after %q) err = %v", after, err)
		}
		evs := res.GetEvents()
		if len(evs) == 0 {
			if res.GetNextCursor() != after {
				t.Errorf("empty page next_cursor = %q, want after %q", res.GetNextCursor(), after)
			}
			break
		}
		if last := evs[len(evs)-1].GetCursor(); res.GetNextCursor() != last {
			t.Errorf("page %d next_cursor = %q, want its last event's cursor %q", page, res.GetNextCursor(), last)
		}
		got = append(got, evs...)
		after = res.GetNextCursor()
		if page > 3 {
			t.Fatalf("the feed of 4 events did not end after %d pages", page)
		}
	}
	want := []eventSummary{
		{Type: "user.created", UserID: name, HasUser: true},
		{Type: "user.updated", UserID: name, Paths: []string{"displayName", "labels"}, HasUser: true},
		{Type: "user.deleted", UserID: name, Paths: []string{"state", "deleteTime"}, HasUser: true},
		{Type: "user.purged", UserID: name},
	}
	if diff := cmp.Diff(want, summarizeV2(got)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if len(got) == len(want) {
		if s := got[1].GetSnapshot(); s.GetDisplayName() != "Ada L." || s.GetName() != name {
			t.Errorf("user.updated snapshot = %v, want %s as the change left it", s, name)
		}
		if s := got[2].GetSnapshot(); s.GetState() != usersv2.User_STATE_DELETED || s.GetDeleteTime() == nil {
			t.Errorf("user.deleted snapshot = %v, want it DELETED with a delete_time", s)
		}
	}

	// The same feed through v1: the same events, ids and cursors.
	v1, err := e.client.ListUserEvents(ctx, &usersv1.ListUserEventsRequest{})
	if err != nil {
		t.Fatalf("v1 ListUserEvents err = %v", err)
	}
	if len(v1.GetEvents()) != len(got) {
		t.Fatalf("v1 has %d events, v2 %d", len(v1.GetEvents()), len(got))
	}
	for i, ev := range got {
		one := v1.GetEvents()[i]
		if ev.GetName() != "userEvents/"+one.GetId() || ev.GetCursor() != one.GetCursor() || !ev.GetCreateTime().AsTime().Equal(one.GetTime().AsTime()) {
			t.Errorf("event %d: v2 %v, v1 %v; want the same event", i, ev, one)
		}
	}
}

func TestV2ListUserEventsErrors(t *testing.T) {
	e := newEventsEnv(t)
	tests := []struct {
		name  string
		req   *usersv2.ListUserEventsRequest
		field string
	}{
		{"malformed cursor", &usersv2.ListUserEventsRequest{After: "not a cursor"}, "after"},
		{"cursor too long", &usersv2.ListUserEventsRequest{After: string(make([]byte, 65))}, "after"},
		{"negative page size", &usersv2.ListUserEventsRequest{PageSize: -1}, "page_size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.v2.ListUserEvents(context.Background(), tc.req)
			checkErr(t, "ListUserEvents", err, codes.InvalidArgument, tc.field)
		})
	}
}

// TestV2WatchUserEvents checks the v2 stream: the backlog after its
// cursor, then events committed later, until the client cancels.
func TestV2WatchUserEvents(t *testing.T) {
	e := newEventsEnv(t)
	ada := mustCreate(t, e.client, user("ada@example.com", "Ada"))
	bob := mustCreate(t, e.client, user("bob@example.com", "Bob"))
	first, err := e.v2.ListUserEvents(context.Background(), &usersv2.ListUserEventsRequest{PageSize: 1})
	if err != nil {
		t.Fatalf("ListUserEvents err = %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := e.v2.WatchUserEvents(ctx, &usersv2.WatchUserEventsRequest{After: first.GetNextCursor()})
	if err != nil {
		t.Fatalf("WatchUserEvents err = %v", err)
	}
	backlog := recvEvents(t, stream, 1)
	if got := summarizeV2(backlog); got[0].UserID != "users/"+bob.GetId() || got[0].Type != "user.created" || !got[0].HasUser {
		t.Errorf("backlog after Ada's event = %+v, want Bob's user.created", got)
	}
	if !strings.HasPrefix(backlog[0].GetName(), "userEvents/") {
		t.Errorf("event name = %q, want userEvents/{id}", backlog[0].GetName())
	}
	mustDelete(t, e.client, ada.GetId())
	live := recvEvents(t, stream, 1)
	if got := summarizeV2(live); got[0].UserID != "users/"+ada.GetId() || got[0].Type != "user.deleted" {
		t.Errorf("live event = %+v, want Ada's user.deleted", got)
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
}

func TestV2WatchUserEventsInvalid(t *testing.T) {
	e := newEventsEnv(t)
	for _, after := range []string{"not a cursor", string(make([]byte, 65))} {
		stream, err := e.v2.WatchUserEvents(context.Background(), &usersv2.WatchUserEventsRequest{After: after})
		if err == nil {
			_, err = stream.Recv()
		}
		checkErr(t, "WatchUserEvents", err, codes.InvalidArgument, "after")
	}
}

// TestDrainEndsBothVersions checks that the one Drain usersd calls, the v1
// Server's, ends the streams of users.v2 too, and GracefulStop then has
// no stream to wait for.
func TestDrainEndsBothVersions(t *testing.T) {
	e := newEventsEnv(t)
	mustCreate(t, e.client, user("ada@example.com", "Ada"))
	v1, err := e.client.WatchUserEvents(context.Background(), &usersv1.WatchUserEventsRequest{})
	if err != nil {
		t.Fatalf("v1 WatchUserEvents err = %v", err)
	}
	v2, err := e.v2.WatchUserEvents(context.Background(), &usersv2.WatchUserEventsRequest{})
	if err != nil {
		t.Fatalf("v2 WatchUserEvents err = %v", err)
	}
	recvEvents(t, v1, 1) // both are caught up and polling
	recvEvents(t, v2, 1)

	e.api.Drain()
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
	for name, recv := range map[string]func() error{
		"v1": func() error { _, err := v1.Recv(); return err },
		"v2": func() error { _, err := v2.Recv(); return err },
	} {
		var err error
		for err == nil {
			err = recv()
		}
		if errors.Is(err, io.EOF) || status.Code(err) != codes.Unavailable {
			t.Errorf("%s: Recv after Drain err = %v, want Unavailable", name, err)
		}
	}
}
