package userstest

// The tests of tenants: what the stores keep apart between tenants, what a
// deleted tenant hides, the limit of users (TenantSettings.MaxUsers), and
// the purge of deleted tenants. Each part of the suite (TestUserStore,
// TestImportStore, TestEventStore, TestWebhookStore) runs those of its
// store interface.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usersd/usersd/internal/users"
)

// The tenants of the tests: two that the tests create, and one that never
// exists.
const (
	tenantA       = "tenant-a"
	tenantB       = "tenant-b"
	tenantNowhere = "tenant-nowhere"
)

// createTenant stores an active tenant with the id and at most maxUsers
// users that are not deleted (0: no limit), and returns it.
func createTenant(t *testing.T, s users.TenantStore, id string, maxUsers int64) *users.Tenant {
	t.Helper()
	tn, err := s.CreateTenant(context.Background(), &users.Tenant{
		ID: id, DisplayName: "Tenant " + id, State: users.StateActive,
		Settings:   users.TenantSettings{MaxUsers: maxUsers},
		CreateTime: base, UpdateTime: base, Revision: 1,
	})
	if err != nil {
		t.Fatalf("CreateTenant(%s) err = %v", id, err)
	}
	return tn
}

// deleteTenant soft-deletes the tenant at the time, as
// users.Service.DeleteTenant does.
func deleteTenant(t *testing.T, s users.TenantStore, id string, at time.Time) {
	t.Helper()
	if _, err := s.UpdateTenant(context.Background(), id, func(tn *users.Tenant) error {
		tn.State, tn.DeleteTime, tn.UpdateTime = users.StateDeleted, at, at
		return nil
	}); err != nil {
		t.Fatalf("UpdateTenant(%s, delete) err = %v", id, err)
	}
}

// undeleteTenant restores a soft-deleted tenant, as
// users.Service.UndeleteTenant does.
func undeleteTenant(t *testing.T, s users.TenantStore, id string) {
	t.Helper()
	if _, err := s.UpdateTenant(context.Background(), id, func(tn *users.Tenant) error {
		tn.State, tn.DeleteTime = users.StateActive, time.Time{}
		return nil
	}); err != nil {
		t.Fatalf("UpdateTenant(%s, undelete) err = %v", id, err)
	}
}

// setMaxUsers changes the tenant's limit of users.
func setMaxUsers(t *testing.T, s users.TenantStore, id string, maxUsers int64) {
	t.Helper()
	if _, err := s.UpdateTenant(context.Background(), id, func(tn *users.Tenant) error {
		tn.Settings.MaxUsers = maxUsers
		return nil
	}); err != nil {
		t.Fatalf("UpdateTenant(%s, max users %d) err = %v", id, maxUsers, err)
	}
}

// userIn is NewUser(n) in the tenant: users of different tenants made with
// the same n have the same address.
func userIn(tenant string, n int) *users.User {
	u := NewUser(n)
	u.Tenant = tenant
	return u
}

// webhookIn is NewWebhook in the tenant.
func webhookIn(tenant string, n int, types ...users.EventType) *users.Webhook {
	w := NewWebhook(n, types...)
	w.Tenant = tenant
	return w
}

// importIn is NewImport into the tenant: imports with the same request id
// have the same addresses, whatever their tenant.
func importIn(tenant, requestID string, sizes ...int) (*users.Operation, []users.ImportChunk) {
	op, chunks := NewImport(requestID, sizes...)
	op.Tenant = tenant
	return op, chunks
}

// tenantUserIDs returns the ids of the tenant's users, deleted ones too
// when showDeleted is set, sorted.
func tenantUserIDs(t *testing.T, s users.UserStore, tenant string, showDeleted bool) []string {
	t.Helper()
	us, err := s.ListUsers(context.Background(), users.ListQuery{Tenant: tenant, ShowDeleted: showDeleted, Limit: 10000})
	if err != nil {
		t.Fatalf("ListUsers(%s) err = %v", tenant, err)
	}
	return slices.Sorted(slices.Values(ids(us)))
}

// wantNoUsers fails the test unless a read of users that must find none
// (those of a tenant that is deleted or does not exist) returned none:
// either no users, or ErrNotFound.
func wantNoUsers(t *testing.T, call string, us []*users.User, err error) {
	t.Helper()
	if (err != nil && !errors.Is(err, users.ErrNotFound)) || len(us) != 0 {
		t.Errorf("%s = %v, %v; want no users (none, or ErrNotFound)", call, ids(us), err)
	}
}

// wantQuota fails the test unless err is a *users.QuotaError of the tenant
// and limit, which is an ErrQuota.
func wantQuota(t *testing.T, call string, err error, tenant string, maxUsers int64) {
	t.Helper()
	var q *users.QuotaError
	if !errors.Is(err, users.ErrQuota) || !errors.As(err, &q) || q.Tenant != tenant || q.MaxUsers != maxUsers {
		t.Errorf("%s err = %v, want a *QuotaError of tenant %s, max users %d", call, err, tenant, maxUsers)
	}
}

// purgeAll calls PurgeDeleted until it removes nothing more, and returns
// how many users it removed in all.
func purgeAll(t *testing.T, s users.UserStore, before time.Time) int {
	t.Helper()
	total := 0
	for range 100 {
		n, err := s.PurgeDeleted(context.Background(), before, 10)
		if err != nil {
			t.Fatalf("PurgeDeleted err = %v", err)
		}
		if n == 0 {
			return total
		}
		total += n
	}
	t.Fatal("PurgeDeleted never finished")
	return 0
}

// testTenantSameEmail: an address is unique within a tenant only.
func testTenantSameEmail(t *testing.T, s UserStore) {
	ctx := context.Background()
	createTenant(t, s, tenantA, 0)
	createTenant(t, s, tenantB, 0)
	a := create(t, s, userIn(tenantA, 1))
	b := userIn(tenantB, 2)
	b.Email = strings.ToUpper(a.Email)
	if got, err := s.CreateUser(ctx, b, nil); err != nil || cmp.Diff(b, got) != "" {
		t.Errorf("CreateUser(%s in %s, the address of a user of %s) = %+v, %v; want %+v", b.Email, tenantB, tenantA, got, err, b)
	}
	d := userIn(users.DefaultTenant, 3)
	d.Email = a.Email
	create(t, s, d)
	for _, u := range []*users.User{a, b, d} {
		if got, err := s.GetUser(ctx, u.Tenant, u.ID); err != nil || cmp.Diff(u, got) != "" {
			t.Errorf("GetUser(%s, %s) = %+v, %v; want %+v", u.Tenant, u.ID, got, err, u)
		}
	}

	// Within a tenant, the address is still taken.
	dup := userIn(tenantA, 4)
	dup.Email = strings.ToLower(a.Email)
	if _, err := s.CreateUser(ctx, dup, nil); !errors.Is(err, users.ErrEmailTaken) {
		t.Errorf("CreateUser(a taken address of %s) err = %v, want ErrEmailTaken", tenantA, err)
	}
	b2 := create(t, s, userIn(tenantB, 5))
	if _, err := s.UpdateUser(ctx, tenantB, b2.ID, func(u *users.User) error { u.Email = b.Email; return nil }); !errors.Is(err, users.ErrEmailTaken) {
		t.Errorf("UpdateUser to a taken address of %s err = %v, want ErrEmailTaken", tenantB, err)
	}
	// An update may take an address of another tenant.
	a2 := create(t, s, userIn(tenantA, 6))
	got, err := s.UpdateUser(ctx, tenantB, b2.ID, func(u *users.User) error { u.Email = a2.Email; return nil })
	if err != nil || got.Email != a2.Email || got.Tenant != tenantB {
		t.Errorf("UpdateUser(%s, the address of a user of %s) = %+v, %v; want the address taken in %s", tenantB, tenantA, got, err, tenantB)
	}
}

