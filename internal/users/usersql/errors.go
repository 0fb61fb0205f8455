package usersql

import (
	"context"
	"errors"
	"fmt"

	"github.com/usersd/usersd/internal/users"
)

// Wrap finishes the error of a store's method, in one place: every exported
// method of both stores defers it once, on its named error result,
//
//	defer wrap(ctx, &err, "user %s", id)
//
// (wrap being Wrap with the store's classify). A nil error stays nil.
// Otherwise Wrap prefixes the op (format with args: the method's subject,
// such as "user 0190…" or "list users") and passes the result through
// classify, which marks it with ctx's error when ctx has ended and turns
// the failures of infrastructure into a *users.StoreError (users.Classify,
// with the store's table). The helpers within return their errors raw, so
// each error is wrapped once.
//
// Errors that speak to the caller are not prefixed, only classified: an
// *users.InvalidError, whose message names the request's fields, and the
// error of a caller's function (see FnError), which the method returns as
// the function did.
//
// The args are strings, not any, so that the defer of a call that succeeds
// allocates nothing.
func Wrap(ctx context.Context, errp *error, classify func(context.Context, error) error, format string, args ...string) {
	err := *errp
	if err == nil {
		return
	}
	var (
		fe  fnError
		inv *users.InvalidError
	)
	switch {
	case errors.As(err, &fe):
		err = fe.err
	case errors.As(err, &inv):
	default:
		a := make([]any, len(args), len(args)+1)
		for i, s := range args {
			a[i] = s
		}
		err = fmt.Errorf(format+": %w", append(a, err)...)
	}
	*errp = classify(ctx, err)
}

// FnError marks err, returned by a function the caller gave a store's
// method (UpdateUser's fn), so that Wrap returns it as it is.
func FnError(err error) error { return fnError{err} }

type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }
func (e fnError) Unwrap() error { return e.err }

// RequestIDReused is the error of a create whose request id is stored
// with another fingerprint: an *users.InvalidError on "request_id" with
// Reason users.ReasonRequestIDReused. Each call returns a new one.
func RequestIDReused() *users.InvalidError {
	return &users.InvalidError{
		Violations: []users.FieldViolation{{Field: "request_id", Description: "request_id was already used for a different request"}},
		Reason:     users.ReasonRequestIDReused,
	}
}
