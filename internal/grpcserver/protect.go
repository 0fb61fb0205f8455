package grpcserver

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/telemetry"
)

// RecoveryInterceptor turns a panic in a handler into INTERNAL; the panic
// value and stack go to the request's telemetry.Call for the access log.
func RecoveryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			telemetry.CallFrom(ctx).SetCause(fmt.Errorf("panic: %v\n%s", p, debug.Stack()))
			resp, err = nil, status.Error(codes.Internal, "internal error")
		}
	}()
	return handler(ctx, req)
}

// DeadlineInterceptor gives every call without a deadline one of d, but
// an export (which the gateway runs through this chain): it lasts as long
// as the tenant has users to send, and the client's deadline, or its
// going away, ends it, as over gRPC. A client's own deadline
// (grpc-timeout, or the HTTP Grpc-Timeout header) stands, and reaches
// every statement through ctx.
func DeadlineInterceptor(d time.Duration) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if _, ok := ctx.Deadline(); ok || d <= 0 || info.FullMethod == usersv2.UserService_ExportUsers_FullMethodName {
			return handler(ctx, req)
		}
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return handler(ctx, req)
	}
}
