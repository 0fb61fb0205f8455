// Package userstest is the conformance suite of the users stores: every
// store runs the same tests, so the SQLite and Postgres stores behave
// alike. It has one part per store interface (TestUserStore,
// TestImportStore, TestEventStore, TestWebhookStore, TestSinkStore,
// TestTenantStore, TestGroupStore), each of which takes a constructor of
// just what its tests use; Run runs them all on one store. The tests that
// need no other tenant use users.DefaultTenant, which every migrated store
// holds; those of tenants_isolation.go create tenants of their own.
package userstest

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
	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/users"
)

// Run runs every part of the suite on stores that newStore returns, and
// the tests that drive a users.Service over a whole store. newStore must
// return an empty, migrated store that lives until the test ends, made
// with a fake job queue that forwards what CreateImport and DispatchEvents
// enqueue to the returned Jobs (see Queue).
func Run(t *testing.T, newStore func(t *testing.T) (users.Store, *Jobs)) {
	store := func(t *testing.T) users.Store {
		s, _ := newStore(t)
		return s
	}
	t.Run("UserStore", func(t *testing.T) {
		t.Parallel()
		TestUserStore(t, func(t *testing.T) UserStore { return store(t) })
	})
	t.Run("ImportStore", func(t *testing.T) {
		t.Parallel()
		TestImportStore(t, func(t *testing.T) (ImportStore, *Jobs) { return newStore(t) })
	})
	t.Run("EventStore", func(t *testing.T) {
		t.Parallel()
		TestEventStore(t, func(t *testing.T) EventStore { return store(t) })
	})
	t.Run("WebhookStore", func(t *testing.T) {
		t.Parallel()
		TestWebhookStore(t, func(t *testing.T) (WebhookStore, *Jobs) { return newStore(t) })
	})
	t.Run("SinkStore", func(t *testing.T) {
		t.Parallel()
		TestSinkStore(t, func(t *testing.T) users.SinkStore { return store(t) })
	})
	t.Run("TenantStore", func(t *testing.T) {
		t.Parallel()
		TestTenantStore(t, func(t *testing.T) users.TenantStore { return store(t) })
	})
	t.Run("GroupStore", func(t *testing.T) {
		t.Parallel()
		TestGroupStore(t, func(t *testing.T) GroupStore { return store(t) })
	})
	run(t, newStore, []test[users.Store]{
		{"ControlCharacters", testControlCharacters},
		{"SchemaCheckService", testSchemaCheckService}, // schemacheck.go
	})
}

// UserStore is what the user tests use: the users, and the tenants they
// belong to.
type UserStore interface {
	users.UserStore
	users.TenantStore
}

// TestUserStore is the part of the suite for users.UserStore. newStore
// must return an empty, migrated store that lives until the test ends.
func TestUserStore(t *testing.T, newStore func(t *testing.T) UserStore) {
	run(t, withoutJobs(newStore), []test[UserStore]{
		{"CreateGet", storeOnly(testCreateGet)},
		{"GetNotFound", storeOnly(testGetNotFound)},
		{"DuplicateEmail", storeOnly(testDuplicateEmail)},
		{"EmailFreedByDelete", storeOnly(testEmailFreedByDelete)},
		{"Idempotency", storeOnly(testIdempotency)},
		{"IdempotencyConcurrent", storeOnly(testIdempotencyConcurrent)},
		{"Update", storeOnly(testUpdate)},
		{"UpdateFnError", storeOnly(testUpdateFnError)},
		{"UpdateNotFound", storeOnly(testUpdateNotFound)},
		{"UpdateEmailConflict", storeOnly(testUpdateEmailConflict)},
		{"BatchGet", storeOnly(testBatchGet)},
		{"ListOrders", storeOnly(testListOrders)},
		{"ListFilters", storeOnly(testListFilters)},
		{"PurgeDeleted", storeOnly(testPurgeDeleted)},
		{"Profile", storeOnly(testProfile)},
		{"Search", storeOnly(testSearch)},
		{"Export", storeOnly(testExport)}, // export.go
		// Tenants: tenants_isolation.go.
		{"TenantSameEmail", storeOnly(testTenantSameEmail)},
		{"TenantUserIsolation", storeOnly(testTenantUserIsolation)},
		{"TenantListIsolation", storeOnly(testTenantListIsolation)},
		{"TenantIdempotencyKeys", storeOnly(testTenantIdempotencyKeys)},
		{"TenantCreateUserMissingTenant", storeOnly(testTenantCreateUserMissingTenant)},
		{"TenantDeletedHidesUsers", storeOnly(testTenantDeletedHidesUsers)},
		{"TenantQuota", storeOnly(testTenantQuota)},
		{"TenantQuotaConcurrent", storeOnly(testTenantQuotaConcurrent)},
		{"TenantPurgeDeleted", storeOnly(testTenantPurgeDeleted)},
	})
}

