package scim

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usersd/usersd/internal/users"
)

// Ids of the fixtures: users' ids are UUIDv7s in lower case.
const (
	babsID    = "0190a5b4-7c3e-7d2a-9f10-5a1b2c3d4e5f"
	managerID = "0190a5b4-0000-7000-8000-000000000001"
	memberA   = "0190a5b4-0000-7000-8000-00000000000a"
	memberB   = "0190a5b4-0000-7000-8000-00000000000b"
	groupID   = "0190a5b4-1111-7000-8000-000000000001"
	base      = "https://usersd.example.com/scim/v2/tenants/acme"
)

var (
	created  = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	modified = time.Date(2026, 3, 2, 10, 30, 15, 123456000, time.UTC)
)

// babs is a domain user with every field SCIM maps, and attributes of
// the tenant's own (level) beside SCIM's.
func babs() *users.User {
	return &users.User{
		Tenant: "acme", ID: babsID, Email: "Barbara.Jensen@example.com", DisplayName: "Babs Jensen",
		State: users.StateActive, Labels: map[string]string{"team": "tours"},
		Profile: users.Profile{
			ExternalID: "00ujl29u0le5T6Aj10h7", GivenName: "Barbara", FamilyName: "Jensen",
			PhoneNumber: "+14155550100", Locale: "en-US", TimeZone: "America/Los_Angeles",
			Attributes: []byte(`{"level":5,"scim":{"enterprise":{"department":"Tour Operations","employeeNumber":"701984","manager":"` +
				managerID + `"},"phoneNumberType":"work"}}`),
		},
		CreateTime: created, UpdateTime: modified, Revision: 3,
	}
}

// babsSCIM is babs as a SCIM resource.
func babsSCIM(t testing.TB) *User {
	t.Helper()
	u, err := UserFromDomain(babs(), base)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// aGroup is a domain group.
func aGroup() *users.Group {
	return &users.Group{
		Tenant: "acme", ID: groupID, DisplayName: "Tour Guides", ExternalID: "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
		Description: "kept as it is", MemberCount: 2, CreateTime: created, UpdateTime: modified, Revision: 1,
	}
}

// jsonEqual fails t unless got marshals to the same JSON value as want.
func jsonEqual(t testing.TB, got any, want string) {
	t.Helper()
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want: %v\n%s", err, want)
	}
	if d := cmp.Diff(w, g); d != "" {
		t.Errorf("JSON differs (-want +got):\n%s\ngot: %s", d, b)
	}
}

// wantError fails t unless err is a *Error with the status and scimType
// and a detail that holds every fragment.
func wantError(t testing.TB, err error, status int, scimType string, fragments ...string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want a *scim.Error", err, err)
	}
	if e.Status != status || e.ScimType != scimType {
		t.Errorf("err = %d %q (%s), want %d %q", e.Status, e.ScimType, e.Detail, status, scimType)
	}
	for _, f := range fragments {
		if !strings.Contains(e.Detail, f) {
			t.Errorf("detail %q does not hold %q", e.Detail, f)
		}
	}
}

func ptr[T any](v T) *T { return &v }
