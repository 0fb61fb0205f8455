package scim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/usersd/usersd/internal/users"
)

// The scimType values of RFC 7644 section 3.12 that usersd answers with.
const (
	TypeInvalidFilter = "invalidFilter"
	TypeTooMany       = "tooMany"
	TypeUniqueness    = "uniqueness"
	TypeMutability    = "mutability"
	TypeInvalidSyntax = "invalidSyntax"
	TypeInvalidPath   = "invalidPath"
	TypeNoTarget      = "noTarget"
	TypeInvalidValue  = "invalidValue"
)

// Error is a SCIM error (RFC 7644 section 3.12): the HTTP status, the
// scimType when the status is 400 (or 409 for uniqueness), and a detail
// for people. It is the only error this package returns, so a handler
// renders whatever it gets without inspecting it.
type Error struct {
	// Status is the HTTP status of the answer.
	Status int
	// ScimType is one of the Type constants, or "" when none applies.
	ScimType string
	// Detail says what is wrong, in terms of the SCIM request. It never
	// holds a store's or a driver's message.
	Detail string
	// RetryAfter, when positive, is how long the client should wait before
	// it sends the request again: the handler sends it as Retry-After.
	RetryAfter time.Duration
	// Err is the cause, for the log only: it may name hosts or SQL.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("scim: ")
	b.WriteString(strconv.Itoa(e.Status))
	if e.ScimType != "" {
		b.WriteString(" ")
		b.WriteString(e.ScimType)
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// RetryAfterSeconds is the value of the Retry-After header: RetryAfter in
// whole seconds, rounded up, or 0 when the answer carries none.
func (e *Error) RetryAfterSeconds() int {
	if e.RetryAfter <= 0 {
		return 0
	}
	return int((e.RetryAfter + time.Second - 1) / time.Second)
}

// errorBody is the JSON of an Error. RFC 7644 makes status a string.
type errorBody struct {
	Schemas  []string `json:"schemas"`
	Status   string   `json:"status"`
	ScimType string   `json:"scimType,omitempty"`
	Detail   string   `json:"detail,omitempty"`
}

// MarshalJSON renders the error as SCIM's error message:
// {"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400",
// "scimType":"invalidFilter","detail":"…"}.
func (e *Error) MarshalJSON() ([]byte, error) {
	return json.Marshal(errorBody{
		Schemas: []string{ErrorSchema}, Status: strconv.Itoa(e.Status), ScimType: e.ScimType, Detail: e.Detail,
	})
}

// badRequest returns a 400 of the scimType with a formatted detail.
func badRequest(scimType, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, ScimType: scimType, Detail: fmt.Sprintf(format, args...)}
}

func invalidFilter(format string, args ...any) *Error {
	return badRequest(TypeInvalidFilter, format, args...)
}

func invalidValue(format string, args ...any) *Error {
	return badRequest(TypeInvalidValue, format, args...)
}

func invalidPath(format string, args ...any) *Error {
	return badRequest(TypeInvalidPath, format, args...)
}

func invalidSyntax(format string, args ...any) *Error {
	return badRequest(TypeInvalidSyntax, format, args...)
}

// retryAfter is what usersd asks a client to wait after a failure of
// infrastructure, as the users API's Retry-After does.
const retryAfter = time.Second

// FromError returns the SCIM error for an error of the users service or of
// this package: the one place that maps the domain's error kinds to HTTP
// statuses and scimTypes.
//
//   - *Error: itself.
//   - users.ErrInvalid (a *users.InvalidError): 400 invalidValue, the
//     detail naming each field by its SCIM attribute (userName, not
//     user.email).
//   - users.ErrNotFound: 404. users.ErrWrongState too: the only wrong
//     state a SCIM request meets is a deleted user, which SCIM does not
//     see (it is not found).
//   - users.ErrEmailTaken, ErrExternalIDTaken, ErrIDTaken: 409 uniqueness.
//   - users.ErrEtagMismatch: 412, as If-Match asks (RFC 7644 section 3.14).
//   - users.ErrQuota: 400 with no scimType, since waiting does not help
//     (the tenant is at its settings.maxUsers).
//   - users.ErrRateLimited: 429 with the wait the tenant's rate gives.
//   - users.ErrUnavailable, and users.ErrContention (which the store has
//     retried already): 503 with Retry-After, because identity providers
//     retry a 503 and read a 409 as "the user exists".
//   - a context that ended: 503 with Retry-After as well.
//   - anything else: 500, whose detail names nothing of the cause (a 500
//     means a bug; the cause is in Err for the log).
func FromError(err error) *Error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return se
	}
	var inv *users.InvalidError
	if errors.As(err, &inv) {
		return &Error{Status: http.StatusBadRequest, ScimType: TypeInvalidValue, Detail: invalidDetail(inv), Err: err}
	}
	var rate *users.RateError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: http.StatusServiceUnavailable, Detail: "the request did not complete in time; send it again", RetryAfter: retryAfter, Err: err}
	case errors.Is(err, users.ErrNotFound), errors.Is(err, users.ErrWrongState):
		return &Error{Status: http.StatusNotFound, Detail: "resource not found", Err: err}
	case errors.Is(err, users.ErrEmailTaken):
		return &Error{Status: http.StatusConflict, ScimType: TypeUniqueness, Detail: "userName: another user has this email address", Err: err}
	case errors.Is(err, users.ErrExternalIDTaken):
		return &Error{Status: http.StatusConflict, ScimType: TypeUniqueness, Detail: "externalId: another resource of the tenant has this externalId", Err: err}
	case errors.Is(err, users.ErrIDTaken):
		return &Error{Status: http.StatusConflict, ScimType: TypeUniqueness, Detail: "id: already in use", Err: err}
	case errors.Is(err, users.ErrEtagMismatch):
		return &Error{Status: http.StatusPreconditionFailed, Detail: "the resource has changed: its version is not the one in If-Match", Err: err}
	case errors.Is(err, users.ErrQuota):
		return &Error{Status: http.StatusBadRequest, Detail: "the tenant is at its limit of users (settings.maxUsers)", Err: err}
	case errors.As(err, &rate):
		return &Error{Status: http.StatusTooManyRequests, Detail: "the tenant is over its request rate", RetryAfter: max(rate.RetryAfter, time.Second), Err: err}
	case errors.Is(err, users.ErrRateLimited):
		return &Error{Status: http.StatusTooManyRequests, Detail: "the tenant is over its request rate", RetryAfter: retryAfter, Err: err}
	case errors.Is(err, users.ErrUnavailable), errors.Is(err, users.ErrContention):
		return &Error{Status: http.StatusServiceUnavailable, Detail: "the service is unavailable for a moment; send the request again", RetryAfter: retryAfter, Err: err}
	}
	return &Error{Status: http.StatusInternalServerError, Detail: "internal error", Err: err}
}