// test is one test of a part of the suite, on a store of type S.
type test[S any] struct {
	name string
	fn   func(t *testing.T, s S, jobs *Jobs)
}

// run runs tests in parallel, each on a store of its own.
func run[S any](t *testing.T, newStore func(t *testing.T) (S, *Jobs), tests []test[S]) {
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, jobs := newStore(t)
			tt.fn(t, s, jobs)
		})
	}
}

// withoutJobs adapts the constructor of a part whose stores enqueue no jobs.
func withoutJobs[S any](newStore func(t *testing.T) S) func(t *testing.T) (S, *Jobs) {
	return func(t *testing.T) (S, *Jobs) { return newStore(t), nil }
}

// storeOnly adapts a test that needs no job queue.
func storeOnly[S any](fn func(t *testing.T, s S)) func(t *testing.T, s S, jobs *Jobs) {
	return func(t *testing.T, s S, _ *Jobs) { fn(t, s) }
}

var base = time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)

// NewUser returns a valid user of the default tenant that is not stored
// yet; n makes its email and times distinct.
func NewUser(n int) *users.User {
	ts := base.Add(time.Duration(n) * time.Minute)
	return &users.User{
		Tenant:      users.DefaultTenant,
		ID:          uuid.Must(uuid.NewV7()).String(),
		Email:       fmt.Sprintf("User%03d@Example.com", n),
		DisplayName: fmt.Sprintf("User %d", n),
		State:       users.StateActive,
		CreateTime:  ts,
		UpdateTime:  ts,
		Revision:    1,
	}
}

func create(t *testing.T, s users.UserStore, u *users.User) *users.User {
	t.Helper()
	got, err := s.CreateUser(context.Background(), u, nil)
	if err != nil {
		t.Fatalf("CreateUser(%s) err = %v", u.Email, err)
	}
	return got
}

func testCreateGet(t *testing.T, s UserStore) {
	ctx := context.Background()
	u := NewUser(1)
	u.Labels = map[string]string{"team": "core", "tier": "gold"}
	u.State = users.StateSuspended
	created, err := s.CreateUser(ctx, u, nil)
	if err != nil {
		t.Fatalf("CreateUser err = %v", err)
	}
	if diff := cmp.Diff(u, created); diff != "" {
		t.Errorf("CreateUser returned a different user (-want +got):\n%s", diff)
	}
	got, err := s.GetUser(ctx, users.DefaultTenant, u.ID)
	if err != nil {
		t.Fatalf("GetUser err = %v", err)
	}
	if diff := cmp.Diff(u, got); diff != "" {
		t.Errorf("GetUser (-want +got):\n%s", diff)
	}

	plain := NewUser(2) // no labels: reads back as nil labels
	create(t, s, plain)
	got, err = s.GetUser(ctx, users.DefaultTenant, plain.ID)
	if err != nil {
		t.Fatalf("GetUser err = %v", err)
	}
	if diff := cmp.Diff(plain, got); diff != "" {
		t.Errorf("GetUser without labels (-want +got):\n%s", diff)
	}
}

func testGetNotFound(t *testing.T, s UserStore) {
	for _, id := range []string{uuid.Must(uuid.NewV7()).String(), "not-a-uuid"} {
		if _, err := s.GetUser(context.Background(), users.DefaultTenant, id); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("GetUser(%q) err = %v, want ErrNotFound", id, err)
		}
	}
}

func testDuplicateEmail(t *testing.T, s UserStore) {
	a := create(t, s, NewUser(1))
	b := NewUser(2)
	b.Email = strings.ToUpper(a.Email)
	if _, err := s.CreateUser(context.Background(), b, nil); !errors.Is(err, users.ErrEmailTaken) {
		t.Fatalf("CreateUser(%s) err = %v, want ErrEmailTaken", b.Email, err)
	}
	if _, err := s.GetUser(context.Background(), users.DefaultTenant, b.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("rejected user was stored: GetUser err = %v", err)
	}
}

