package grpcserver_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/grpcserver"
	"github.com/usersd/usersd/internal/inproc"
)

func TestV1Retirement(t *testing.T) {
	got := grpcserver.V1Retirement(time.Date(2027, 6, 30, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600)))
	want := grpcserver.Retirement{
		Deprecation: "@1795478400", // 2026-11-24T00:00:00Z, the v2 release
		Sunset:      "Wed, 30 Jun 2027 10:00:00 GMT",
		Link: "<https://github.com/usersd/usersd/blob/main/docs/api.md#migrating-from-v1-to-v2>; rel=\"deprecation\", " +
			"<https://github.com/usersd/usersd/blob/main/docs/api.md#migrating-from-v1-to-v2>; rel=\"sunset\"",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("V1Retirement mismatch (-want +got):\n%s", diff)
	}
}

// sunsetConn serves users.v1 and users.v2 with unimplemented methods (the
// interceptors run all the same) behind the interceptor chain of cfg, on an
// in-process channel; cmd/usersd tests the same over the network.
func sunsetConn(t *testing.T, cfg grpcserver.ChainConfig) grpc.ClientConnInterface {
	t.Helper()
	cfg.Log = zerolog.Nop()
	ics := grpcserver.Interceptors(cfg)
	ch := inproc.New(grpcserver.Chain(ics...))
	usersv1.RegisterUserServiceServer(ch, usersv1.UnimplementedUserServiceServer{})
	usersv2.RegisterUserServiceServer(ch, usersv2.UnimplementedUserServiceServer{})
	return ch
}

func TestSunsetInterceptor(t *testing.T) {
	sunset := time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC)
	ret := grpcserver.V1Retirement(sunset)
	announced := sunsetConn(t, grpcserver.ChainConfig{Sunset: sunset})
	silent := sunsetConn(t, grpcserver.ChainConfig{})

	tests := []struct {
		name string
		call func(ctx context.Context, opts ...grpc.CallOption) error
		want bool
	}{
		{"v1", func(ctx context.Context, opts ...grpc.CallOption) error {
			_, err := usersv1.NewUserServiceClient(announced).GetUser(ctx, &usersv1.GetUserRequest{Id: "x"}, opts...)
			return err
		}, true},
		{"v2", func(ctx context.Context, opts ...grpc.CallOption) error {
			_, err := usersv2.NewUserServiceClient(announced).GetUser(ctx, &usersv2.GetUserRequest{Name: "users/x"}, opts...)
			return err
		}, false},
		{"v1 without sunset", func(ctx context.Context, opts ...grpc.CallOption) error {
			_, err := usersv1.NewUserServiceClient(silent).GetUser(ctx, &usersv1.GetUserRequest{Id: "x"}, opts...)
			return err
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var md metadata.MD
			// The calls fail (invalid id, or unimplemented): the metadata
			// comes with errors too.
			if err := tc.call(context.Background(), grpc.Header(&md)); status.Code(err) == codes.OK {
				t.Fatalf("call err = nil, want an error")
			}
			for k, v := range map[string]string{
				grpcserver.MDDeprecation: ret.Deprecation,
				grpcserver.MDSunset:      ret.Sunset,
				grpcserver.MDLink:        ret.Link,
			} {
				got := md.Get(k)
				switch {
				case tc.want && (len(got) != 1 || got[0] != v):
					t.Errorf("metadata %s = %q, want %q", k, got, v)
				case !tc.want && len(got) > 0:
					t.Errorf("metadata %s = %q, want none", k, got)
				}
			}
		})
	}
}
