package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/usersd/usersd/internal/ratelimit"
	"github.com/usersd/usersd/internal/telemetry"
	"github.com/usersd/usersd/internal/users"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of usersd's reasons.
const ErrorDomain = "usersd.dev"

// codeOf is the one table from domain error kind to gRPC code. The gateway
// derives the HTTP status from the code (400, 404, 409, 409, 409, 400, 409, 429,
// 429, 503, 409, 499, 504).
var codeOf = []struct {
	kind error
	code codes.Code
}{
	{users.ErrInvalid, codes.InvalidArgument},
	{users.ErrNotFound, codes.NotFound},
	{users.ErrEmailTaken, codes.AlreadyExists},
	{users.ErrIDTaken, codes.AlreadyExists},
	{users.ErrExternalIDTaken, codes.AlreadyExists},
	{users.ErrWrongState, codes.FailedPrecondition},
	{users.ErrEtagMismatch, codes.Aborted},
	{users.ErrQuota, codes.ResourceExhausted},
	{users.ErrRateLimited, codes.ResourceExhausted},
	{users.ErrUnavailable, codes.Unavailable},
	{users.ErrContention, codes.Aborted},
	{context.Canceled, codes.Canceled},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
}

// RetryAfter is the wait, in whole seconds, that answers to a failure of
// the store's infrastructure suggest: the "retry-after" response header
// (HTTP Retry-After) and the google.rpc.RetryInfo detail.
const RetryAfter = time.Second

// storeMessages are what clients are told of a store's failures; the
// driver's words, which may name hosts and SQL, go to the log only.
var storeMessages = map[error]string{
	users.ErrUnavailable: "the service is unavailable for a moment; retry the request",
	users.ErrContention:  "the request conflicted with concurrent ones and changed nothing; retry it",
}

// toStatus converts an error from the domain into a gRPC status error.
// Errors of unknown kind become INTERNAL with a generic message; their
// detail is for the log only. So is the detail of a *users.StoreError,
// which becomes UNAVAILABLE or ABORTED with a generic message and a
// google.rpc.RetryInfo.
func toStatus(err error) (st *status.Status, internal bool) {
	if s, ok := status.FromError(err); ok {
		return s, false
	}
	var se *users.StoreError
	if errors.As(err, &se) {
		for _, e := range codeOf {
			if e.kind == se.Kind {
				st := status.New(e.code, storeMessages[se.Kind])
				if withDetails, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(RetryAfter)}); derr == nil {
					st = withDetails
				}
				return st, false
			}
		}
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
		var re *users.RateError
		if errors.As(err, &re) {
			if withDetails, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retrySeconds(re.RetryAfter))}); derr == nil {
				st = withDetails
			}
		}
		var qe *users.QuotaError
		if errors.As(err, &qe) {
			qf := &errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{
				Subject:     tenantName(qe.Tenant),
				Description: fmt.Sprintf("at most %d users that are not deleted (settings.max_users)", qe.MaxUsers),
			}}}
			if withDetails, derr := st.WithDetails(qf); derr == nil {
				st = withDetails
			}
		}
		return st, false
	}
	return status.New(codes.Internal, "internal error"), true
}

// ErrorInterceptor maps the errors handlers return to gRPC statuses, as
// Errors does, without counting store errors.
var ErrorInterceptor = Errors(nil)

// Errors returns the interceptor that maps the errors handlers return to
// gRPC statuses, with field paths in the terms of the call's API version
// (apiFields). The detail of an internal error, which clients never see,
// goes to the request's telemetry.Call for the access log; so does that of
// a store's failure (*users.StoreError), whose answer also carries the
// "retry-after" header, and which count, if not nil, counts by kind and
// cause.
func Errors(count func(kind, cause string)) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if err == nil {
			return resp, nil
		}
		return nil, callError(ctx, apiFields(info.FullMethod, err), count)
	}
}

// callError is err as a gRPC status error; what it records of err for the
// log and the metrics, and the retry-after header of a store's failure,
// are described at Errors.
func callError(ctx context.Context, err error, count func(kind, cause string)) error {
	st, internal := toStatus(err)
	var (
		se *users.StoreError
		re *users.RateError
	)
	switch {
	case internal:
		telemetry.CallFrom(ctx).SetCause(err)
	case errors.As(err, &re):
		_ = grpc.SetHeader(ctx, metadata.Pairs(ratelimit.MDRetryAfter, strconv.Itoa(int(retrySeconds(re.RetryAfter)/time.Second))))
	case errors.As(err, &se):
		telemetry.CallFrom(ctx).SetCause(err)
		_ = grpc.SetHeader(ctx, metadata.Pairs(ratelimit.MDRetryAfter, strconv.Itoa(int(RetryAfter/time.Second))))
		if count != nil {
			count(se.Kind.Error(), se.Cause)
		}
	}
	return st.Err()
}

// retrySeconds is d rounded up to whole seconds, at least one: the
// resolution of Retry-After.
func retrySeconds(d time.Duration) time.Duration {
	return max(time.Second, (d + time.Second - 1).Truncate(time.Second))
}
