package client_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/client"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fleet is the replicas a test dials. Every replica answers by the key of
// the request (the id, or the email of a new user):
//
//   - "flaky-…": UNAVAILABLE on the first attempt of the key, on whichever
//     replica; then OK
//   - "down-…": always UNAVAILABLE
//   - "slow-…": blocks until the call ends
//   - anything else: OK
type fleet struct {
	mu       sync.Mutex
	calls    []int          // GetUser calls per replica
	attempts map[string]int // attempts per method and key, all replicas
}

func (f *fleet) answer(ctx context.Context, replica int, method, key string) error {
	f.mu.Lock()
	if method == "GetUser" {
		f.calls[replica]++
	}
	f.attempts[method+" "+key]++
	n := f.attempts[method+" "+key]
	f.mu.Unlock()
	switch {
	case strings.HasPrefix(key, "flaky-") && n == 1, strings.HasPrefix(key, "down-"):
		return status.Error(codes.Unavailable, "replica going away")
	case strings.HasPrefix(key, "slow-"):
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	return nil
}

func (f *fleet) attemptsOf(method, key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[method+" "+key]
}

// spread returns the GetUser calls per replica, and resets them if reset.
func (f *fleet) spread(reset bool) []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := append([]int(nil), f.calls...)
	if reset {
		clear(f.calls)
	}
	return s
}

type replicaV1 struct {
	usersv1.UnimplementedUserServiceServer
	f *fleet
	i int
}

func (r replicaV1) GetUser(ctx context.Context, req *usersv1.GetUserRequest) (*usersv1.User, error) {
	return &usersv1.User{Id: req.GetId()}, r.f.answer(ctx, r.i, "GetUser", req.GetId())
}

func (r replicaV1) CreateUser(ctx context.Context, req *usersv1.CreateUserRequest) (*usersv1.User, error) {
	return &usersv1.User{Id: "new"}, r.f.answer(ctx, r.i, "CreateUser", req.GetUser().GetEmail())
}

func (r replicaV1) UpdateUser(ctx context.Context, req *usersv1.UpdateUserRequest) (*usersv1.User, error) {
	return req.GetUser(), r.f.answer(ctx, r.i, "UpdateUser", req.GetUser().GetId())
}

type replicaV2 struct {
	usersv2.UnimplementedUserServiceServer
	f *fleet
	i int
}

func (r replicaV2) GetUser(ctx context.Context, req *usersv2.GetUserRequest) (*usersv2.User, error) {
	return &usersv2.User{Name: req.GetName()}, r.f.answer(ctx, r.i, "v2.GetUser", req.GetName())
}

// startFleet serves n replicas on loopback, with opts, and returns them and
// the static target of all of them.
func startFleet(t *testing.T, n int, opts ...grpc.ServerOption) (*fleet, string) {
	t.Helper()
	f := &fleet{calls: make([]int, n), attempts: map[string]int{}}
	var addrs []string
	for i := range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer(opts...)
		usersv1.RegisterUserServiceServer(srv, replicaV1{f: f, i: i})
		usersv2.RegisterUserServiceServer(srv, replicaV2{f: f, i: i})
		go srv.Serve(lis)
		t.Cleanup(srv.Stop)
		addrs = append(addrs, lis.Addr().String())
	}
	return f, "static:///" + strings.Join(addrs, ",")
}

func dial(t *testing.T, target string, opts ...client.Option) *client.Conn {
	t.Helper()
	conn, err := client.Dial(context.Background(), target, opts...)
	if err != nil {
		t.Fatalf("Dial(%q) = %v", target, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestRoundRobin(t *testing.T) {
	f, target := startFleet(t, 3)
	conn := dial(t, target)
	ctx := context.Background()

	// Round-robin picks among the connected replicas only: wait until every
	// replica has one.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := conn.V1().GetUser(ctx, &usersv1.GetUserRequest{Id: "warm-up"}); err != nil {
			t.Fatalf("GetUser = %v", err)
		}
		s := f.spread(false)
		if s[0] > 0 && s[1] > 0 && s[2] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every replica connected within 5s: calls %v", s)
		}
	}
	f.spread(true)

	for i := range 300 {
		if _, err := conn.V1().GetUser(ctx, &usersv1.GetUserRequest{Id: "u"}); err != nil {
			t.Fatalf("GetUser #%d = %v", i, err)
		}
	}
	s := f.spread(true)
	t.Logf("300 calls over 3 replicas: %v", s)
	for i, n := range s {
		if n < 80 || n > 120 {
			t.Errorf("replica %d got %d of 300 calls, want 100±20 (all: %v)", i, n, s)
		}
	}
}

