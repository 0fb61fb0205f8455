package grpcserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/usersd/usersd/internal/telemetry"
	"github.com/usersd/usersd/internal/users"
)

// details returns the detail messages of st, failing the test on any it
// cannot decode.
func details(t *testing.T, st *status.Status) []proto.Message {
	t.Helper()
	var out []proto.Message
	for _, d := range st.Details() {
		m, ok := d.(proto.Message)
		if !ok {
			t.Fatalf("status detail %v (%T) is not a proto message", d, d)
		}
		out = append(out, m)
	}
	return out
}

func TestToStatus(t *testing.T) {
	twoFields := &users.InvalidError{Violations: []users.FieldViolation{
		{Field: "user.email", Description: "not an email address"},
		{Field: "user.display_name", Description: "required"},
	}}
	withReason := &users.InvalidError{
		Violations: []users.FieldViolation{{Field: "request_id", Description: "already used"}},
		Reason:     users.ReasonRequestIDReused,
	}
	passThrough, err := status.New(codes.PermissionDenied, "not yours").WithDetails(&errdetails.ErrorInfo{Reason: "NOPE", Domain: "example.com"})
	if err != nil {
		t.Fatalf("WithDetails err = %v", err)
	}

	tests := []struct {
		name         string
		err          error
		wantCode     codes.Code
		wantMsg      string // exact, when not empty
		wantDetails  []proto.Message
		wantInternal bool
	}{
		{
			name:     "invalid with two fields",
			err:      twoFields,
			wantCode: codes.InvalidArgument,
			wantMsg:  twoFields.Error(),
			wantDetails: []proto.Message{&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
				{Field: "user.email", Description: "not an email address"},
				{Field: "user.display_name", Description: "required"},
			}}},
		},
		{
			name:     "invalid with reason",
			err:      withReason,
			wantCode: codes.InvalidArgument,
			wantDetails: []proto.Message{
				&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
					{Field: "request_id", Description: "already used"},
				}},
				&errdetails.ErrorInfo{Reason: users.ReasonRequestIDReused, Domain: ErrorDomain},
			},
		},
		{
			name:     "wrapped invalid keeps its fields",
			err:      fmt.Errorf("create: %w", users.Invalid("user.state", "bad")),
			wantCode: codes.InvalidArgument,
			wantDetails: []proto.Message{&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
				{Field: "user.state", Description: "bad"},
			}}},
		},
		{
			name:     "bare ErrInvalid has no details",
			err:      fmt.Errorf("odd request: %w", users.ErrInvalid),
			wantCode: codes.InvalidArgument,
		},
		{
			name:     "wrapped not found",
			err:      fmt.Errorf("user %s: %w", "0190a3c4-0000-7000-8000-000000000000", users.ErrNotFound),
			wantCode: codes.NotFound,
			wantMsg:  "user 0190a3c4-0000-7000-8000-000000000000: not found",
		},
		{
			name:     "email taken",
			err:      fmt.Errorf("user x: email address already in use: %w", users.ErrEmailTaken),
			wantCode: codes.AlreadyExists,
			wantMsg:  "user x: email address already in use: already exists",
		},
		{
			name:     "id taken",
			err:      fmt.Errorf("webhook x: id in use: %w", users.ErrIDTaken),
			wantCode: codes.AlreadyExists,
			wantMsg:  "webhook x: id in use: already exists",
		},
		{
			name:     "wrong state",
			err:      fmt.Errorf("user x is deleted: %w", users.ErrWrongState),
			wantCode: codes.FailedPrecondition,
			wantMsg:  "user x is deleted: failed precondition",
		},
		{
			name:     "etag mismatch",
			err:      fmt.Errorf("user x has changed: %w", users.ErrEtagMismatch),
			wantCode: codes.Aborted,
		},
		{
			name:     "canceled",
			err:      fmt.Errorf("list users: %w", context.Canceled),
			wantCode: codes.Canceled,
		},
		{
			name:     "deadline exceeded",
			err:      fmt.Errorf("get user: %w", context.DeadlineExceeded),
			wantCode: codes.DeadlineExceeded,
		},
		{
			name:        "status error passes through",
			err:         passThrough.Err(),
			wantCode:    codes.PermissionDenied,
			wantMsg:     "not yours",
			wantDetails: []proto.Message{&errdetails.ErrorInfo{Reason: "NOPE", Domain: "example.com"}},
		},
		{
			name:        "store unavailable",
			err:         fmt.Errorf("user x: %w", users.Unavailable("connection_lost", errors.New("read tcp 10.0.0.7:5432: disk I/O"))),
			wantCode:    codes.Unavailable,
			wantMsg:     "the service is unavailable for a moment; retry the request",
			wantDetails: []proto.Message{&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)}},
		},
		{
			name:        "store contention",
			err:         &users.StoreError{Kind: users.ErrContention, Cause: "deadlock", Err: errors.New("deadlock detected: disk I/O")},
			wantCode:    codes.Aborted,
			wantMsg:     "the request conflicted with concurrent ones and changed nothing; retry it",
			wantDetails: []proto.Message{&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)}},
		},
		{
			name:         "unknown error is internal",
			err:          errors.New("write user x: disk I/O error at /var/lib/usersd/users.db"),
			wantCode:     codes.Internal,
			wantMsg:      "internal error",
			wantInternal: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, internal := toStatus(tt.err)
			if st.Code() != tt.wantCode {
				t.Errorf("toStatus(%v) code = %v, want %v", tt.err, st.Code(), tt.wantCode)
			}
			if tt.wantMsg != "" && st.Message() != tt.wantMsg {
				t.Errorf("toStatus(%v) message = %q, want %q", tt.err, st.Message(), tt.wantMsg)
			}
			if internal != tt.wantInternal {
				t.Errorf("toStatus(%v) internal = %v, want %v", tt.err, internal, tt.wantInternal)
			}
			if diff := cmp.Diff(tt.wantDetails, details(t, st), protocmp.Transform()); diff != "" {
				t.Errorf("toStatus(%v) details (-want +got):\n%s", tt.err, diff)
			}
			if tt.wantCode != codes.PermissionDenied {
				// Nothing of the original error may reach the client.
				wire, err := proto.Marshal(st.Proto())
				if err != nil {
					t.Fatalf("marshal status: %v", err)
				}
				if bytes.Contains(wire, []byte("disk I/O")) || strings.Contains(st.String(), "disk I/O") {
					t.Errorf("toStatus(%v) = %v leaks the error's text to the client", tt.err, st)
				}
			}
		})
	}
}

