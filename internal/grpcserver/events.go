package grpcserver

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/usersd/usersd/internal/users"
)

// Pacing of WatchUserEvents.
const (
	// watchPageSize is how many events a stream reads from the feed at a
	// time.
	watchPageSize = 500
	// watchPoll is how long a stream that has caught up waits before it
	// reads the feed again.
	watchPoll = 200 * time.Millisecond
)

// errDraining ends the streams of a server that is shutting down.
var errDraining = status.Error(codes.Unavailable, "server shutting down; resume from your cursor")

// watch is WatchUserEvents, of every API version: it sends the tenant's
// events (every tenant's for users.AllTenants) after the cursor after, a page at a time, then reads the feed again
// every watchPoll once it has caught up, until the client cancels or Drain
// is called. The unary chain does not run for streams, so it validates req
// and maps errors to statuses of the API version of method, a full method
// name, itself.
func (s *ServerV2) watch(ctx context.Context, method string, req proto.Message, tenant, after string, send func(users.Event) error) error {
	if err := validator.Validate(req); err != nil {
		return streamStatus(ctx, method, invalidFrom(err))
	}
	var poll *time.Timer
	for {
		select {
		case <-s.draining:
			return errDraining
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		default:
		}
		page, err := s.svc.ListEvents(ctx, tenant, after, watchPageSize)
		if err != nil {
			return streamStatus(ctx, method, err)
		}
		for _, ev := range page.Events {
			if err := send(ev); err != nil {
				return err
			}
		}
		after = page.Next
		if len(page.Events) == watchPageSize {
			continue // more backlog
		}
		if poll == nil {
			poll = time.NewTimer(watchPoll)
			defer poll.Stop()
		} else {
			poll.Reset(watchPoll)
		}
		select {
		case <-poll.C:
		case <-s.draining:
			return errDraining
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// streamStatus is what the Errors interceptor does, for a stream of
// method: err as a gRPC status in the terms of method's API version, its
// detail on the call's telemetry when it is internal.
func streamStatus(ctx context.Context, method string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	return callError(ctx, apiFields(method, err), nil)
}
