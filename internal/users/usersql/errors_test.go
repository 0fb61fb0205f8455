package usersql_test

import (
	"context"
	"errors"
	"testing"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

var errDown = errors.New("connection refused")

// classify is a store's classify with a table of one fault.
func classify(ctx context.Context, err error) error {
	return users.Classify(ctx, err, func(err error) (string, error) {
		if errors.Is(err, errDown) {
			return "connect", users.ErrUnavailable
		}
		return "", nil
	})
}

// method is a store method that fails with err.
func method(ctx context.Context, id string, fail error) (err error) {
	defer usersql.Wrap(ctx, &err, classify, "user %s", id)
	return fail
}

func TestWrap(t *testing.T) {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	fnErr := errors.New("the caller's fn failed")
	invalid := users.Invalid("request_id", "used before")
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want string
		is   []error
		same error // when set, the error returned must be this one
	}{
		{name: "nil", ctx: ctx},
		{name: "kind", ctx: ctx, err: users.ErrNotFound, want: "user 7: not found", is: []error{users.ErrNotFound}},
		{name: "unknown", ctx: ctx, err: errors.New("syntax error"), want: "user 7: syntax error"},
		{name: "fault", ctx: ctx, err: errDown, want: "unavailable (connect): user 7: connection refused", is: []error{users.ErrUnavailable, errDown}},
		{name: "context ended", ctx: cancelled, err: errDown, want: "context canceled: user 7: connection refused", is: []error{context.Canceled, errDown}},
		{name: "invalid", ctx: ctx, err: invalid, want: invalid.Error(), is: []error{users.ErrInvalid}, same: invalid},
		{name: "fn", ctx: ctx, err: usersql.FnError(fnErr), want: fnErr.Error(), same: fnErr},
		{name: "fn, context ended", ctx: cancelled, err: usersql.FnError(fnErr), want: "context canceled: " + fnErr.Error(), is: []error{context.Canceled, fnErr}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := method(tt.ctx, "7", tt.err)
			if tt.err == nil {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			for _, target := range tt.is {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) = false", err, target)
				}
			}
			if tt.same != nil && err != tt.same {
				t.Errorf("err = %#v, want the error itself", err)
			}
		})
	}
}

// TestWrapSuccessAllocates nothing: every store call defers Wrap.
func TestWrapSuccessAllocates(t *testing.T) {
	ctx := context.Background()
	id := string([]byte("0190-id")) // not a constant
	if n := testing.AllocsPerRun(100, func() { _ = method(ctx, id, nil) }); n != 0 {
		t.Errorf("a call that succeeds allocates %v times, want 0", n)
	}
}
