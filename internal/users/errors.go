package users

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Error kinds. Each says what happened, in the domain's terms; test for
// them with errors.Is. The gRPC edge (grpcserver's codeOf) is the one place
// that maps a kind to a status code.
//
// A kind's text ends the message of every error of that kind, and clients
// read that message: ErrEmailTaken and ErrIDTaken read "already exists",
// ErrWrongState "failed precondition", as they always have.
var (
	// ErrInvalid: the request is malformed. Errors of this kind are
	// *InvalidError values that name each offending field.
	ErrInvalid = errors.New("invalid argument")
	// ErrNotFound: no such user.
	ErrNotFound = errors.New("not found")
	// ErrEmailTaken: the email address belongs to another user that is
	// not deleted.
	ErrEmailTaken = errors.New("already exists")
	// ErrExternalIDTaken: the external id belongs to another user of the
	// tenant that is not deleted.
	ErrExternalIDTaken = errors.New("already exists")
	// ErrIDTaken: the id of a new user or webhook is already in use by
	// one that is stored. Ids are generated (NewID), so this is a store's
	// guard rather than a case clients meet.
	ErrIDTaken = errors.New("already exists")
	// ErrWrongState: the resource is not in a state that allows the
	// operation (for example, updating a deleted user, or undeleting one
	// that is not deleted).
	ErrWrongState = errors.New("failed precondition")
	// ErrEtagMismatch: the caller's etag is not the user's current etag.
	ErrEtagMismatch = errors.New("etag mismatch")
	// ErrQuota: the change would take a tenant past one of its limits
	// (TenantSettings.MaxUsers). Errors of this kind are *QuotaError
	// values.
	ErrQuota = errors.New("resource exhausted")
	// ErrRateLimited: the tenant's request rate
	// (TenantSettings.RequestsPerSecond) is spent for the moment. Errors
	// of this kind are *RateError values.
	ErrRateLimited = errors.New("resource exhausted")
	// ErrUnavailable: the store could not serve the request for a reason of
	// infrastructure (the database is down, restarting, failing over,
	// read-only, out of connections or disk, or busy past its timeout).
	// Nothing is wrong with the request: it may be sent again, after a
	// short wait, to this process or another. Errors of this kind are
	// *StoreError values that name the cause.
	ErrUnavailable = errors.New("unavailable")
	// ErrContention: the store's transaction kept conflicting with
	// concurrent ones (serialization failures, deadlocks) after the store
	// had retried it; it changed nothing and may be sent again. Errors of
	// this kind are *StoreError values.
	ErrContention = errors.New("contention")
)

// StoreError is a failure of a store's infrastructure rather than of the
// request: its Kind is ErrUnavailable or ErrContention, and Cause names what
// happened in a few words fit for a log field or a metric label
// ("connection_lost", "admin_shutdown", "read_only", "pool_exhausted",
// "sqlite_busy", …). Err is the driver's error, for the log only: it may
// name hosts or SQL and is never shown to clients.
type StoreError struct {
	Kind  error
	Cause string
	Err   error
}

func (e *StoreError) Error() string {
	return e.Kind.Error() + " (" + e.Cause + "): " + e.Err.Error()
}

// Is reports whether target is e's kind.
func (e *StoreError) Is(target error) bool { return target == e.Kind }

// Unwrap returns the driver's error.
func (e *StoreError) Unwrap() error { return e.Err }

// Classify is what every store does with the errors of its methods: it
// marks err with ctx's error when ctx has ended, so that errors.Is(err,
// context.Canceled) also holds when the database reports the cancellation
// in its own words; otherwise, unless err is a *StoreError already, it asks
// fault (the store's table of its driver's errors) whether err is a failure
// of infrastructure, and if so returns it as a *StoreError. Errors of the
// request itself and unknown ones pass unchanged, and nil stays nil.
func Classify(ctx context.Context, err error, fault func(error) (cause string, kind error)) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		if !errors.Is(err, cerr) {
			return fmt.Errorf("%w: %w", cerr, err)
		}
		return err
	}
	var se *StoreError
	if errors.As(err, &se) {
		return err
	}
	if cause, kind := fault(err); kind != nil {
		return &StoreError{Kind: kind, Cause: cause, Err: err}
	}
	return err
}

// QuotaError is an ErrQuota: the tenant already has MaxUsers users that are
// not deleted.
type QuotaError struct {
	Tenant   string
	MaxUsers int64
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("tenant %s has %d users that are not deleted, its limit (settings.max_users): %v", e.Tenant, e.MaxUsers, ErrQuota)
}

// Is reports that every QuotaError is an ErrQuota.
func (e *QuotaError) Is(target error) bool { return target == ErrQuota }

// RateError is an ErrRateLimited: the calls made in Tenant exceed its
// request rate on this replica; RetryAfter is when a call would pass again.
type RateError struct {
	Tenant     string
	RetryAfter time.Duration
}

func (e *RateError) Error() string {
	return fmt.Sprintf("tenant %s is over its request rate (settings.requests_per_second): %v", e.Tenant, ErrRateLimited)
}

// Is reports that every RateError is an ErrRateLimited.
func (e *RateError) Is(target error) bool { return target == ErrRateLimited }

// Unavailable returns an ErrUnavailable *StoreError for err.
func Unavailable(cause string, err error) *StoreError {
	return &StoreError{Kind: ErrUnavailable, Cause: cause, Err: err}
}

// Reason codes carried by InvalidError for problems that clients may want to
// recognise without parsing messages.
const (
	// ReasonRequestIDReused: a request id was used before with a different
	// request.
	ReasonRequestIDReused = "REQUEST_ID_REUSED"
	// ReasonInvalidPageToken: the page token is corrupt, tampered with, or
	// from a list call with other parameters.
	ReasonInvalidPageToken = "INVALID_PAGE_TOKEN"
)

// FieldViolation names one field of a request and what is wrong with it.
// Field is the domain's path of the field, in snake_case, e.g.
// "user.email"; a resource is named by its "id" ("id", "user.id",
// "ids[3]", "webhook.id", "webhook_id"). The API maps it to each version's
// terms at its edge (internal/grpcserver).
type FieldViolation struct {
	Field       string
	Description string
}

// InvalidError is an ErrInvalid that names the offending fields.
type InvalidError struct {
	Violations []FieldViolation
	// Reason, when set, is a stable code such as ReasonRequestIDReused.
	Reason string
}

// Invalid returns an *InvalidError for one field.
func Invalid(field, description string) *InvalidError {
	return &InvalidError{Violations: []FieldViolation{{Field: field, Description: description}}}
}

func (e *InvalidError) Error() string {
	var b strings.Builder
	b.WriteString("invalid argument: ")
	for i, v := range e.Violations {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(v.Field)
		b.WriteString(": ")
		b.WriteString(v.Description)
	}
	return b.String()
}

// Is reports that every InvalidError is an ErrInvalid.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// violations collects field problems and returns them as one error.
type violations []FieldViolation

func (vs *violations) add(field, description string) {
	*vs = append(*vs, FieldViolation{Field: field, Description: description})
}

// addAll adds the violations of err, an *InvalidError.
func (vs *violations) addAll(err error) {
	var inv *InvalidError
	if errors.As(err, &inv) {
		*vs = append(*vs, inv.Violations...)
		return
	}
	vs.add("", err.Error())
}

func (vs violations) err() error {
	if len(vs) == 0 {
		return nil
	}
	return &InvalidError{Violations: vs}
}
