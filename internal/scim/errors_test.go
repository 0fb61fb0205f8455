package scim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/usersd/usersd/internal/users"
)

func TestErrorJSON(t *testing.T) {
	e := invalidFilter("userName: %s", `bad "filter"`)
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","scimType":"invalidFilter","detail":"userName: bad \"filter\""}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	b, _ = json.Marshal(&Error{Status: http.StatusNotFound, Detail: "resource not found"})
	if want := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"404","detail":"resource not found"}`; string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	if got := e.Error(); got != `scim: 400 invalidFilter: userName: bad "filter"` {
		t.Errorf("Error() = %q", got)
	}
}

func TestFromError(t *testing.T) {
	store := &users.StoreError{Kind: users.ErrUnavailable, Cause: "connection_lost", Err: errors.New("dial tcp 10.0.0.7:5432: refused")}
	contention := &users.StoreError{Kind: users.ErrContention, Cause: "serialization", Err: errors.New("40001")}
	for _, tc := range []struct {
		name       string
		err        error
		status     int
		scimType   string
		detail     string
		retryAfter int
	}{
		{"invalid, fields named as SCIM names them", &users.InvalidError{Violations: []users.FieldViolation{
			{Field: "user.email", Description: "longer than 254 bytes"},
			{Field: "user.display_name", Description: "required"},
			{Field: "user.phone_number", Description: `"+1 555" is not a valid phone number`},
			{Field: "user.time_zone", Description: "not a zone"},
			{Field: "user.given_name", Description: "201 characters"},
			{Field: "user.attributes/scim/enterprise/department", Description: "maxLength"},
			{Field: "user.attributes/level", Description: "maximum"},
			{Field: "user_ids[3]", Description: "no such user"},
			{Field: "group.display_name", Description: "required"},
		}}, 400, TypeInvalidValue, `userName: longer than 254 bytes; displayName: required; phoneNumbers: "+1 555" is not a valid phone number; ` +
			`timezone: not a zone; name.givenName: 201 characters; ` + EnterpriseSchema + `:department: maxLength; ` +
			`user.attributes/level: maximum; members: no such user; displayName: required`, 0},
		{"invalid, wrapped", fmt.Errorf("create: %w", users.Invalid("user.external_id", "leading or trailing space")), 400, TypeInvalidValue, "externalId: leading or trailing space", 0},
		{"not found", fmt.Errorf("user x: %w", users.ErrNotFound), 404, "", "resource not found", 0},
		{"a deleted user's wrong state is not found", fmt.Errorf("user x is deleted: %w", users.ErrWrongState), 404, "", "resource not found", 0},
		{"email taken", fmt.Errorf("create: %w", users.ErrEmailTaken), 409, TypeUniqueness, "userName", 0},
		{"external id taken", users.ErrExternalIDTaken, 409, TypeUniqueness, "externalId", 0},
		{"id taken", users.ErrIDTaken, 409, TypeUniqueness, "id", 0},
		{"etag mismatch", fmt.Errorf("user x has changed: %w", users.ErrEtagMismatch), 412, "", "If-Match", 0},
		{"quota", &users.QuotaError{Tenant: "acme", MaxUsers: 10}, 400, "", "maxUsers", 0},
		{"tenant rate", &users.RateError{Tenant: "acme", RetryAfter: 2500 * time.Millisecond}, 429, "", "request rate", 3},
		{"tenant rate, short", &users.RateError{Tenant: "acme", RetryAfter: time.Millisecond}, 429, "", "request rate", 1},
		{"unavailable", fmt.Errorf("get: %w", store), 503, "", "unavailable", 1},
		{"contention", contention, 503, "", "unavailable", 1},
		{"deadline", fmt.Errorf("list: %w", context.DeadlineExceeded), 503, "", "in time", 1},
		{"cancelled store call", fmt.Errorf("%w: %w", context.Canceled, store), 503, "", "in time", 1},
		{"anything else", io.ErrUnexpectedEOF, 500, "", "internal error", 0},
		{"a SCIM error is itself", fmt.Errorf("x: %w", invalidPath("nope")), 400, TypeInvalidPath, "nope", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := FromError(tc.err)
			if e.Status != tc.status || e.ScimType != tc.scimType || e.Detail != tc.detail && !strings.Contains(e.Detail, tc.detail) {
				t.Errorf("got %d %q %q, want %d %q %q", e.Status, e.ScimType, e.Detail, tc.status, tc.scimType, tc.detail)
			}
			if got := e.RetryAfterSeconds(); got != tc.retryAfter {
				t.Errorf("Retry-After %d, want %d", got, tc.retryAfter)
			}
			if tc.status >= 500 && strings.Contains(e.Detail, "10.0.0.7") {
				t.Errorf("detail %q shows the cause", e.Detail)
			}
			if _, ok := tc.err.(*Error); !ok && !errors.Is(e, tc.err) && tc.name != "a SCIM error is itself" {
				t.Errorf("the cause is not kept for the log")
			}
		})
	}
	if FromError(nil) != nil {
		t.Error("FromError(nil) is not nil")
	}
}
