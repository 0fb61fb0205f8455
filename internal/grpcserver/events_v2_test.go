package grpcserver_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
)

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