// testTenantUserIsolation: a user of one tenant is not found through
// another.
func testTenantUserIsolation(t *testing.T, s UserStore) {
	ctx := context.Background()
	createTenant(t, s, tenantA, 0)
	createTenant(t, s, tenantB, 0)
	ua := create(t, s, userIn(tenantA, 1))
	ub := create(t, s, userIn(tenantB, 2))
	gone := create(t, s, userIn(tenantA, 3))
	gone, err := s.UpdateUser(ctx, tenantA, gone.ID, softDelete)
	if err != nil {
		t.Fatalf("UpdateUser(delete) err = %v", err)
	}

	for _, u := range []*users.User{ua, ub, gone} {
		if got, err := s.GetUser(ctx, u.Tenant, u.ID); err != nil || cmp.Diff(u, got) != "" {
			t.Errorf("GetUser(%s, %s) = %+v, %v; want %+v", u.Tenant, u.ID, got, err, u)
		}
	}
	for _, tt := range []struct {
		tenant string
		u      *users.User
	}{
		{tenantB, ua}, {users.DefaultTenant, ua}, {tenantNowhere, ua}, {tenantB, gone}, {tenantA, ub},
	} {
		if got, err := s.GetUser(ctx, tt.tenant, tt.u.ID); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("GetUser(%s, a user of %s) = %+v, %v; want ErrNotFound", tt.tenant, tt.u.Tenant, got, err)
		}
		called := false
		_, err := s.UpdateUser(ctx, tt.tenant, tt.u.ID, func(u *users.User) error {
			called = true
			u.DisplayName = "changed from " + tt.tenant
			return nil
		})
		if !errors.Is(err, users.ErrNotFound) || called {
			t.Errorf("UpdateUser(%s, a user of %s) err = %v, fn called %v; want ErrNotFound, not called", tt.tenant, tt.u.Tenant, err, called)
		}
	}
	for _, u := range []*users.User{ua, ub, gone} {
		if got, err := s.GetUser(ctx, u.Tenant, u.ID); err != nil || cmp.Diff(u, got) != "" {
			t.Errorf("after updates from other tenants, GetUser(%s, %s) = %+v, %v; want it unchanged", u.Tenant, u.ID, got, err)
		}
	}

	all := []string{ua.ID, ub.ID, gone.ID}
	for _, tt := range []struct {
		tenant string
		want   []string
	}{
		{tenantA, []string{ua.ID, gone.ID}},
		{tenantB, []string{ub.ID}},
		{users.DefaultTenant, nil},
		{tenantNowhere, nil},
	} {
		got, err := s.BatchGetUsers(ctx, tt.tenant, all)
		if err != nil && (len(tt.want) > 0 || !errors.Is(err, users.ErrNotFound)) {
			t.Errorf("BatchGetUsers(%s) err = %v", tt.tenant, err)
			continue
		}
		if diff := cmp.Diff(slices.Sorted(slices.Values(tt.want)), slices.Sorted(slices.Values(ids(got)))); diff != "" {
			t.Errorf("BatchGetUsers(%s, users of every tenant) ids (-want +got):\n%s", tt.tenant, diff)
		}
		for _, u := range got {
			if u.Tenant != tt.tenant {
				t.Errorf("BatchGetUsers(%s) returned user %s of tenant %q", tt.tenant, u.ID, u.Tenant)
			}
		}
	}
}

// testTenantListIsolation: ListUsers lists the tenant's users only, in
// every order, with and without deleted users and filters.
func testTenantListIsolation(t *testing.T, s UserStore) {
	ctx := context.Background()
	createTenant(t, s, tenantA, 0)
	createTenant(t, s, tenantB, 0)
	byTenant := map[string][]*users.User{}
	// Users of each tenant with the same addresses and times (userIn(…,
	// n)), created interleaved, so that a list that leaks another tenant's
	// users shows them in the middle of its pages.
	for n := range 7 {
		for _, tenant := range []string{tenantA, tenantB, users.DefaultTenant} {
			if tenant == tenantB && n >= 4 {
				continue
			}
			byTenant[tenant] = append(byTenant[tenant], create(t, s, userIn(tenant, n)))
		}
	}
	a := byTenant[tenantA]
	d, err := s.UpdateUser(ctx, tenantA, a[2].ID, softDelete)
	if err != nil {
		t.Fatalf("UpdateUser(delete) err = %v", err)
	}
	a[2] = d

	for _, tenant := range []string{tenantA, tenantB, users.DefaultTenant} {
		all := byTenant[tenant]
		var live []*users.User
		for _, u := range all {
			if u.State != users.StateDeleted {
				live = append(live, u)
			}
		}
		for _, o := range []users.Order{{Field: users.OrderCreateTime}, {Field: users.OrderEmail, Desc: true}} {
			for _, showDeleted := range []bool{false, true} {
				want := live
				if showDeleted {
					want = all
				}
				got := page(t, s, users.ListQuery{Tenant: tenant, Order: o, ShowDeleted: showDeleted}, 2)
				if diff := cmp.Diff(ids(sorted(want, o)), ids(got)); diff != "" {
					t.Errorf("ListUsers(%s, order %+v, show deleted %v) (-want +got):\n%s", tenant, o, showDeleted, diff)
				}
			}
		}
	}

	// A filter that names an address of every tenant finds the tenant's
	// user only; one that names an address of A only finds nothing in B.
	for _, tt := range []struct {
		tenant, email string
		want          []string
	}{
		{tenantA, users.EmailKey(a[1].Email), []string{a[1].ID}},
		{tenantB, users.EmailKey(a[1].Email), []string{byTenant[tenantB][1].ID}},
		{tenantB, users.EmailKey(a[5].Email), nil},
		{users.DefaultTenant, users.EmailKey(a[2].Email), []string{byTenant[users.DefaultTenant][2].ID}},
	} {
		q := users.ListQuery{Tenant: tt.tenant, ShowDeleted: true, Limit: 100,
			Filter: users.Filter{{Field: users.FieldEmail, Op: users.OpEq, Value: tt.email}}}
		got, err := s.ListUsers(ctx, q)
		if err != nil {
			t.Fatalf("ListUsers(%s, email = %s) err = %v", tt.tenant, tt.email, err)
		}
		if !slices.Equal(tt.want, ids(got)) {
			t.Errorf("ListUsers(%s, email = %s) = %v, want %v", tt.tenant, tt.email, ids(got), tt.want)
		}
	}
	got, err := s.ListUsers(ctx, users.ListQuery{Tenant: tenantNowhere, ShowDeleted: true, Limit: 100})
	wantNoUsers(t, "ListUsers(a tenant that does not exist)", got, err)
}

// testTenantIdempotencyKeys: a request id is a tenant's: the same one in
// two tenants creates two users, and each tenant's replays return its own.
func testTenantIdempotencyKeys(t *testing.T, s UserStore) {
	ctx := context.Background()
	createTenant(t, s, tenantA, 0)
	createTenant(t, s, tenantB, 0)
	key := &users.IdempotencyKey{RequestID: "req-1", Fingerprint: []byte("fp")}
	first := map[string]*users.User{}
	for _, tenant := range []string{tenantA, tenantB} {
		u, err := s.CreateUser(ctx, userIn(tenant, 1), key)
		if err != nil {
			t.Fatalf("CreateUser(%s, request req-1) err = %v", tenant, err)
		}
		if u.Tenant != tenant {
			t.Errorf("CreateUser(%s) returned a user of tenant %q", tenant, u.Tenant)
		}
		first[tenant] = u
	}
	if first[tenantA].ID == first[tenantB].ID {
		t.Fatalf("the request req-1 in %s and in %s returned the same user %s", tenantA, tenantB, first[tenantA].ID)
	}
	// Replays, with fresh ids and times as retries carry, return the
	// tenant's own user.
	for range 2 {
		for _, tenant := range []string{tenantB, tenantA} {
			again, err := s.CreateUser(ctx, userIn(tenant, 1), key)
			if err != nil {
				t.Fatalf("replayed CreateUser(%s) err = %v", tenant, err)
			}
			if diff := cmp.Diff(first[tenant], again); diff != "" {
				t.Errorf("replay in %s returned (-%s's user +replay):\n%s", tenant, tenant, diff)
			}
		}
	}
	// Another request under the id: refused in a tenant that has the id,
	// created in one that does not.
	other := &users.IdempotencyKey{RequestID: "req-1", Fingerprint: []byte("other fp")}
	var inv *users.InvalidError
	if _, err := s.CreateUser(ctx, userIn(tenantA, 2), other); !errors.As(err, &inv) || inv.Reason != users.ReasonRequestIDReused {
		t.Errorf("CreateUser(%s, req-1 with another request) err = %v, want InvalidError %s", tenantA, err, users.ReasonRequestIDReused)
	}
	d, err := s.CreateUser(ctx, userIn(users.DefaultTenant, 2), other)
	if err != nil || d.Tenant != users.DefaultTenant {
		t.Errorf("CreateUser(%s, req-1 with another request) = %+v, %v; want a new user: the id is only taken in other tenants", users.DefaultTenant, d, err)
	}
	for _, tt := range []struct {
		tenant string
		want   []string
	}{{tenantA, []string{first[tenantA].ID}}, {tenantB, []string{first[tenantB].ID}}} {
		if got := tenantUserIDs(t, s, tt.tenant, true); !slices.Equal(got, tt.want) {
			t.Errorf("users of %s = %v, want %v", tt.tenant, got, tt.want)
		}
	}
}