func softDelete(u *users.User) error {
	u.State = users.StateDeleted
	u.DeleteTime = u.UpdateTime.Add(time.Second)
	u.UpdateTime = u.DeleteTime
	return nil
}

func testEmailFreedByDelete(t *testing.T, s UserStore) {
	ctx := context.Background()
	a := create(t, s, NewUser(1))
	deleted, err := s.UpdateUser(ctx, users.DefaultTenant, a.ID, softDelete)
	if err != nil {
		t.Fatalf("UpdateUser(delete) err = %v", err)
	}
	if deleted.State != users.StateDeleted || deleted.DeleteTime.IsZero() {
		t.Errorf("deleted user = %+v, want state DELETED with delete time", deleted)
	}
	b := NewUser(2)
	b.Email = a.Email
	create(t, s, b)
	_, err = s.UpdateUser(ctx, users.DefaultTenant, a.ID, func(u *users.User) error {
		u.State, u.DeleteTime = users.StateActive, time.Time{}
		return nil
	})
	if !errors.Is(err, users.ErrEmailTaken) {
		t.Errorf("undelete with the address taken: err = %v, want ErrEmailTaken", err)
	}
	got, err := s.GetUser(ctx, users.DefaultTenant, a.ID)
	if err != nil || got.State != users.StateDeleted {
		t.Errorf("after failed undelete GetUser = %+v, %v; want still DELETED", got, err)
	}
}

func countAll(t *testing.T, s users.UserStore) int {
	t.Helper()
	all, err := s.ListUsers(context.Background(), users.ListQuery{Tenant: users.DefaultTenant, ShowDeleted: true, Limit: 10000})
	if err != nil {
		t.Fatalf("ListUsers err = %v", err)
	}
	return len(all)
}

func testIdempotency(t *testing.T, s UserStore) {
	ctx := context.Background()
	key := &users.IdempotencyKey{RequestID: "req-1", Fingerprint: []byte("fp-a")}
	first, err := s.CreateUser(ctx, NewUser(1), key)
	if err != nil {
		t.Fatalf("CreateUser err = %v", err)
	}
	// The replay carries a fresh id and times, as a retried request would.
	again, err := s.CreateUser(ctx, NewUser(1), key)
	if err != nil {
		t.Fatalf("replayed CreateUser err = %v", err)
	}
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("replay returned another user (-first +replay):\n%s", diff)
	}
	// The replay returns the user as it is now.
	renamed, err := s.UpdateUser(ctx, users.DefaultTenant, first.ID, func(u *users.User) error { u.DisplayName = "Renamed"; return nil })
	if err != nil {
		t.Fatalf("UpdateUser err = %v", err)
	}
	again, err = s.CreateUser(ctx, NewUser(1), key)
	if err != nil || again.DisplayName != "Renamed" || again.Revision != renamed.Revision {
		t.Errorf("replay after update = %+v, %v; want the updated user", again, err)
	}

	_, err = s.CreateUser(ctx, NewUser(3), &users.IdempotencyKey{RequestID: "req-1", Fingerprint: []byte("fp-b")})
	var inv *users.InvalidError
	if !errors.As(err, &inv) || inv.Reason != users.ReasonRequestIDReused || inv.Violations[0].Field != "request_id" {
		t.Errorf("reused key with another request: err = %v, want InvalidError %s on request_id", err, users.ReasonRequestIDReused)
	}
	if n := countAll(t, s); n != 1 {
		t.Errorf("users stored = %d, want 1", n)
	}
}

func testIdempotencyConcurrent(t *testing.T, s UserStore) {
	key := &users.IdempotencyKey{RequestID: "req-concurrent", Fingerprint: []byte("fp")}
	sameID(t, 8, "CreateUser", "id", func() (string, error) {
		u, err := s.CreateUser(context.Background(), NewUser(1), key)
		if err != nil {
			return "", err
		}
		return u.ID, nil
	})
	if c := countAll(t, s); c != 1 {
		t.Errorf("users stored = %d, want 1", c)
	}
}

// sameID runs create n times at once, as retries of one request racing
// each other, and checks that every run succeeded and returned the id of
// the first. It returns that id. call names the store's method and noun
// what the id is, in the failures.
func sameID(t *testing.T, n int, call, noun string, create func() (string, error)) string {
	t.Helper()
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { ids[i], errs[i] = create() })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("%s #%d err = %v", call, i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Errorf("%s #%d %s = %s, want %s", call, i, noun, ids[i], ids[0])
		}
	}
	return ids[0]
}

