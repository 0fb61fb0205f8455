package grpcserver

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	usersv1 "github.com/usersd/usersd/api/users/v1"
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

// ListUserEvents implements users.v1.UserService.
func (s *Server) ListUserEvents(ctx context.Context, req *usersv1.ListUserEventsRequest) (*usersv1.ListUserEventsResponse, error) {
	page, err := s.svc.ListEvents(ctx, req.GetAfter(), int(req.GetPageSize()))
	if err != nil {
		return nil, err
	}
	res := &usersv1.ListUserEventsResponse{Events: make([]*usersv1.UserEvent, len(page.Events)), NextCursor: page.Next}
	for i, ev := range page.Events {
		res.Events[i] = eventToProto(ev)
	}
	return res, nil
}

// WatchUserEvents implements users.v1.UserService. It sends the events
// after the request's cursor, a page at a time, then reads the feed again
// every watchPoll once it has caught up, until the client cancels or Drain
// is called. The unary chain does not run for streams, so it validates the
// request and maps errors to statuses itself.
func (s *Server) WatchUserEvents(req *usersv1.WatchUserEventsRequest, stream grpc.ServerStreamingServer[usersv1.UserEvent]) error {
	ctx := stream.Context()
	if err := validator.Validate(req); err != nil {
		return streamStatus(ctx, invalidFrom(err))
	}
	after := req.GetAfter()
	var poll *time.Timer
	for {
		select {
		case <-s.draining:
			return errDraining
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		default:
		}
		page, err := s.svc.ListEvents(ctx, after, watchPageSize)
		if err != nil {
			return streamStatus(ctx, err)
		}
		for _, ev := range page.Events {
			if err := stream.Send(eventToProto(ev)); err != nil {
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

// streamStatus is what ErrorInterceptor does, for a stream: err as a gRPC
// status, its detail on the call's telemetry when it is internal.
func streamStatus(ctx context.Context, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	return callError(ctx, err, nil)
}

// eventToProto returns the API form of an event.
func eventToProto(ev users.Event) *usersv1.UserEvent {
	pb := &usersv1.UserEvent{
		Id:          ev.ID,
		Type:        string(ev.Type),
		UserId:      ev.UserID,
		Time:        timestamppb.New(ev.Time),
		Cursor:      ev.Pos.Cursor(),
		Traceparent: ev.TraceParent,
	}
	if ev.User != nil {
		pb.User = toProto(ev.User)
	}
	if len(ev.Paths) > 0 {
		pb.ChangedPaths = make([]string, len(ev.Paths))
		for i, p := range ev.Paths {
			pb.ChangedPaths[i] = jsonName(p)
		}
	}
	return pb
}

// jsonName returns the lowerCamelCase JSON name of a snake_case field
// name: "display_name" is "displayName".
func jsonName(field string) string {
	parts := strings.Split(field, "_")
	for i := 1; i < len(parts); i++ {
		if p := parts[i]; p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "")
}