// testTenantCreateUserMissingTenant: no user is created in a tenant that
// does not exist or is deleted.
func testTenantCreateUserMissingTenant(t *testing.T, s UserStore) {
	ctx := context.Background()
	createTenant(t, s, tenantA, 0)
	deleteTenant(t, s, tenantA, base.Add(time.Hour))
	key := &users.IdempotencyKey{RequestID: "req-missing", Fingerprint: []byte("fp")}
	var refused []*users.User
	for _, tenant := range []string{tenantNowhere, tenantA} {
		for _, k := range []*users.IdempotencyKey{nil, key} {
			u := userIn(tenant, len(refused))
			if got, err := s.CreateUser(ctx, u, k); !errors.Is(err, users.ErrNotFound) {
				t.Errorf("CreateUser(into %s, key %v) = %+v, %v; want ErrNotFound", tenant, k != nil, got, err)
			}
			refused = append(refused, u)
		}
	}
	// Nothing was stored, not even the request id: once the tenant is
	// back, the request creates its user.
	undeleteTenant(t, s, tenantA)
	if got := tenantUserIDs(t, s, tenantA, true); len(got) != 0 {
		t.Errorf("users of %s after the refused creates = %v, want none", tenantA, got)
	}
	for _, u := range refused {
		if _, err := s.GetUser(ctx, tenantA, u.ID); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("a refused user: GetUser(%s, %s) err = %v, want ErrNotFound", tenantA, u.ID, err)
		}
	}
	u := userIn(tenantA, 10)
	got, err := s.CreateUser(ctx, u, key)
	if err != nil || got.ID != u.ID {
		t.Errorf("CreateUser(%s, the request id of a refused create) = %+v, %v; want user %s", tenantA, got, err, u.ID)
	}
}

// testTenantDeletedHidesUsers: the users of a deleted tenant are out of
// reach, live or deleted, until the tenant is undeleted; other tenants'
// are not affected.
func testTenantDeletedHidesUsers(t *testing.T, s UserStore) {
	ctx := context.Background()
	createTenant(t, s, tenantA, 0)
	createTenant(t, s, tenantB, 0)
	live := create(t, s, userIn(tenantA, 1))
	gone := create(t, s, userIn(tenantA, 2))
	gone, err := s.UpdateUser(ctx, tenantA, gone.ID, softDelete)
	if err != nil {
		t.Fatalf("UpdateUser(delete) err = %v", err)
	}
	other := create(t, s, userIn(tenantB, 1))
	deleteTenant(t, s, tenantA, base.Add(time.Hour))

	for _, u := range []*users.User{live, gone} {
		if got, err := s.GetUser(ctx, tenantA, u.ID); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("GetUser(deleted tenant, %s) = %+v, %v; want ErrNotFound", u.Email, got, err)
		}
		called := false
		_, err := s.UpdateUser(ctx, tenantA, u.ID, func(x *users.User) error {
			called = true
			x.DisplayName = "changed"
			return nil
		})
		if !errors.Is(err, users.ErrNotFound) || called {
			t.Errorf("UpdateUser(deleted tenant, %s) err = %v, fn called %v; want ErrNotFound, not called", u.Email, err, called)
		}
	}
	got, err := s.BatchGetUsers(ctx, tenantA, []string{live.ID, gone.ID})
	wantNoUsers(t, "BatchGetUsers(deleted tenant)", got, err)
	for _, showDeleted := range []bool{false, true} {
		got, err := s.ListUsers(ctx, users.ListQuery{Tenant: tenantA, ShowDeleted: showDeleted, Limit: 100})
		wantNoUsers(t, fmt.Sprintf("ListUsers(deleted tenant, show deleted %v)", showDeleted), got, err)
	}
	// B is not affected.
	if got, err := s.GetUser(ctx, tenantB, other.ID); err != nil || cmp.Diff(other, got) != "" {
		t.Errorf("GetUser(%s) while %s is deleted = %+v, %v; want %+v", tenantB, tenantA, got, err, other)
	}
	if got := tenantUserIDs(t, s, tenantB, true); !slices.Equal(got, []string{other.ID}) {
		t.Errorf("users of %s while %s is deleted = %v, want [%s]", tenantB, tenantA, got, other.ID)
	}

	// Hidden, not changed: the undeleted tenant has its users as they were.
	undeleteTenant(t, s, tenantA)
	for _, u := range []*users.User{live, gone} {
		if got, err := s.GetUser(ctx, tenantA, u.ID); err != nil || cmp.Diff(u, got) != "" {
			t.Errorf("GetUser(%s) after the tenant is undeleted = %+v, %v; want %+v", u.Email, got, err, u)
		}
	}
}

// testTenantQuota: a tenant has at most Settings.MaxUsers users that are
// not deleted; other tenants are not affected.
func testTenantQuota(t *testing.T, s UserStore) {
	ctx := context.Background()
	const limit = 3
	createTenant(t, s, tenantA, limit)
	createTenant(t, s, tenantB, 1)
	key := &users.IdempotencyKey{RequestID: "req-quota", Fingerprint: []byte("fp")}
	first, err := s.CreateUser(ctx, userIn(tenantA, 1), key)
	if err != nil {
		t.Fatalf("CreateUser err = %v", err)
	}
	suspended := userIn(tenantA, 2) // suspended users count
	suspended.State = users.StateSuspended
	suspended = create(t, s, suspended)
	third := create(t, s, userIn(tenantA, 3))

	over := userIn(tenantA, 4)
	_, err = s.CreateUser(ctx, over, nil)
	wantQuota(t, "CreateUser past the limit", err, tenantA, limit)
	_, err = s.CreateUser(ctx, userIn(tenantA, 5), &users.IdempotencyKey{RequestID: "req-over", Fingerprint: []byte("fp")})
	wantQuota(t, "CreateUser past the limit, with a request id", err, tenantA, limit)
	if _, err := s.GetUser(ctx, tenantA, over.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("the user refused for the limit: GetUser err = %v, want ErrNotFound", err)
	}
	// A replay inserts nothing: it returns its user at the limit too.
	if again, err := s.CreateUser(ctx, userIn(tenantA, 1), key); err != nil || again.ID != first.ID {
		t.Errorf("replayed CreateUser at the limit = %+v, %v; want user %s", again, err, first.ID)
	}
	// Other tenants have limits of their own.
	create(t, s, userIn(tenantB, 1))
	_, err = s.CreateUser(ctx, userIn(tenantB, 2), nil)
	wantQuota(t, "CreateUser past the limit of "+tenantB, err, tenantB, 1)
	for n := range limit + 2 {
		create(t, s, userIn(users.DefaultTenant, n))
	}
	// Changes that leave as many users live are not refused.
	if _, err := s.UpdateUser(ctx, tenantA, suspended.ID, func(u *users.User) error {
		u.State, u.DisplayName = users.StateActive, "Active again"
		return nil
	}); err != nil {
		t.Errorf("UpdateUser(suspended to active) at the limit err = %v", err)
	}

	// Deleting a user frees a place.
	if _, err := s.UpdateUser(ctx, tenantA, first.ID, softDelete); err != nil {
		t.Fatalf("UpdateUser(delete) err = %v", err)
	}
	fourth := create(t, s, userIn(tenantA, 6))
	_, err = s.CreateUser(ctx, userIn(tenantA, 7), nil)
	wantQuota(t, "CreateUser at the limit again", err, tenantA, limit)
	// Undeleting one takes a place: refused at the limit.
	_, err = s.UpdateUser(ctx, tenantA, first.ID, func(u *users.User) error {
		u.State, u.DeleteTime = users.StateActive, time.Time{}
		return nil
	})
	wantQuota(t, "UpdateUser(undelete) at the limit", err, tenantA, limit)
	if got, err := s.GetUser(ctx, tenantA, first.ID); err != nil || got.State != users.StateDeleted {
		t.Errorf("after the refused undelete, GetUser = %+v, %v; want it still DELETED", got, err)
	}
	if got := tenantUserIDs(t, s, tenantA, false); !slices.Equal(got, slices.Sorted(slices.Values([]string{suspended.ID, third.ID, fourth.ID}))) {
		t.Errorf("live users of %s = %v, want the %d that were let in", tenantA, got, limit)
	}

	// A limit lowered below the users there are keeps them, and refuses
	// new ones; raised, it lets them in.
	setMaxUsers(t, s, tenantA, 1)
	_, err = s.CreateUser(ctx, userIn(tenantA, 8), nil)
	wantQuota(t, "CreateUser past a lowered limit", err, tenantA, 1)
	setMaxUsers(t, s, tenantA, 0)
	create(t, s, userIn(tenantA, 9))
	if _, err := s.UpdateUser(ctx, tenantA, first.ID, func(u *users.User) error {
		u.State, u.DeleteTime = users.StateActive, time.Time{}
		return nil
	}); err != nil {
		t.Errorf("UpdateUser(undelete) without a limit err = %v", err)
	}
}

