package users_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/usersd/usersd/internal/users"
)

func TestTenantIDs(t *testing.T) {
	for id, ok := range map[string]bool{
		"acme": true, "a1b": true, "acme-corp": true, "x" + strings.Repeat("y", 62): true,
		"": false, "ab": false, "x" + strings.Repeat("y", 63): false, "Acme": false, "1acme": false,
		"acme-": false, "-acme": false, "ac_me": false, "acmé": false, "ac me": false, "tenants/acme": false,
	} {
		err := users.CheckTenantID("tenant_id", id)
		if (err == nil) != ok {
			t.Errorf("CheckTenantID(%q) = %v, want ok %v", id, err, ok)
		}
		if err != nil && !errors.Is(err, users.ErrInvalid) {
			t.Errorf("CheckTenantID(%q) err = %v, want an InvalidError", id, err)
		}
	}
}

// TestTenantLifecycle follows a tenant through create, update, delete and
// undelete with an injected clock.
func TestTenantLifecycle(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)}
	svc := newService(t, users.Config{Now: c.Now})

	created, err := svc.CreateTenant(ctx, "acme", users.TenantRequest{DisplayName: "Acme", Settings: users.TenantSettings{MaxUsers: 100, RequestsPerSecond: 50}})
	if err != nil {
		t.Fatalf("CreateTenant err = %v", err)
	}
	if created.State != users.StateActive || !created.CreateTime.Equal(c.Now()) || created.Settings.MaxUsers != 100 {
		t.Errorf("created = %+v", created)
	}
	if _, err := svc.CreateTenant(ctx, "acme", users.TenantRequest{DisplayName: "Again"}); !errors.Is(err, users.ErrIDTaken) {
		t.Errorf("CreateTenant(taken id) err = %v, want ErrIDTaken", err)
	}

	c.Advance(time.Minute)
	updated, err := svc.UpdateTenant(ctx, "acme", users.TenantRequest{DisplayName: "Acme Corp", Etag: created.Etag(), Paths: []string{"displayName"}})
	if err != nil {
		t.Fatalf("UpdateTenant err = %v", err)
	}
	if updated.DisplayName != "Acme Corp" || updated.Settings != created.Settings || !updated.UpdateTime.Equal(c.Now()) || updated.Etag() == created.Etag() {
		t.Errorf("updated = %+v, want the new name, the same settings, a new update time and etag", updated)
	}
	if _, err := svc.UpdateTenant(ctx, "acme", users.TenantRequest{DisplayName: "Stale", Etag: created.Etag()}); !errors.Is(err, users.ErrEtagMismatch) {
		t.Errorf("UpdateTenant with a stale etag err = %v, want ErrEtagMismatch", err)
	}
	limits, err := svc.UpdateTenant(ctx, "acme", users.TenantRequest{Settings: users.TenantSettings{MaxUsers: 5}, Paths: []string{"settings.max_users"}})
	if err != nil || limits.Settings != (users.TenantSettings{MaxUsers: 5, RequestsPerSecond: 50}) {
		t.Errorf("UpdateTenant(settings.max_users) = %+v, %v; want max users 5 and the rate kept", limits, err)
	}

	c.Advance(time.Minute)
	deleted, err := svc.DeleteTenant(ctx, "acme", limits.Etag())
	if err != nil || deleted.State != users.StateDeleted || !deleted.DeleteTime.Equal(c.Now()) {
		t.Fatalf("DeleteTenant = %+v, %v", deleted, err)
	}
	if _, err := svc.DeleteTenant(ctx, "acme", ""); !errors.Is(err, users.ErrWrongState) {
		t.Errorf("DeleteTenant(deleted) err = %v, want ErrWrongState", err)
	}
	if _, err := svc.UpdateTenant(ctx, "acme", users.TenantRequest{DisplayName: "X"}); !errors.Is(err, users.ErrWrongState) {
		t.Errorf("UpdateTenant(deleted) err = %v, want ErrWrongState", err)
	}
	undeleted, err := svc.UndeleteTenant(ctx, "acme", "")
	if err != nil || undeleted.State != users.StateActive || !undeleted.DeleteTime.IsZero() {
		t.Errorf("UndeleteTenant = %+v, %v", undeleted, err)
	}
	if _, err := svc.UndeleteTenant(ctx, "acme", ""); !errors.Is(err, users.ErrWrongState) {
		t.Errorf("UndeleteTenant(active) err = %v, want ErrWrongState", err)
	}

	if _, err := svc.DeleteTenant(ctx, users.DefaultTenant, ""); !errors.Is(err, users.ErrWrongState) {
		t.Errorf("DeleteTenant(default) err = %v, want ErrWrongState", err)
	}
	for _, call := range []func() error{
		func() error { _, err := svc.GetTenant(ctx, "nowhere"); return err },
		func() error {
			_, err := svc.UpdateTenant(ctx, "nowhere", users.TenantRequest{DisplayName: "X"})
			return err
		},
		func() error { _, err := svc.DeleteTenant(ctx, "nowhere", ""); return err },
		func() error { _, err := svc.UndeleteTenant(ctx, "nowhere", ""); return err },
	} {
		if err := call(); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("a call on an unknown tenant err = %v, want ErrNotFound", err)
		}
	}
}