func testUpdate(t *testing.T, s UserStore) {
	ctx := context.Background()
	u := create(t, s, NewUser(1))
	later := u.UpdateTime.Add(time.Hour)
	got, err := s.UpdateUser(ctx, users.DefaultTenant, u.ID, func(x *users.User) error {
		x.Email = "new@example.com"
		x.DisplayName = "New"
		x.State = users.StateSuspended
		x.Labels = map[string]string{"a": "b"}
		x.UpdateTime = later
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateUser err = %v", err)
	}
	want := u.Clone()
	want.Email, want.DisplayName, want.State = "new@example.com", "New", users.StateSuspended
	want.Labels = map[string]string{"a": "b"}
	want.UpdateTime = later
	want.Revision = u.Revision + 1
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("UpdateUser returned (-want +got):\n%s", diff)
	}
	stored, err := s.GetUser(ctx, users.DefaultTenant, u.ID)
	if err != nil {
		t.Fatalf("GetUser err = %v", err)
	}
	if diff := cmp.Diff(want, stored); diff != "" {
		t.Errorf("stored after update (-want +got):\n%s", diff)
	}
	// The old address is free again.
	old := NewUser(2)
	old.Email = u.Email
	create(t, s, old)
}

func testUpdateFnError(t *testing.T, s UserStore) {
	u := create(t, s, NewUser(1))
	boom := fmt.Errorf("rule broken: %w", users.ErrWrongState)
	_, err := s.UpdateUser(context.Background(), users.DefaultTenant, u.ID, func(x *users.User) error {
		x.DisplayName = "changed"
		return boom
	})
	if !errors.Is(err, users.ErrWrongState) {
		t.Errorf("UpdateUser err = %v, want the function's error", err)
	}
	got, _ := s.GetUser(context.Background(), users.DefaultTenant, u.ID)
	if diff := cmp.Diff(u, got); diff != "" {
		t.Errorf("user changed although fn failed (-want +got):\n%s", diff)
	}
}

func testUpdateNotFound(t *testing.T, s UserStore) {
	called := false
	_, err := s.UpdateUser(context.Background(), users.DefaultTenant, uuid.Must(uuid.NewV7()).String(), func(*users.User) error {
		called = true
		return nil
	})
	if !errors.Is(err, users.ErrNotFound) || called {
		t.Errorf("UpdateUser(unknown) err = %v, fn called = %v; want ErrNotFound, not called", err, called)
	}
}

func testUpdateEmailConflict(t *testing.T, s UserStore) {
	a := create(t, s, NewUser(1))
	b := create(t, s, NewUser(2))
	_, err := s.UpdateUser(context.Background(), users.DefaultTenant, b.ID, func(u *users.User) error {
		u.Email = strings.ToLower(a.Email)
		return nil
	})
	if !errors.Is(err, users.ErrEmailTaken) {
		t.Errorf("UpdateUser to a taken address: err = %v, want ErrEmailTaken", err)
	}
}

func testBatchGet(t *testing.T, s UserStore) {
	var ids []string
	for i := range 5 {
		ids = append(ids, create(t, s, NewUser(i)).ID)
	}
	missing := uuid.Must(uuid.NewV7()).String()
	got, err := s.BatchGetUsers(context.Background(), users.DefaultTenant, []string{ids[3], missing, ids[0], ids[4]})
	if err != nil {
		t.Fatalf("BatchGetUsers err = %v", err)
	}
	var gotIDs []string
	for _, u := range got {
		gotIDs = append(gotIDs, u.ID)
	}
	slices.Sort(gotIDs)
	want := []string{ids[0], ids[3], ids[4]}
	slices.Sort(want)
	if diff := cmp.Diff(want, gotIDs); diff != "" {
		t.Errorf("BatchGetUsers ids (-want +got):\n%s", diff)
	}
}

// seed stores 23 users: every fourth is suspended, every fifth deleted, and
// emails run in the opposite order of creation, with duplicates of deleted
// users' addresses so email order needs the id tie-break.
func seed(t *testing.T, s users.UserStore) []*users.User {
	var all []*users.User
	for i := range 23 {
		u := NewUser(i)
		u.Email = fmt.Sprintf("u%03d@example.com", 100-i)
		if i%4 == 3 {
			u.State = users.StateSuspended
		}
		all = append(all, create(t, s, u))
	}
	for i, u := range all {
		if i%5 == 4 {
			d, err := s.UpdateUser(context.Background(), users.DefaultTenant, u.ID, softDelete)
			if err != nil {
				t.Fatalf("delete: %v", err)
			}
			all[i] = d
			// Reuse the address of the deleted user.
			dup := NewUser(100 + i)
			dup.Email = strings.ToUpper(u.Email)
			all = append(all, create(t, s, dup))
		}
	}
	return all
}