// testTenantQuotaConcurrent: creates racing for the last places of a
// tenant stop at its limit.
func testTenantQuotaConcurrent(t *testing.T, s UserStore) {
	const (
		limit  = 3
		racers = 10
	)
	createTenant(t, s, tenantA, limit)
	errs := make([]error, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			for range 20 {
				_, errs[i] = s.CreateUser(context.Background(), userIn(tenantA, i), nil)
				if !errors.Is(errs[i], users.ErrContention) {
					return
				}
			}
		})
	}
	wg.Wait()
	created := 0
	for i, err := range errs {
		switch {
		case err == nil:
			created++
		case !errors.Is(err, users.ErrQuota):
			t.Errorf("CreateUser #%d err = %v, want nil or ErrQuota", i, err)
		}
	}
	if created != limit {
		t.Errorf("%d of %d concurrent CreateUser succeeded, want %d", created, racers, limit)
	}
	if got := tenantUserIDs(t, s, tenantA, true); len(got) != limit {
		t.Errorf("%s has %d users, want %d", tenantA, len(got), limit)
	}
}

// testTenantPurgeDeleted: PurgeDeleted removes every user of a tenant
// deleted before the cutoff, deleted or not, with their idempotency keys,
// and then the tenant; a tenant deleted later stays as it is.
func testTenantPurgeDeleted(t *testing.T, s UserStore) {
	ctx := context.Background()
	cutoff := base.Add(24 * time.Hour)
	const tenantEmpty = "tenant-empty"
	createTenant(t, s, tenantA, 0)
	createTenant(t, s, tenantB, 0)
	createTenant(t, s, tenantEmpty, 0)

	key := &users.IdempotencyKey{RequestID: "req-purge", Fingerprint: []byte("fp")}
	active, err := s.CreateUser(ctx, userIn(tenantA, 1), key)
	if err != nil {
		t.Fatal(err)
	}
	suspended := userIn(tenantA, 2)
	suspended.State = users.StateSuspended
	suspended = create(t, s, suspended)
	// Deleted after the cutoff, in a tenant deleted before it.
	recent := create(t, s, userIn(tenantA, 3))
	if _, err := s.UpdateUser(ctx, tenantA, recent.ID, func(u *users.User) error {
		u.State, u.DeleteTime, u.UpdateTime = users.StateDeleted, cutoff.Add(time.Hour), cutoff.Add(time.Hour)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	inB := create(t, s, userIn(tenantB, 1))
	keep := create(t, s, userIn(users.DefaultTenant, 1))
	old := create(t, s, userIn(users.DefaultTenant, 2))
	if _, err := s.UpdateUser(ctx, users.DefaultTenant, old.ID, func(u *users.User) error {
		u.State, u.DeleteTime, u.UpdateTime = users.StateDeleted, cutoff.Add(-time.Hour), cutoff.Add(-time.Hour)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	deleteTenant(t, s, tenantA, cutoff.Add(-time.Hour))
	deleteTenant(t, s, tenantEmpty, cutoff.Add(-time.Hour))
	deleteTenant(t, s, tenantB, cutoff.Add(time.Hour))

	// Four users to purge: A's three and the default tenant's deleted one.
	// Two at a time: A keeps at least one user, and with it its row.
	if n, err := s.PurgeDeleted(ctx, cutoff, 2); err != nil || n != 2 {
		t.Fatalf("PurgeDeleted(limit 2) = %d, %v; want 2", n, err)
	}
	if tn, err := s.GetTenant(ctx, tenantA); err != nil || tn.State != users.StateDeleted {
		t.Errorf("GetTenant(%s) with users left to purge = %+v, %v; want it, deleted", tenantA, tn, err)
	}
	if n := purgeAll(t, s, cutoff); n != 2 {
		t.Errorf("PurgeDeleted removed %d more users, want 2", n)
	}
	for _, id := range []string{tenantA, tenantEmpty} {
		if tn, err := s.GetTenant(ctx, id); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("GetTenant(%s) after the purge = %+v, %v; want ErrNotFound: the tenant was deleted before the cutoff", id, tn, err)
		}
	}
	if tn, err := s.GetTenant(ctx, tenantB); err != nil || tn.State != users.StateDeleted {
		t.Errorf("GetTenant(%s), deleted after the cutoff = %+v, %v; want it kept, deleted", tenantB, tn, err)
	}
	if _, err := s.GetUser(ctx, users.DefaultTenant, old.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("GetUser(a user deleted before the cutoff) err = %v, want ErrNotFound", err)
	}
	if got, err := s.GetUser(ctx, users.DefaultTenant, keep.ID); err != nil || cmp.Diff(keep, got) != "" {
		t.Errorf("GetUser(a live user of the default tenant) = %+v, %v; want it kept", got, err)
	}

	// The tenant's id is free again, and nothing of the old tenant is
	// left in the new one: no users, and its request id creates a user.
	createTenant(t, s, tenantA, 0)
	if got := tenantUserIDs(t, s, tenantA, true); len(got) != 0 {
		t.Errorf("users of the new %s = %v, want none", tenantA, got)
	}
	for _, u := range []*users.User{active, suspended, recent} {
		if _, err := s.GetUser(ctx, tenantA, u.ID); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("GetUser(%s, a user of the purged tenant) err = %v, want ErrNotFound", tenantA, err)
		}
	}
	fresh := userIn(tenantA, 1)
	if got, err := s.CreateUser(ctx, fresh, key); err != nil || got.ID != fresh.ID {
		t.Errorf("CreateUser(%s, the request id of a purged user) = %+v, %v; want a new user", tenantA, got, err)
	}
	// B, deleted after the cutoff, keeps its users.
	undeleteTenant(t, s, tenantB)
	if got, err := s.GetUser(ctx, tenantB, inB.ID); err != nil || cmp.Diff(inB, got) != "" {
		t.Errorf("GetUser(%s) = %+v, %v; want the user kept", tenantB, got, err)
	}
}

// testTenantImportIsolation: an import is its tenant's: the same request
// id in two tenants makes two operations, each found in its tenant only,
// whose users go to that tenant, with the same addresses in both.
func testTenantImportIsolation(t *testing.T, s ImportStore, jobs *Jobs) {
	ctx := context.Background()
	createTenant(t, s, tenantA, 0)
	createTenant(t, s, tenantB, 0)
	type imp struct {
		op     *users.Operation
		chunks []users.ImportChunk
	}
	imports := map[string]imp{}
	for _, tenant := range []string{tenantA, tenantB} {
		op, chunks := importIn(tenant, "req-same", 2, 1)
		got, err := s.CreateImport(ctx, op, importKey(op, "fp"), chunks)
		if err != nil {
			t.Fatalf("CreateImport(%s, req-same) err = %v", tenant, err)
		}
		if got.ID != op.ID || got.Tenant != tenant {
			t.Errorf("CreateImport(%s, req-same) = operation %s of %q, want %s of %s: the request id is taken in another tenant only", tenant, got.ID, got.Tenant, op.ID, tenant)
		}
		imports[tenant] = imp{op, chunks}
	}
	opA, opB := imports[tenantA].op, imports[tenantB].op
	for _, tt := range []struct {
		tenant string
		op     *users.Operation
	}{{tenantA, opA}, {tenantB, opB}} {
		got, err := s.GetOperation(ctx, tt.tenant, tt.op.ID)
		if err != nil || got.Tenant != tt.tenant || got.ID != tt.op.ID {
			t.Errorf("GetOperation(%s, its operation) = %+v, %v; want operation %s of %s", tt.tenant, got, err, tt.op.ID, tt.tenant)
		}
	}
	for _, tt := range []struct {
		tenant string
		op     *users.Operation
	}{{tenantB, opA}, {users.DefaultTenant, opA}, {tenantNowhere, opA}, {tenantA, opB}} {
		if got, err := s.GetOperation(ctx, tt.tenant, tt.op.ID); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("GetOperation(%s, an operation of %s) = %+v, %v; want ErrNotFound", tt.tenant, tt.op.Tenant, got, err)
		}
	}
	// Replays return the tenant's own operation, and enqueue nothing.
	for _, tenant := range []string{tenantB, tenantA} {
		retry, retryChunks := importIn(tenant, "req-same", 2, 1)
		got, err := s.CreateImport(ctx, retry, importKey(retry, "fp"), retryChunks)
		if err != nil || got.ID != imports[tenant].op.ID {
			t.Errorf("replayed CreateImport(%s) = %+v, %v; want operation %s", tenant, got, err, imports[tenant].op.ID)
		}
	}
	// Another request under the id, in a tenant that does not have it.
	other, otherChunks := importIn(users.DefaultTenant, "req-same", 1)
	if got, err := s.CreateImport(ctx, other, importKey(other, "other fp"), otherChunks); err != nil || got.ID != other.ID {
		t.Errorf("CreateImport(%s, req-same with another request) = %+v, %v; want operation %s", users.DefaultTenant, got, err, other.ID)
	}
	if n := len(jobs.Chunks()); n != 5 {
		t.Errorf("%d chunks enqueued, want 5: 2 of each tenant's import and 1 of the default tenant's", n)
	}

	// Each import's rows, which have the same addresses, go to its tenant.
	imported := map[string][]users.ImportedUser{}
	for _, tenant := range []string{tenantA, tenantB} {
		im := imports[tenant]
		for c, chunk := range im.chunks {
			valid := ImportedUsers(chunk)
			importChunk(t, s, im.op.ID, c, valid, nil)
			imported[tenant] = append(imported[tenant], valid...)
		}
		got, err := s.GetOperation(ctx, tenant, im.op.ID)
		if err != nil || got.Imported != 3 || got.Failed != 0 || !got.Done() {
			t.Errorf("GetOperation(%s) after its chunks = %+v, %v; want 3 users imported, none failed", tenant, got, err)
		}
	}
	for tenant, valid := range imported {
		var want []string
		for _, v := range valid {
			u, err := s.GetUser(ctx, tenant, v.User.ID)
			if err != nil || u.Tenant != tenant || u.Email != v.User.Email {
				t.Errorf("GetUser(%s, row %d) = %+v, %v; want the row's user, of %s", tenant, v.Index, u, err, tenant)
			}
			want = append(want, v.User.ID)
		}
		if got := tenantUserIDs(t, s, tenant, true); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
			t.Errorf("users of %s = %v, want its import's %v", tenant, got, want)
		}
	}
	if got := tenantUserIDs(t, s, users.DefaultTenant, true); len(got) != 0 {
		t.Errorf("users of %s = %v, want none: no chunk of its import ran", users.DefaultTenant, got)
	}
}