// invalidDetail lists the violations of inv with each field named as SCIM
// names it.
func invalidDetail(inv *users.InvalidError) string {
	var b strings.Builder
	for i, v := range inv.Violations {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(scimField(v.Field))
		b.WriteString(": ")
		b.WriteString(v.Description)
	}
	return b.String()
}

// domainFields are the SCIM attributes of the domain's field paths.
var domainFields = map[string]string{
	"user.email":         "userName",
	"user.display_name":  "displayName",
	"user.state":         "active",
	"user.external_id":   "externalId",
	"user.given_name":    "name.givenName",
	"user.family_name":   "name.familyName",
	"user.phone_number":  "phoneNumbers",
	"user.locale":        "locale",
	"user.time_zone":     "timezone",
	"user.attributes":    "attributes",
	"group.display_name": "displayName",
	"group.external_id":  "externalId",
	"group.description":  "description",
	"user_ids":           "members",
	"id":                 "id",
	"user.id":            "id",
	"name":               "id",
	"user.name":          "id",
}

// scimField returns the SCIM attribute of a domain field path: the user's
// attributes that this package keeps (attributes/scim/…) by the SCIM
// attribute they hold, a member of a batch as members.
func scimField(field string) string {
	if f, ok := domainFields[field]; ok {
		return f
	}
	if rest, ok := strings.CutPrefix(field, "user.attributes/"+attrKey+"/"); ok {
		if sub, ok := strings.CutPrefix(rest, attrEnterprise+"/"); ok {
			return EnterpriseSchema + ":" + strings.ReplaceAll(sub, "/", ".")
		}
		return strings.ReplaceAll(rest, "/", ".")
	}
	if strings.HasPrefix(field, "user_ids[") {
		return "members"
	}
	return field
}
