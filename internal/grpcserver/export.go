package grpcserver

import (
	"google.golang.org/grpc"

	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/users"
)

// ExportUsers implements users.v2.UserService: it streams every user of
// the tenant that matches the filter, by create time then id, read from
// one snapshot of the store (users.Service.Export), one message per user,
// as it reads them: the server holds a bounded number of users whatever
// the tenant's size, and a slow client slows the read (flow control)
// rather than filling memory.
//
// Over the network, as every stream, it runs under the span and auth
// interceptors alone (the auth rule is users.admin, the caller bound to
// its tenant), so it validates the request and maps errors to statuses
// itself, as WatchUserEvents does; the deadline is the client's. Through
// the gateway's in-process channel, the unary chain runs around it
// (metrics, access log, deadline, rate limit), which changes nothing of
// its errors. A failure before the first user is the call's status, with
// nothing sent; after, the stream ends with it and the client has a
// prefix of the export. Drain does not end an export: it is finite, and
// the shutdown waits for it up to its timeout.
func (s *ServerV2) ExportUsers(req *usersv2.ExportUsersRequest, stream grpc.ServerStreamingServer[usersv2.User]) error {
	const method = usersv2.UserService_ExportUsers_FullMethodName
	ctx := stream.Context()
	if err := validator.Validate(req); err != nil {
		return streamStatus(ctx, method, invalidFrom(err))
	}
	tenant, err := parentOf(req.GetParent())
	if err != nil {
		return streamStatus(ctx, method, err)
	}
	var sendErr error
	err = s.svc.Export(ctx, users.ExportRequest{Tenant: tenant, Filter: req.GetFilter(), ShowDeleted: req.GetShowDeleted()},
		func(u *users.User) error {
			sendErr = stream.Send(toProtoV2(u))
			return sendErr
		})
	switch {
	case err == nil:
		return nil
	case sendErr != nil:
		// The stream's own error (the client went away, or the deadline
		// passed): already a status.
		return sendErr
	}
	return streamStatus(ctx, method, err)
}