// testTenantImportMissingTenant: no import starts in a tenant that does
// not exist or is deleted.
func testTenantImportMissingTenant(t *testing.T, s ImportStore, jobs *Jobs) {
	ctx := context.Background()
	createTenant(t, s, tenantA, 0)
	deleteTenant(t, s, tenantA, base.Add(time.Hour))
	var refused []*users.Operation
	for _, tenant := range []string{tenantNowhere, tenantA} {
		op, chunks := importIn(tenant, "req-missing", 2)
		if got, err := s.CreateImport(ctx, op, importKey(op, "fp"), chunks); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("CreateImport(into %s) = %+v, %v; want ErrNotFound", tenant, got, err)
		}
		refused = append(refused, op)
	}
	if n := len(jobs.Chunks()); n != 0 {
		t.Errorf("%d chunks enqueued by refused imports, want none", n)
	}
	// Nothing was stored, not even the request id.
	undeleteTenant(t, s, tenantA)
	for _, op := range refused {
		if _, err := s.GetOperation(ctx, tenantA, op.ID); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("GetOperation(a refused import) err = %v, want ErrNotFound", err)
		}
	}
	op, chunks := importIn(tenantA, "req-missing", 2)
	if got, err := s.CreateImport(ctx, op, importKey(op, "fp"), chunks); err != nil || got.ID != op.ID {
		t.Errorf("CreateImport(%s, the request id of a refused import) = %+v, %v; want operation %s", tenantA, got, err, op.ID)
	}
}

// testTenantImportQuota: the rows of an import that would take the tenant
// past its limit fail with users.ReasonQuota; rows with a taken address do
// not take a place, and deleted users hold none.
func testTenantImportQuota(t *testing.T, s ImportStore) {
	ctx := context.Background()
	const limit = 4
	createTenant(t, s, tenantA, limit)
	live := create(t, s, userIn(tenantA, 1))
	gone := create(t, s, userIn(tenantA, 2))
	if _, err := s.UpdateUser(ctx, tenantA, gone.ID, softDelete); err != nil {
		t.Fatalf("UpdateUser(delete) err = %v", err)
	}
	op, chunks := importIn(tenantA, "req-quota", 7)
	valid := ImportedUsers(chunks[0])
	valid[1].User.Email = live.Email // taken: fails, takes no place
	refused := users.RowFailure{Index: 5, Reason: "display_name: required"}
	valid = slices.Delete(valid, 5, 6) // the domain refused row 5
	if _, err := s.CreateImport(ctx, op, importKey(op, "fp"), chunks); err != nil {
		t.Fatalf("CreateImport err = %v", err)
	}
	// Rows 0, 2 and 3 fill the tenant (with its live user); 4 and 6 are
	// past the limit.
	importChunk(t, s, op.ID, 0, valid, []users.RowFailure{refused})
	got, err := s.GetOperation(ctx, tenantA, op.ID)
	if err != nil {
		t.Fatalf("GetOperation err = %v", err)
	}
	want := []users.RowFailure{
		{Index: 1, Reason: users.ReasonEmailTaken},
		{Index: 4, Reason: users.ReasonQuota},
		refused,
		{Index: 6, Reason: users.ReasonQuota},
	}
	if diff := cmp.Diff(want, got.Failures); diff != "" {
		t.Errorf("Failures (-want +got):\n%s", diff)
	}
	if got.Imported != 3 || got.Failed != 4 {
		t.Errorf("Imported, Failed = %d, %d; want 3, 4", got.Imported, got.Failed)
	}
	for _, v := range valid {
		_, err := s.GetUser(ctx, tenantA, v.User.ID)
		if stored := v.Index == 0 || v.Index == 2 || v.Index == 3; stored != (err == nil) {
			t.Errorf("row %d: GetUser err = %v, want it imported: %v", v.Index, err, stored)
		}
	}
	if n := len(tenantUserIDs(t, s, tenantA, false)); n != limit {
		t.Errorf("%s has %d users that are not deleted, want its limit %d", tenantA, n, limit)
	}

	// A deleted user frees a place for the next import, and only one.
	if _, err := s.UpdateUser(ctx, tenantA, live.ID, softDelete); err != nil {
		t.Fatalf("UpdateUser(delete) err = %v", err)
	}
	op2, chunks2 := importIn(tenantA, "req-quota-2", 2)
	if _, err := s.CreateImport(ctx, op2, importKey(op2, "fp"), chunks2); err != nil {
		t.Fatalf("CreateImport err = %v", err)
	}
	importChunk(t, s, op2.ID, 0, ImportedUsers(chunks2[0]), nil)
	got, err = s.GetOperation(ctx, tenantA, op2.ID)
	if err != nil {
		t.Fatalf("GetOperation err = %v", err)
	}
	if diff := cmp.Diff([]users.RowFailure{{Index: 1, Reason: users.ReasonQuota}}, got.Failures); diff != "" || got.Imported != 1 {
		t.Errorf("second import: %d imported, failures (-want +got):\n%s", got.Imported, diff)
	}
}

