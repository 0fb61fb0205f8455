package main

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/client"
)

// connCounter is a client stats.Handler that counts new connections.
type connCounter struct{ conns atomic.Int32 }

func (c *connCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (c *connCounter) HandleRPC(context.Context, stats.RPCStats)                         {}
func (c *connCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (c *connCounter) HandleConn(_ context.Context, s stats.ConnStats) {
	if _, ok := s.(*stats.ConnBegin); ok {
		c.conns.Add(1)
	}
}

// TestMaxConnectionAge checks that the server ends connections after
// --grpc-max-connection-age and that the client follows without a failed
// call: the GOAWAY lets calls in flight finish and new ones go to a new
// connection.
func TestMaxConnectionAge(t *testing.T) {
	s := startServer(t, "--grpc-max-connection-age", "300ms", "--grpc-max-connection-age-grace", "5s")
	counter := &connCounter{}
	conn, err := client.Dial(context.Background(), "static:///"+s.GRPC, client.WithDialOptions(grpc.WithStatsHandler(counter)))
	if err != nil {
		t.Fatalf("client.Dial = %v", err)
	}
	defer conn.Close()

	ctx := context.Background()
	u, err := conn.V1().CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{Email: "age@example.com", DisplayName: "Age"}})
	if err != nil {
		t.Fatalf("CreateUser = %v", err)
	}
	var calls, failed int
	for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); {
		calls++
		if _, err := conn.V1().GetUser(ctx, &usersv1.GetUserRequest{Id: u.GetId()}); err != nil {
			failed++
			t.Errorf("GetUser #%d = %v", calls, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	n := counter.conns.Load()
	t.Logf("%d calls, %d failed, over %d connections", calls, failed, n)
	if n < 2 {
		t.Errorf("connections = %d over 1.5s with a 300ms max age, want ≥ 2", n)
	}
}
