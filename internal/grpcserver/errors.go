package grpcserver

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/usersd/usersd/internal/telemetry"
	"github.com/usersd/usersd/internal/users"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of usersd's reasons.
const ErrorDomain = "usersd.dev"

// codeOf is the one table from domain error kind to gRPC code. The gateway
// derives the HTTP status from the code (400, 404, 409, 400, 409, 499, 504).
var codeOf = []struct {
	kind error
	code codes.Code
}{
	{users.ErrInvalid, codes.InvalidArgument},
	{users.ErrNotFound, codes.NotFound},
	{users.ErrAlreadyExists, codes.AlreadyExists},
	{users.ErrFailedPrecondition, codes.FailedPrecondition},
	{users.ErrEtagMismatch, codes.Aborted},
	{context.Canceled, codes.Canceled},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
}

// toStatus converts an error from the domain into a gRPC status error.
// Errors of unknown kind become INTERNAL with a generic message; their
// detail is for the log only.
func toStatus(err error) (st *status.Status, internal bool) {
	if s, ok := status.FromError(err); ok {
		return s, false
	}
	for _, e := range codeOf {
		if !errors.Is(err, e.kind) {
			continue
		}
		st := status.New(e.code, err.Error())
		var inv *users.InvalidError
		if errors.As(err, &inv) {
			br := &errdetails.BadRequest{}
			for _, v := range inv.Violations {
				br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
					Field: v.Field, Description: v.Description,
				})
			}
			details := []protoadapt.MessageV1{br}
			if inv.Reason != "" {
				details = append(details, &errdetails.ErrorInfo{Reason: inv.Reason, Domain: ErrorDomain})
			}
			if withDetails, derr := st.WithDetails(details...); derr == nil {
				st = withDetails
			}
		}
		return st, false
	}
	return status.New(codes.Internal, "internal error"), true
}

// ErrorInterceptor maps the errors handlers return to gRPC statuses. The
// detail of an internal error, which clients never see, goes to the
// request's telemetry.Call for the access log.
func ErrorInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if err == nil {
		return resp, nil
	}
	st, internal := toStatus(err)
	if internal {
		telemetry.CallFrom(ctx).SetCause(err)
	}
	return nil, st.Err()
}