// testTenantImportChunkDeletedTenant: the rows of a chunk that runs while
// its tenant is deleted fail with users.ReasonTenantDeleted, and the chunk
// is done: it imports nothing once the tenant is back.
func testTenantImportChunkDeletedTenant(t *testing.T, s ImportStore) {
	ctx := context.Background()
	createTenant(t, s, tenantA, 0)
	op, chunks := importIn(tenantA, "req-deleted", 3, 1)
	if _, err := s.CreateImport(ctx, op, importKey(op, "fp"), chunks); err != nil {
		t.Fatalf("CreateImport err = %v", err)
	}
	deleteTenant(t, s, tenantA, base.Add(time.Hour))
	valid := ImportedUsers(chunks[0])
	refused := users.RowFailure{Index: 1, Reason: "display_name: required"}
	valid = slices.Delete(valid, 1, 2) // the domain refused row 1
	if err := s.ImportChunk(ctx, op.ID, 0, valid, []users.RowFailure{refused}); err != nil {
		t.Fatalf("ImportChunk while the tenant is deleted err = %v", err)
	}
	undeleteTenant(t, s, tenantA)
	// The chunk again, the tenant back: it was done, nothing happens.
	if err := s.ImportChunk(ctx, op.ID, 0, ImportedUsers(chunks[0]), nil); err != nil {
		t.Fatalf("ImportChunk again err = %v", err)
	}
	got, err := s.GetOperation(ctx, tenantA, op.ID)
	if err != nil {
		t.Fatalf("GetOperation err = %v", err)
	}
	want := []users.RowFailure{{Index: 0, Reason: users.ReasonTenantDeleted}, refused, {Index: 2, Reason: users.ReasonTenantDeleted}}
	if diff := cmp.Diff(want, got.Failures); diff != "" || got.Imported != 0 || got.Failed != 3 || got.ChunksDone != 1 {
		t.Errorf("operation: %d imported, %d failed, %d chunks done; want 0, 3, 1; failures (-want +got):\n%s", got.Imported, got.Failed, got.ChunksDone, diff)
	}
	if ids := tenantUserIDs(t, s, tenantA, true); len(ids) != 0 {
		t.Errorf("users of %s = %v, want none: its chunk ran while it was deleted", tenantA, ids)
	}
	// The next chunk, the tenant back, imports its row.
	importChunk(t, s, op.ID, 1, ImportedUsers(chunks[1]), nil)
	if got, err := s.GetOperation(ctx, tenantA, op.ID); err != nil || got.Imported != 1 || !got.Done() {
		t.Errorf("after chunk 1: %+v, %v; want 1 imported, done", got, err)
	}
}

// testTenantPurgeOperations: the purge of a deleted tenant removes its
// operations: a new tenant with its id has none, its request ids are free,
// and a chunk of the old import that runs late imports nothing.
func testTenantPurgeOperations(t *testing.T, s ImportStore) {
	ctx := context.Background()
	cutoff := base.Add(24 * time.Hour)
	createTenant(t, s, tenantA, 0)
	createTenant(t, s, tenantB, 0)
	opA, chunksA := importIn(tenantA, "req-purge", 1, 1)
	if _, err := s.CreateImport(ctx, opA, importKey(opA, "fp"), chunksA); err != nil {
		t.Fatalf("CreateImport(%s) err = %v", tenantA, err)
	}
	importChunk(t, s, opA.ID, 0, ImportedUsers(chunksA[0]), nil)
	opB, chunksB := importIn(tenantB, "req-purge", 1)
	if _, err := s.CreateImport(ctx, opB, importKey(opB, "fp"), chunksB); err != nil {
		t.Fatalf("CreateImport(%s) err = %v", tenantB, err)
	}
	deleteTenant(t, s, tenantA, cutoff.Add(-time.Hour))
	if n := purgeAll(t, s, cutoff); n != 1 {
		t.Errorf("PurgeDeleted removed %d users, want the 1 of the deleted tenant", n)
	}
	if _, err := s.GetTenant(ctx, tenantA); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("GetTenant(%s) after the purge err = %v, want ErrNotFound", tenantA, err)
	}

	// The chunk still queued finds no operation.
	late := ImportedUsers(chunksA[1])
	if err := s.ImportChunk(ctx, opA.ID, 1, late, nil); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("ImportChunk(an operation of the purged tenant) err = %v, want ErrNotFound", err)
	}
	createTenant(t, s, tenantA, 0)
	if _, err := s.GetOperation(ctx, tenantA, opA.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("GetOperation(the new %s, the purged tenant's operation) err = %v, want ErrNotFound", tenantA, err)
	}
	if got := tenantUserIDs(t, s, tenantA, true); len(got) != 0 {
		t.Errorf("users of the new %s = %v, want none", tenantA, got)
	}
	again, againChunks := importIn(tenantA, "req-purge", 1, 1)
	if got, err := s.CreateImport(ctx, again, importKey(again, "fp"), againChunks); err != nil || got.ID != again.ID {
		t.Errorf("CreateImport(%s, the purged tenant's request id) = %+v, %v; want the new operation %s", tenantA, got, err, again.ID)
	}
	if got, err := s.GetOperation(ctx, tenantB, opB.ID); err != nil || got.ID != opB.ID {
		t.Errorf("GetOperation(%s) = %+v, %v; want its operation kept", tenantB, got, err)
	}
}