func sorted(us []*users.User, o users.Order) []*users.User {
	out := slices.Clone(us)
	slices.SortFunc(out, func(a, b *users.User) int {
		c := a.CreateTime.Compare(b.CreateTime)
		if o.Field == users.OrderEmail {
			c = strings.Compare(users.EmailKey(a.Email), users.EmailKey(b.Email))
		}
		if c == 0 {
			c = strings.Compare(a.ID, b.ID)
		}
		if o.Desc {
			c = -c
		}
		return c
	})
	return out
}

func ids(us []*users.User) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.ID
	}
	return out
}

// page reads every page of q, pageSize at a time, the way the service does.
func page(t *testing.T, s users.UserStore, q users.ListQuery, pageSize int) []*users.User {
	t.Helper()
	var out []*users.User
	q.Limit = pageSize
	for range 100 {
		got, err := s.ListUsers(context.Background(), q)
		if err != nil {
			t.Fatalf("ListUsers(%+v) err = %v", q, err)
		}
		out = append(out, got...)
		if len(got) < pageSize {
			return out
		}
		last := got[len(got)-1]
		q.After = &users.Cursor{CreateTime: last.CreateTime, EmailKey: users.EmailKey(last.Email), ID: last.ID}
	}
	t.Fatal("ListUsers did not reach the last page")
	return nil
}

func testListOrders(t *testing.T, s UserStore) {
	all := seed(t, s)
	var live []*users.User
	for _, u := range all {
		if u.State != users.StateDeleted {
			live = append(live, u)
		}
	}
	for _, o := range []users.Order{
		{Field: users.OrderCreateTime}, {Field: users.OrderCreateTime, Desc: true},
		{Field: users.OrderEmail}, {Field: users.OrderEmail, Desc: true},
	} {
		for _, showDeleted := range []bool{false, true} {
			want := live
			if showDeleted {
				want = all
			}
			got := page(t, s, users.ListQuery{Tenant: users.DefaultTenant, Order: o, ShowDeleted: showDeleted}, 4)
			if diff := cmp.Diff(ids(sorted(want, o)), ids(got)); diff != "" {
				t.Errorf("order %+v showDeleted=%v (-want +got):\n%s", o, showDeleted, diff)
			}
		}
	}
	// A full page is returned exactly.
	got, err := s.ListUsers(context.Background(), users.ListQuery{Tenant: users.DefaultTenant, Limit: 5})
	if err != nil || len(got) != 5 {
		t.Errorf("ListUsers(limit 5) = %d users, %v; want 5", len(got), err)
	}
}