func TestToStatusPassThroughIsUnchanged(t *testing.T) {
	orig, err := status.New(codes.Unavailable, "try later").WithDetails(&errdetails.RetryInfo{})
	if err != nil {
		t.Fatalf("WithDetails err = %v", err)
	}
	st, internal := toStatus(orig.Err())
	if internal {
		t.Errorf("toStatus(%v) internal = true, want false", orig.Err())
	}
	if diff := cmp.Diff(orig.Proto(), st.Proto(), protocmp.Transform()); diff != "" {
		t.Errorf("toStatus changed a status error (-want +got):\n%s", diff)
	}
}

// TestAccessLogOfErrors runs the access log and the error mapping together,
// as the server chains them: every call gets one line; an internal error's
// detail is on it (at error level) but never in the client's status; a
// client error's message is left out at info level.
func TestAccessLogOfErrors(t *testing.T) {
	const rpc = "/users.v1.UserService/GetUser"
	tests := []struct {
		name     string
		err      error
		wantCode codes.Code
		want     []string // substrings of the line
		notWant  []string
	}{
		{
			name:     "internal error",
			err:      errors.New("sqlite: database disk image is malformed"),
			wantCode: codes.Internal,
			want:     []string{"sqlite: database disk image is malformed", rpc, `"level":"error"`, `"grpc_code":"Internal"`},
		},
		{
			name:     "not found",
			err:      fmt.Errorf("user ada@example.com: %w", users.ErrNotFound),
			wantCode: codes.NotFound,
			want:     []string{`"level":"info"`, `"grpc_code":"NotFound"`},
			notWant:  []string{"ada@example.com", `"error"`},
		},
		{
			name:     "invalid argument",
			err:      users.Invalid("id", "required"),
			wantCode: codes.InvalidArgument,
			want:     []string{`"grpc_code":"InvalidArgument"`},
			notWant:  []string{`"error"`},
		},
		{
			name:     "etag mismatch",
			err:      fmt.Errorf("user x: %w", users.ErrEtagMismatch),
			wantCode: codes.Aborted,
			want:     []string{`"grpc_code":"Aborted"`},
		},
		{
			name:     "store unavailable",
			err:      fmt.Errorf("user x: %w", users.Unavailable("admin_shutdown", errors.New("FATAL: terminating connection due to administrator command (SQLSTATE 57P01)"))),
			wantCode: codes.Unavailable,
			want:     []string{`"level":"warn"`, `"grpc_code":"Unavailable"`, "unavailable (admin_shutdown)", "57P01"},
		},
		{
			name:     "status error passes",
			err:      status.Error(codes.Unauthenticated, "who are you"),
			wantCode: codes.Unauthenticated,
			want:     []string{`"grpc_code":"Unauthenticated"`},
		},
		{
			name:     "success",
			wantCode: codes.OK,
			want:     []string{`"grpc_code":"OK"`, `"level":"info"`, rpc},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			ic := Chain(telemetry.AccessLogInterceptor(zerolog.New(&buf).Level(zerolog.InfoLevel)), ErrorInterceptor)
			handler := func(ctx context.Context, req any) (any, error) {
				if tt.err != nil {
					return nil, tt.err
				}
				return "ok", nil
			}
			_, err := ic(context.Background(), "request", &grpc.UnaryServerInfo{FullMethod: rpc}, handler)
			if got := status.Code(err); got != tt.wantCode {
				t.Errorf("code %v, want %v", got, tt.wantCode)
			}
			logged := buf.String()
			if n := strings.Count(logged, "\n"); n != 1 {
				t.Fatalf("logged %d lines, want 1:\n%s", n, logged)
			}
			for _, w := range tt.want {
				if !strings.Contains(logged, w) {
					t.Errorf("log %q does not contain %q", logged, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(logged, w) {
					t.Errorf("log %q contains %q", logged, w)
				}
			}
			if strings.Contains(status.Convert(err).Message(), "malformed") {
				t.Errorf("client status %v carries the internal detail", err)
			}
		})
	}
}

func TestRecoveryInterceptor(t *testing.T) {
	var buf bytes.Buffer
	ic := Chain(telemetry.AccessLogInterceptor(zerolog.New(&buf)), RecoveryInterceptor)
	_, err := ic(context.Background(), "request", &grpc.UnaryServerInfo{FullMethod: "/x/Y"}, func(ctx context.Context, req any) (any, error) {
		panic("assignment to entry in nil map")
	})
	if st := status.Convert(err); st.Code() != codes.Internal || st.Message() != "internal error" {
		t.Errorf("panic became %v, want INTERNAL internal error", err)
	}
	if logged := buf.String(); !strings.Contains(logged, "assignment to entry in nil map") || !strings.Contains(logged, "goroutine") {
		t.Errorf("the access line lacks the panic and its stack: %s", logged)
	}
}

// headerStream records the headers a unary handler sets.
type headerStream struct {
	grpc.ServerTransportStream
	header metadata.MD
}

func (h *headerStream) Method() string { return "/x/Y" }
func (h *headerStream) SetHeader(md metadata.MD) error {
	h.header = metadata.Join(h.header, md)
	return nil
}

// TestErrorsOfTheStore: a call that failed for the store's infrastructure
// tells the client when to retry (the retry-after header, HTTP Retry-After)
// and is counted by kind and cause; other failures are neither.
func TestErrorsOfTheStore(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantAfter  []string
		wantCounts map[string]int
	}{
		{"unavailable", fmt.Errorf("user x: %w", users.Unavailable("read_only", errors.New("25006"))), []string{"1"}, map[string]int{"unavailable/read_only": 1}},
		{"contention", &users.StoreError{Kind: users.ErrContention, Cause: "serialization_failure", Err: errors.New("40001")}, []string{"1"}, map[string]int{"contention/serialization_failure": 1}},
		{"not found", users.ErrNotFound, nil, map[string]int{}},
		{"internal", errors.New("bug"), nil, map[string]int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			counts := map[string]int{}
			ic := Errors(func(kind, cause string) { counts[kind+"/"+cause]++ })
			hs := &headerStream{}
			ctx := grpc.NewContextWithServerTransportStream(context.Background(), hs)
			_, err := ic(ctx, "request", &grpc.UnaryServerInfo{FullMethod: "/x/Y"}, func(context.Context, any) (any, error) { return nil, tt.err })
			if err == nil {
				t.Fatal("err = nil")
			}
			if diff := cmp.Diff(tt.wantAfter, hs.header.Get("retry-after")); diff != "" {
				t.Errorf("retry-after header (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantCounts, counts); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
		})
	}
}