// testTenantEvents: every event names its tenant, and the feed of a
// tenant holds its events only, at the same positions as in the feed of
// every tenant.
func testTenantEvents(t *testing.T, s EventStore) {
	ctx, traceParent := tracedContext()
	createTenant(t, s, tenantA, 0)
	createTenant(t, s, tenantB, 0)
	from := users.Now()
	ua, err := s.CreateUser(ctx, userIn(tenantA, 1), nil)
	if err != nil {
		t.Fatalf("CreateUser err = %v", err)
	}
	ub := create(t, s, userIn(tenantB, 1))
	ud := create(t, s, userIn(users.DefaultTenant, 1))
	renamed, err := s.UpdateUser(context.Background(), tenantA, ua.ID, func(u *users.User) error { u.DisplayName = "Renamed"; return nil })
	if err != nil {
		t.Fatalf("UpdateUser err = %v", err)
	}
	op, chunks := importIn(tenantB, "req-events", 1)
	if _, err := s.CreateImport(context.Background(), op, importKey(op, "fp"), chunks); err != nil {
		t.Fatalf("CreateImport err = %v", err)
	}
	row := ImportedUsers(chunks[0])
	importChunk(t, s, op.ID, 0, row, nil)
	imported, err := s.GetUser(context.Background(), tenantB, row[0].User.ID)
	if err != nil {
		t.Fatalf("GetUser(imported) err = %v", err)
	}
	deleted, err := s.UpdateUser(context.Background(), tenantB, ub.ID, softDelete)
	if err != nil {
		t.Fatalf("UpdateUser(delete) err = %v", err)
	}

	all := readTenantN(t, s, users.AllTenants, users.EventPos{}, 6)
	checkEvents(t, "ListEvents(every tenant)", all, []wantEvent{
		{Tenant: tenantA, Type: users.EventCreated, UserID: ua.ID, User: ua, TraceParent: traceParent},
		{Tenant: tenantB, Type: users.EventCreated, UserID: ub.ID, User: ub},
		{Tenant: users.DefaultTenant, Type: users.EventCreated, UserID: ud.ID, User: ud},
		{Tenant: tenantA, Type: users.EventUpdated, UserID: ua.ID, User: renamed, Paths: []string{"display_name"}},
		{Tenant: tenantB, Type: users.EventCreated, UserID: imported.ID, User: imported},
		{Tenant: tenantB, Type: users.EventDeleted, UserID: ub.ID, User: deleted, Paths: []string{"state", "delete_time"}},
	}, from, users.Now())

	// Each tenant's feed, up to a marker of the tenant: its events only,
	// as the feed of every tenant has them.
	for _, tt := range []struct {
		tenant string
		want   []users.Event
	}{
		{tenantA, []users.Event{all[0], all[3]}},
		{tenantB, []users.Event{all[1], all[4], all[5]}},
		{users.DefaultTenant, []users.Event{all[2]}},
	} {
		got := markIn(t, s, tt.tenant, users.EventPos{})
		if diff := cmp.Diff(summarizeEvents(tt.want), summarizeEvents(got)); diff != "" {
			t.Errorf("ListEvents(%s) (-want +got):\n%s", tt.tenant, diff)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ListEvents(%s) differs from ListEvents(every tenant) (-every tenant +%s):\n%s", tt.tenant, tt.tenant, diff)
		}
	}
	// Pages of one event, and a cursor of another tenant's event.
	for _, tt := range []struct {
		after users.EventPos
		want  users.Event
	}{
		{users.EventPos{}, all[0]},
		{all[0].Pos, all[3]},
		{all[1].Pos, all[3]}, // B's event: the next of A's after it
		{all[2].Pos, all[3]},
	} {
		got, err := s.ListEvents(context.Background(), tenantA, tt.after, 1)
		if err != nil || len(got) != 1 || got[0].ID != tt.want.ID {
			t.Errorf("ListEvents(%s, after %+v, 1) = %v, %v; want [%s %s]", tenantA, tt.after, summarizeEvents(got), err, tt.want.Type, tt.want.UserID)
		}
	}
}

// testTenantPurgeEvents: the users purged with their tenant get
// user.purged events that name it.
func testTenantPurgeEvents(t *testing.T, s EventStore) {
	ctx, traceParent := tracedContext()
	cutoff := base.Add(24 * time.Hour)
	createTenant(t, s, tenantA, 0)
	var gone []string
	for n := range 2 {
		gone = append(gone, create(t, s, userIn(tenantA, n)).ID)
	}
	start := readTenantN(t, s, users.AllTenants, users.EventPos{}, 2)[1].Pos
	deleteTenant(t, s, tenantA, cutoff.Add(-time.Hour))
	from := users.Now()
	if n, err := s.PurgeDeleted(ctx, cutoff, 10); err != nil || n != 2 {
		t.Fatalf("PurgeDeleted = %d, %v; want 2", n, err)
	}
	// The marker is the default tenant's: read every tenant's feed.
	m := create(t, s, userIn(users.DefaultTenant, 99))
	evs := readTenantUntil(t, s, users.AllTenants, start, func(ev users.Event) bool { return ev.UserID == m.ID })
	evs = evs[:len(evs)-1]
	slices.SortFunc(evs, func(a, b users.Event) int { return strings.Compare(a.UserID, b.UserID) })
	slices.Sort(gone)
	checkEvents(t, "PurgeDeleted of a deleted tenant", evs, []wantEvent{
		{Tenant: tenantA, Type: users.EventPurged, UserID: gone[0], TraceParent: traceParent},
		{Tenant: tenantA, Type: users.EventPurged, UserID: gone[1], TraceParent: traceParent},
	}, from, users.Now())
}

// testTenantWebhookIsolation: a subscription is its tenant's: found,
// listed, changed and deleted through that tenant only, or through
// users.AllTenants for Get and List.
func testTenantWebhookIsolation(t *testing.T, s WebhookStore) {
	ctx := context.Background()
	createTenant(t, s, tenantA, 0)
	createTenant(t, s, tenantB, 0)
	wA := webhookIn(tenantA, 1, users.EventCreated)
	wB := webhookIn(tenantB, 2)
	wAll := NewWebhook(3) // the platform's, to every tenant's events
	wAll.AllTenants = true
	wDef := NewWebhook(4)
	hooks := []*users.Webhook{wA, wB, wAll, wDef}
	for _, w := range hooks {
		if got := createWebhook(t, s, w.Clone()); cmp.Diff(w, got) != "" {
			t.Errorf("CreateWebhook(%s) returned (-want +got):\n%s", w.URL, cmp.Diff(w, got))
		}
		for _, tenant := range []string{w.Tenant, users.AllTenants} {
			if got, err := s.GetWebhook(ctx, tenant, w.ID); err != nil || cmp.Diff(w, got) != "" {
				t.Errorf("GetWebhook(%s, %s) = %+v, %v; want %+v", tenant, w.URL, got, err, w)
			}
		}
	}
	for _, tt := range []struct {
		tenant string
		w      *users.Webhook
	}{
		{tenantB, wA}, {users.DefaultTenant, wA}, {tenantNowhere, wA}, {tenantA, wB},
		{tenantA, wAll}, // to every tenant's events, but the default tenant's
		{tenantA, wDef},
	} {
		if got, err := s.GetWebhook(ctx, tt.tenant, tt.w.ID); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("GetWebhook(%s, %s of %s) = %+v, %v; want ErrNotFound", tt.tenant, tt.w.URL, tt.w.Tenant, got, err)
		}
		called := false
		_, err := s.UpdateWebhook(ctx, tt.tenant, tt.w.ID, func(x *users.Webhook) error {
			called = true
			x.URL = "https://evil.example.com/hook"
			return nil
		})
		if !errors.Is(err, users.ErrNotFound) || called {
			t.Errorf("UpdateWebhook(%s, %s of %s) err = %v, fn called %v; want ErrNotFound, not called", tt.tenant, tt.w.URL, tt.w.Tenant, err, called)
		}
		if err := s.DeleteWebhook(ctx, tt.tenant, tt.w.ID); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("DeleteWebhook(%s, %s of %s) err = %v, want ErrNotFound", tt.tenant, tt.w.URL, tt.w.Tenant, err)
		}
	}
	ws, err := s.ListWebhooks(ctx, users.AllTenants)
	if err != nil {
		t.Fatalf("ListWebhooks(every tenant) err = %v", err)
	}
	if diff := cmp.Diff(hooks, ws); diff != "" {
		t.Errorf("after calls from other tenants, ListWebhooks(every tenant) (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		tenant string
		want   []*users.Webhook
	}{
		{tenantA, []*users.Webhook{wA}},
		{tenantB, []*users.Webhook{wB}},
		{users.DefaultTenant, []*users.Webhook{wAll, wDef}},
		{tenantNowhere, nil},
	} {
		got, err := s.ListWebhooks(ctx, tt.tenant)
		if err != nil && (len(tt.want) > 0 || !errors.Is(err, users.ErrNotFound)) {
			t.Errorf("ListWebhooks(%s) err = %v", tt.tenant, err)
			continue
		}
		if diff := cmp.Diff(webhookIDs(tt.want), webhookIDs(got)); diff != "" {
			t.Errorf("ListWebhooks(%s) (-want +got):\n%s", tt.tenant, diff)
		}
	}

	// Through its own tenant, a subscription changes and goes.
	a := users.DeliveryAttempt{WebhookID: wA.ID, EventID: users.NewID(), EventType: users.EventCreated, Attempt: 1, Success: true, Status: 200, Time: base}
	if _, err := s.RecordDeliveryAttempts(ctx, wA.ID, []users.DeliveryAttempt{a}, 3); err != nil {
		t.Fatalf("RecordDeliveryAttempts err = %v", err)
	}
	updated, err := s.UpdateWebhook(ctx, tenantA, wA.ID, func(x *users.Webhook) error { x.URL = "https://a.example.com/hook"; return nil })
	if err != nil || updated.URL != "https://a.example.com/hook" || updated.Tenant != tenantA {
		t.Errorf("UpdateWebhook(%s, its webhook) = %+v, %v; want the new URL", tenantA, updated, err)
	}
	if err := s.DeleteWebhook(ctx, tenantA, wA.ID); err != nil {
		t.Errorf("DeleteWebhook(%s, its webhook) err = %v", tenantA, err)
	}
	if _, err := s.GetWebhook(ctx, users.AllTenants, wA.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("GetWebhook(every tenant, a deleted webhook) err = %v, want ErrNotFound", err)
	}
	if as, err := s.ListDeliveryAttempts(ctx, wA.ID, 10); err != nil || len(as) != 0 {
		t.Errorf("ListDeliveryAttempts(a deleted webhook) = %v, %v; want none", as, err)
	}
}