func testListFilters(t *testing.T, s UserStore) {
	all := seed(t, s)
	cut := all[10].CreateTime
	tests := []struct {
		name        string
		filter      users.Filter
		showDeleted bool
		keep        func(u *users.User) bool
	}{
		{"state active", users.Filter{{Field: users.FieldState, Op: users.OpEq, Value: users.StateActive}}, false,
			func(u *users.User) bool { return u.State == users.StateActive }},
		{"state not suspended", users.Filter{{Field: users.FieldState, Op: users.OpNe, Value: users.StateSuspended}}, true,
			func(u *users.User) bool { return u.State != users.StateSuspended }},
		{"deleted only", users.Filter{{Field: users.FieldState, Op: users.OpEq, Value: users.StateDeleted}}, true,
			func(u *users.User) bool { return u.State == users.StateDeleted }},
		{"deleted hidden", users.Filter{{Field: users.FieldState, Op: users.OpEq, Value: users.StateDeleted}}, false,
			func(u *users.User) bool { return false }},
		{"email", users.Filter{{Field: users.FieldEmail, Op: users.OpEq, Value: "u095@example.com"}}, true,
			func(u *users.User) bool { return users.EmailKey(u.Email) == "u095@example.com" }},
		{"display name", users.Filter{{Field: users.FieldDisplayName, Op: users.OpEq, Value: "User 7"}}, false,
			func(u *users.User) bool { return u.DisplayName == "User 7" }},
		{"created after", users.Filter{{Field: users.FieldCreateTime, Op: users.OpGt, Value: cut}}, false,
			func(u *users.User) bool { return u.State != users.StateDeleted && u.CreateTime.After(cut) }},
		{"created at or before", users.Filter{{Field: users.FieldCreateTime, Op: users.OpLe, Value: cut}}, true,
			func(u *users.User) bool { return !u.CreateTime.After(cut) }},
		{"updated before", users.Filter{{Field: users.FieldUpdateTime, Op: users.OpLt, Value: cut}}, true,
			func(u *users.User) bool { return u.UpdateTime.Before(cut) }},
		{"and", users.Filter{
			{Field: users.FieldState, Op: users.OpEq, Value: users.StateActive},
			{Field: users.FieldCreateTime, Op: users.OpGe, Value: cut},
			{Field: users.FieldCreateTime, Op: users.OpLt, Value: cut.Add(8 * time.Minute)},
		}, false, func(u *users.User) bool {
			return u.State == users.StateActive && !u.CreateTime.Before(cut) && u.CreateTime.Before(cut.Add(8*time.Minute))
		}},
	}
	for _, tt := range tests {
		var want []*users.User
		for _, u := range all {
			if tt.keep(u) {
				want = append(want, u)
			}
		}
		o := users.Order{Field: users.OrderEmail, Desc: true}
		got := page(t, s, users.ListQuery{Tenant: users.DefaultTenant, Filter: tt.filter, Order: o, ShowDeleted: tt.showDeleted}, 3)
		if diff := cmp.Diff(ids(sorted(want, o)), ids(got)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}
}

func testPurgeDeleted(t *testing.T, s UserStore) {
	ctx := context.Background()
	cutoff := base.Add(24 * time.Hour)
	deleteAt := func(u *users.User, at time.Time) {
		t.Helper()
		_, err := s.UpdateUser(ctx, users.DefaultTenant, u.ID, func(x *users.User) error {
			x.State, x.DeleteTime, x.UpdateTime = users.StateDeleted, at, at
			return nil
		})
		if err != nil {
			t.Fatalf("UpdateUser(delete) err = %v", err)
		}
	}
	purgedKey := &users.IdempotencyKey{RequestID: "req-purged", Fingerprint: []byte("fp")}
	liveKey := &users.IdempotencyKey{RequestID: "req-live", Fingerprint: []byte("fp")}
	live, err := s.CreateUser(ctx, NewUser(1), liveKey)
	if err != nil {
		t.Fatal(err)
	}
	old, err := s.CreateUser(ctx, NewUser(2), purgedKey)
	if err != nil {
		t.Fatal(err)
	}
	deleteAt(old, cutoff.Add(-3*time.Hour))
	older := create(t, s, NewUser(3))
	deleteAt(older, cutoff.Add(-30*24*time.Hour))
	justBefore := create(t, s, NewUser(4))
	deleteAt(justBefore, cutoff.Add(-time.Microsecond))
	atCutoff := create(t, s, NewUser(5))
	deleteAt(atCutoff, cutoff)
	recent := create(t, s, NewUser(6))
	deleteAt(recent, cutoff.Add(time.Hour))

	for _, step := range []struct{ limit, want int }{{0, 0}, {2, 2}, {2, 1}, {2, 0}} {
		n, err := s.PurgeDeleted(ctx, cutoff, step.limit)
		if err != nil || n != step.want {
			t.Errorf("PurgeDeleted(limit %d) = %d, %v; want %d", step.limit, n, err, step.want)
		}
	}
	for _, u := range []*users.User{old, older, justBefore} {
		if _, err := s.GetUser(ctx, users.DefaultTenant, u.ID); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("user %s deleted before the cutoff: GetUser err = %v, want ErrNotFound", u.Email, err)
		}
	}
	for _, u := range []*users.User{live, atCutoff, recent} {
		if _, err := s.GetUser(ctx, users.DefaultTenant, u.ID); err != nil {
			t.Errorf("user %s: GetUser err = %v, want it kept", u.Email, err)
		}
	}

	// The purged user's idempotency key went with it: its request creates
	// a new user. The live user's key still replays.
	again, err := s.CreateUser(ctx, NewUser(2), purgedKey)
	if err != nil || again.ID == old.ID {
		t.Errorf("CreateUser with a purged user's request id = %+v, %v; want a new user", again, err)
	}
	replay, err := s.CreateUser(ctx, NewUser(1), liveKey)
	if err != nil || replay.ID != live.ID {
		t.Errorf("CreateUser with a live user's request id = %+v, %v; want user %s", replay, err, live.ID)
	}
}