func TestRetries(t *testing.T) {
	f, target := startFleet(t, 3)
	conn := dial(t, target)
	ctx := context.Background()

	tests := []struct {
		name         string
		call         func() error
		method, key  string
		wantCode     codes.Code
		wantAttempts int
	}{
		{"GetUser retried", func() error {
			_, err := conn.V1().GetUser(ctx, &usersv1.GetUserRequest{Id: "flaky-get"})
			return err
		}, "GetUser", "flaky-get", codes.OK, 2},
		{"GetUser gives up after 4 attempts", func() error {
			_, err := conn.V1().GetUser(ctx, &usersv1.GetUserRequest{Id: "down-get"})
			return err
		}, "GetUser", "down-get", codes.Unavailable, 4},
		{"v2 GetUser retried", func() error {
			_, err := conn.V2().GetUser(ctx, &usersv2.GetUserRequest{Name: "flaky-get2"})
			return err
		}, "v2.GetUser", "flaky-get2", codes.OK, 2},
		{"CreateUser with request_id retried", func() error {
			_, err := conn.V1().CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{Email: "flaky-create"}, RequestId: "r1"})
			return err
		}, "CreateUser", "flaky-create", codes.OK, 2},
		{"CreateUser with idempotency-key retried", func() error {
			mctx := metadata.AppendToOutgoingContext(ctx, "idempotency-key", "r2")
			_, err := conn.V1().CreateUser(mctx, &usersv1.CreateUserRequest{User: &usersv1.User{Email: "flaky-create-md"}})
			return err
		}, "CreateUser", "flaky-create-md", codes.OK, 2},
		{"CreateUser with request_id gives up after 4 attempts", func() error {
			_, err := conn.V1().CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{Email: "down-create"}, RequestId: "r3"})
			return err
		}, "CreateUser", "down-create", codes.Unavailable, 4},
		{"CreateUser without request_id not retried", func() error {
			_, err := conn.V1().CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{Email: "flaky-create-no-id"}})
			return err
		}, "CreateUser", "flaky-create-no-id", codes.Unavailable, 1},
		{"UpdateUser not retried", func() error {
			_, err := conn.V1().UpdateUser(ctx, &usersv1.UpdateUserRequest{User: &usersv1.User{Id: "flaky-update"}})
			return err
		}, "UpdateUser", "flaky-update", codes.Unavailable, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if got := status.Code(err); got != tt.wantCode {
				t.Errorf("code = %v (%v), want %v", got, err, tt.wantCode)
			}
			if got := f.attemptsOf(tt.method, tt.key); got != tt.wantAttempts {
				t.Errorf("attempts = %d, want %d", got, tt.wantAttempts)
			}
		})
	}
}

func TestDefaultTimeout(t *testing.T) {
	_, target := startFleet(t, 1)
	conn := dial(t, target, client.WithTimeout(200*time.Millisecond))

	start := time.Now()
	_, err := conn.V1().GetUser(context.Background(), &usersv1.GetUserRequest{Id: "slow-1"})
	took := time.Since(start)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("GetUser without deadline = %v, want DEADLINE_EXCEEDED", err)
	}
	if took < 200*time.Millisecond || took > 2*time.Second {
		t.Errorf("GetUser without deadline took %v, want about 200ms", took)
	}

	// A deadline of the caller's wins, even when longer.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = conn.V1().GetUser(ctx, &usersv1.GetUserRequest{Id: "slow-2"})
	took = time.Since(start)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("GetUser with deadline = %v, want DEADLINE_EXCEEDED", err)
	}
	if took < 500*time.Millisecond {
		t.Errorf("GetUser with a 500ms deadline took %v, cut short by the default", took)
	}
}

func TestDialBadTarget(t *testing.T) {
	if _, err := client.Dial(context.Background(), "static:///"); err == nil {
		t.Error("Dial(static:///) = nil, want an error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := client.Dial(ctx, "static:///127.0.0.1:1"); !errors.Is(err, context.Canceled) {
		t.Errorf("Dial(cancelled) = %v, want context.Canceled", err)
	}
}