// testTenantWebhookMissingTenant: no subscription is created in a tenant
// that does not exist or is deleted.
func testTenantWebhookMissingTenant(t *testing.T, s WebhookStore) {
	ctx := context.Background()
	createTenant(t, s, tenantA, 0)
	deleteTenant(t, s, tenantA, base.Add(time.Hour))
	for i, tenant := range []string{tenantNowhere, tenantA} {
		w := webhookIn(tenant, i)
		if got, err := s.CreateWebhook(ctx, w); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("CreateWebhook(in %s) = %+v, %v; want ErrNotFound", tenant, got, err)
		}
		w = webhookIn(tenant, 10+i)
		w.AllTenants = true
		if got, err := s.CreateWebhook(ctx, w); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("CreateWebhook(in %s, to every tenant) = %+v, %v; want ErrNotFound", tenant, got, err)
		}
	}
	if ws, err := s.ListWebhooks(ctx, users.AllTenants); err != nil || len(ws) != 0 {
		t.Errorf("ListWebhooks(every tenant) = %v, %v; want none", webhookIDs(ws), err)
	}
}

// testTenantDispatch: an event goes to the enabled subscriptions of its
// tenant that want its type, and to those of any tenant to every tenant's
// events.
func testTenantDispatch(t *testing.T, s WebhookStore, jobs *Jobs) {
	ctx := context.Background()
	createTenant(t, s, tenantA, 0)
	createTenant(t, s, tenantB, 0)
	hA := createWebhook(t, s, webhookIn(tenantA, 1))
	hAUpdates := createWebhook(t, s, webhookIn(tenantA, 2, users.EventUpdated))
	hB := createWebhook(t, s, webhookIn(tenantB, 3))
	hDef := createWebhook(t, s, NewWebhook(4))
	all := NewWebhook(5)
	all.AllTenants = true
	hAll := createWebhook(t, s, all)
	allOff := NewWebhook(6)
	allOff.AllTenants, allOff.Enabled = true, false
	createWebhook(t, s, allOff)
	allFromB := webhookIn(tenantB, 7, users.EventCreated) // to every tenant's user.created
	allFromB.AllTenants = true
	hAllFromB := createWebhook(t, s, allFromB)

	ua := create(t, s, userIn(tenantA, 1))
	create(t, s, userIn(tenantB, 1))
	create(t, s, userIn(users.DefaultTenant, 1))
	if _, err := s.UpdateUser(ctx, tenantA, ua.ID, func(u *users.User) error { u.DisplayName = "renamed"; return nil }); err != nil {
		t.Fatal(err)
	}
	evs := readTenantN(t, s, users.AllTenants, users.EventPos{}, 4)
	var want []users.Delivery
	for i, hooks := range [][]*users.Webhook{
		{hA, hAll, hAllFromB},   // A's user created
		{hB, hAll, hAllFromB},   // B's user created
		{hDef, hAll, hAllFromB}, // the default tenant's user created
		{hA, hAUpdates, hAll},   // A's user updated
	} {
		for _, w := range hooks {
			want = append(want, users.Delivery{WebhookID: w.ID, EventID: evs[i].ID, Time: evs[i].Time})
		}
	}
	dispatchAll(t, s, 100, 4)
	if diff := cmp.Diff(sortDeliveries(want), sortDeliveries(jobs.Deliveries())); diff != "" {
		t.Errorf("deliveries enqueued (-want +got):\n%s", diff)
	}
	checkPosition(t, s, evs[3].Pos)
}

// testTenantPurgeWebhooks: the purge of a deleted tenant removes its
// subscriptions and their delivery attempts; other tenants' stay.
func testTenantPurgeWebhooks(t *testing.T, s WebhookStore) {
	ctx := context.Background()
	cutoff := base.Add(24 * time.Hour)
	createTenant(t, s, tenantA, 0)
	createTenant(t, s, tenantB, 0)
	wA := createWebhook(t, s, webhookIn(tenantA, 1))
	allA := webhookIn(tenantA, 2)
	allA.AllTenants = true
	wAllA := createWebhook(t, s, allA)
	wB := createWebhook(t, s, webhookIn(tenantB, 3))
	for _, w := range []*users.Webhook{wA, wB} {
		a := users.DeliveryAttempt{WebhookID: w.ID, EventID: users.NewID(), EventType: users.EventCreated, Attempt: 1, Success: true, Status: 200, Time: users.Now()}
		if _, err := s.RecordDeliveryAttempts(ctx, w.ID, []users.DeliveryAttempt{a}, 3); err != nil {
			t.Fatalf("RecordDeliveryAttempts err = %v", err)
		}
	}
	create(t, s, userIn(tenantA, 1))
	deleteTenant(t, s, tenantA, cutoff.Add(-time.Hour))
	if n := purgeAll(t, s, cutoff); n != 1 {
		t.Errorf("PurgeDeleted removed %d users, want the 1 of the deleted tenant", n)
	}
	if _, err := s.GetTenant(ctx, tenantA); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("GetTenant(%s) after the purge err = %v, want ErrNotFound", tenantA, err)
	}
	for _, w := range []*users.Webhook{wA, wAllA} {
		if got, err := s.GetWebhook(ctx, users.AllTenants, w.ID); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("GetWebhook(every tenant, %s of the purged tenant) = %+v, %v; want ErrNotFound", w.URL, got, err)
		}
	}
	if as, err := s.ListDeliveryAttempts(ctx, wA.ID, 10); err != nil || len(as) != 0 {
		t.Errorf("ListDeliveryAttempts(a webhook of the purged tenant) = %v, %v; want none", as, err)
	}
	if ws, err := s.ListWebhooks(ctx, users.AllTenants); err != nil || !slices.Equal(webhookIDs(ws), []string{wB.ID}) {
		t.Errorf("ListWebhooks(every tenant) after the purge = %v, %v; want [%s]", webhookIDs(ws), err, wB.ID)
	}
	if as, err := s.ListDeliveryAttempts(ctx, wB.ID, 10); err != nil || len(as) != 1 {
		t.Errorf("ListDeliveryAttempts(%s's webhook) = %v, %v; want its 1 attempt", tenantB, as, err)
	}
	createTenant(t, s, tenantA, 0)
	if ws, err := s.ListWebhooks(ctx, tenantA); err != nil || len(ws) != 0 {
		t.Errorf("ListWebhooks(the new %s) = %v, %v; want none", tenantA, webhookIDs(ws), err)
	}
}