func TestTenantValidation(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, users.Config{})
	for _, tt := range []struct {
		id    string
		req   users.TenantRequest
		field string
	}{
		{"Bad_ID", users.TenantRequest{DisplayName: "X"}, "tenant_id"},
		{"acme", users.TenantRequest{}, "tenant.display_name"},
		{"acme", users.TenantRequest{DisplayName: strings.Repeat("x", 201)}, "tenant.display_name"},
		{"acme", users.TenantRequest{DisplayName: "a\x00b"}, "tenant.display_name"},
		{"acme", users.TenantRequest{DisplayName: "X", Settings: users.TenantSettings{MaxUsers: -1}}, "tenant.settings.max_users"},
		{"acme", users.TenantRequest{DisplayName: "X", Settings: users.TenantSettings{RequestsPerSecond: -1}}, "tenant.settings.requests_per_second"},
		{"acme", users.TenantRequest{DisplayName: "X", Settings: users.TenantSettings{RequestsPerSecond: math.NaN()}}, "tenant.settings.requests_per_second"},
		{"acme", users.TenantRequest{DisplayName: "X", Settings: users.TenantSettings{RequestsPerSecond: math.Inf(1)}}, "tenant.settings.requests_per_second"},
	} {
		_, err := svc.CreateTenant(ctx, tt.id, tt.req)
		checkInvalid(t, fmt.Sprintf("CreateTenant(%q, %+v)", tt.id, tt.req), err, tt.field)
	}
	if _, err := svc.CreateTenant(ctx, "acme", users.TenantRequest{DisplayName: "Acme"}); err != nil {
		t.Fatal(err)
	}
	_, err := svc.UpdateTenant(ctx, "acme", users.TenantRequest{Paths: []string{"state"}})
	checkInvalid(t, "UpdateTenant(state)", err, "update_mask")
	_, err = svc.GetTenant(ctx, "tenants/acme")
	checkInvalid(t, "GetTenant(a name, not an id)", err, "name")
}

func TestListTenantsPages(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, users.Config{})
	want := []string{users.DefaultTenant}
	for n := range 5 {
		id := fmt.Sprintf("tenant-%d", n)
		if _, err := svc.CreateTenant(ctx, id, users.TenantRequest{DisplayName: id}); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	if _, err := svc.DeleteTenant(ctx, "tenant-2", ""); err != nil {
		t.Fatal(err)
	}
	read := func(showDeleted bool) []string {
		var got []string
		token := ""
		for range 10 {
			page, err := svc.ListTenants(ctx, 2, token, showDeleted)
			if err != nil {
				t.Fatalf("ListTenants err = %v", err)
			}
			for _, tn := range page.Tenants {
				got = append(got, tn.ID)
			}
			if token = page.NextPageToken; token == "" {
				return got
			}
		}
		t.Fatal("ListTenants never reached its last page")
		return nil
	}
	if got := read(true); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("ListTenants(show deleted) = %v, want %v", got, want)
	}
	live := strings.Replace(strings.Join(want, ","), ",tenant-2", "", 1)
	if got := read(false); strings.Join(got, ",") != live {
		t.Errorf("ListTenants = %v, want %v", got, live)
	}

	page, err := svc.ListTenants(ctx, 2, "", false)
	if err != nil || page.NextPageToken == "" {
		t.Fatalf("first page = %+v, %v", page, err)
	}
	for name, token := range map[string]string{
		"a token of the other listing": func() string { p, _ := svc.ListTenants(ctx, 2, "", true); return p.NextPageToken }(),
		"a changed token":              page.NextPageToken[:len(page.NextPageToken)-2] + "AA",
		"garbage":                      "not-a-token",
		"a users page token":           "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	} {
		_, err := svc.ListTenants(ctx, 2, token, false)
		checkInvalid(t, "ListTenants with "+name, err, "page_token")
	}
	_, err = svc.ListTenants(ctx, -1, "", false)
	checkInvalid(t, "ListTenants(page size -1)", err, "page_size")
	if p, err := svc.ListTenants(ctx, 100_000, "", true); err != nil || len(p.Tenants) != len(want) {
		t.Errorf("ListTenants(huge page size) = %d tenants, %v; want all %d", len(p.Tenants), err, len(want))
	}
}
