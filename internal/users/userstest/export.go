package userstest

// The tests of UserStore.ExportUsers: what an export returns (the
// tenant's users, in order, filtered), what stops it, and that it reads
// one snapshot; and, for each store's own tests, the same on many users,
// with the export's memory measured, and its benchmark.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usersd/usersd/internal/users"
)

// exportTenant is the tenant of TestExportMany and BenchmarkExport.
const exportTenant = "export-many"

// testExport is the part of the suite for ExportUsers. Its subtests share
// the store: each acts in tenants of its own.
func testExport(t *testing.T, s UserStore) {
	for _, tt := range []struct {
		name string
		fn   func(t *testing.T, s UserStore, tenant string)
	}{
		{"TenantOrderDeleted", testExportTenantOrderDeleted},
		{"Filter", testExportFilter},
		{"FnError", testExportFnError},
		{"Cancel", testExportCancel},
		{"TenantNotFound", testExportTenantNotFound},
		{"Snapshot", testExportSnapshot},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tenant := "export-" + slug(tt.name)
			createTenant(t, s, tenant, 0)
			tt.fn(t, s, tenant)
		})
	}
}

// slug is name in lower case, for a tenant id.
func slug(name string) string {
	b := make([]byte, 0, len(name))
	for _, r := range name {
		switch {
		case r >= 'A' && r <= 'Z':
			b = append(b, byte(r-'A'+'a'))
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b = append(b, byte(r))
		}
	}
	return string(b)
}

// exportAll exports q and returns the users fn was called with.
func exportAll(t *testing.T, s users.UserStore, q users.ListQuery) []*users.User {
	t.Helper()
	var got []*users.User
	if err := s.ExportUsers(context.Background(), q, func(u *users.User) error {
		got = append(got, u)
		return nil
	}); err != nil {
		t.Fatalf("ExportUsers(%s) err = %v", q.Tenant, err)
	}
	return got
}

// seedExport stores, in the tenant, users whose create times are out of
// the order of their creation, some of them equal (ties go by id), a
// quarter suspended and every fifth deleted, with labels and profiles
// here and there; and returns them as stored.
func seedExport(t *testing.T, s users.UserStore, tenant string) []*users.User {
	t.Helper()
	ctx := context.Background()
	var all []*users.User
	for i := range 30 {
		u := userIn(tenant, i)
		// 0, 29, 2, 27, …: not the order of creation; i and i+1 of the
		// same pair share a create time.
		n := i
		if i%2 == 1 {
			n = 30 - i
		}
		u.CreateTime = base.Add(time.Duration(n/3) * time.Minute)
		u.UpdateTime = u.CreateTime
		if i%4 == 3 {
			u.State = users.StateSuspended
		}
		if i%3 == 0 {
			u.Labels = map[string]string{"n": fmt.Sprint(i)}
		}
		if i%5 == 2 {
			u.GivenName, u.FamilyName, u.Locale = "Given", fmt.Sprint("Family ", i), "en-GB"
		}
		all = append(all, create(t, s, u))
	}
	for i, u := range all {
		if i%5 == 4 {
			d, err := s.UpdateUser(ctx, tenant, u.ID, softDelete)
			if err != nil {
				t.Fatalf("UpdateUser(delete %s) err = %v", u.ID, err)
			}
			all[i] = d
		}
	}
	return all
}

// live returns the users of us that are not deleted.
func live(us []*users.User) []*users.User {
	return slices.DeleteFunc(slices.Clone(us), func(u *users.User) bool { return u.State == users.StateDeleted })
}

// testExportTenantOrderDeleted: an export returns the tenant's users and
// no other's, by create time then id, the deleted ones only when asked,
// each as GetUser reads it.
func testExportTenantOrderDeleted(t *testing.T, s UserStore, tenant string) {
	all := seedExport(t, s, tenant)
	// The same addresses in another tenant and in the default one.
	other := tenant + "-other"
	createTenant(t, s, other, 0)
	for i := range 5 {
		create(t, s, userIn(other, i))
		create(t, s, userIn(users.DefaultTenant, i))
	}
	for _, showDeleted := range []bool{false, true} {
		want := sorted(all, users.Order{})
		if !showDeleted {
			want = live(want)
		}
		got := exportAll(t, s, users.ListQuery{Tenant: tenant, ShowDeleted: showDeleted})
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ExportUsers(%s, show deleted %t) (-want +got):\n%s", tenant, showDeleted, diff)
		}
	}
	// The order and the query's other fields are not the export's.
	q := users.ListQuery{Tenant: tenant, Order: users.Order{Field: users.OrderEmail, Desc: true}, Limit: 3,
		After: &users.Cursor{CreateTime: base.Add(time.Hour), ID: all[0].ID}}
	if got := exportAll(t, s, q); !slices.Equal(ids(got), ids(live(sorted(all, users.Order{})))) {
		t.Errorf("ExportUsers(%+v) = %v; want every live user by create time, whatever the order, cursor and limit", q, ids(got))
	}
}

// testExportFilter: an export keeps the users that match the filter, as
// ListUsers does.
func testExportFilter(t *testing.T, s UserStore, tenant string) {
	all := seedExport(t, s, tenant)
	cut := base.Add(4 * time.Minute)
	for _, tt := range []struct {
		filter      string
		showDeleted bool
		keep        func(u *users.User) bool
	}{
		{`state = "SUSPENDED"`, false, func(u *users.User) bool { return u.State == users.StateSuspended }},
		{`state != "SUSPENDED"`, true, func(u *users.User) bool { return u.State != users.StateSuspended }},
		{`state = "DELETED"`, false, func(u *users.User) bool { return false }},
		{`state = "DELETED"`, true, func(u *users.User) bool { return u.State == users.StateDeleted }},
		{`display_name = "User 7"`, false, func(u *users.User) bool { return u.DisplayName == "User 7" }},
		{`create_time >= "` + cut.Format(time.RFC3339Nano) + `" AND state = "ACTIVE"`, false, func(u *users.User) bool {
			return !u.CreateTime.Before(cut) && u.State == users.StateActive
		}},
		{`given_name = "Given"`, true, func(u *users.User) bool { return u.GivenName == "Given" }},
	} {
		f, err := users.ParseFilter(tt.filter)
		if err != nil {
			t.Fatalf("ParseFilter(%s) err = %v", tt.filter, err)
		}
		var want []*users.User
		for _, u := range sorted(all, users.Order{}) {
			if tt.keep(u) && (tt.showDeleted || u.State != users.StateDeleted) {
				want = append(want, u)
			}
		}
		got := exportAll(t, s, users.ListQuery{Tenant: tenant, Filter: f, ShowDeleted: tt.showDeleted})
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ExportUsers(%s, show deleted %t) (-want +got):\n%s", tt.filter, tt.showDeleted, diff)
		}
	}
}

var errStop = errors.New("stop the export")

// testExportFnError: an error of fn stops the export, which returns it;
// the store works on.
func testExportFnError(t *testing.T, s UserStore, tenant string) {
	all := live(sorted(seedExport(t, s, tenant), users.Order{}))
	calls := 0
	err := s.ExportUsers(context.Background(), users.ListQuery{Tenant: tenant}, func(u *users.User) error {
		calls++
		if calls == 3 {
			return fmt.Errorf("user %s: %w", u.ID, errStop)
		}
		return nil
	})
	if !errors.Is(err, errStop) || calls != 3 {
		t.Errorf("ExportUsers with fn failing at the 3rd user: err = %v after %d calls; want errStop after 3", err, calls)
	}
	var se *users.StoreError
	if errors.As(err, &se) {
		t.Errorf("ExportUsers err = %v is a *StoreError; fn's error is the caller's", err)
	}
	// Again, on every connection a store might have left in a bad state.
	for i := range 8 {
		if got := exportAll(t, s, users.ListQuery{Tenant: tenant}); len(got) != len(all) {
			t.Fatalf("ExportUsers #%d after a stopped one: %d users, want %d", i, len(got), len(all))
		}
		if _, err := s.GetUser(context.Background(), tenant, all[0].ID); err != nil {
			t.Fatalf("GetUser after a stopped export err = %v", err)
		}
	}
}

// testExportCancel: an export whose context ends stops with the
// context's error; the store works on.
func testExportCancel(t *testing.T, s UserStore, tenant string) {
	all := live(seedExport(t, s, tenant))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	err := s.ExportUsers(ctx, users.ListQuery{Tenant: tenant}, func(*users.User) error {
		calls++
		if calls == 2 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("ExportUsers cancelled at the 2nd user: err = %v after %d calls; want context.Canceled", err, calls)
	}
	if got := exportAll(t, s, users.ListQuery{Tenant: tenant}); len(got) != len(all) {
		t.Errorf("ExportUsers after a cancelled one: %d users, want %d", len(got), len(all))
	}
}

// testExportTenantNotFound: the export of a tenant that does not exist,
// or is deleted, is ErrNotFound, and calls fn for none of its users.
func testExportTenantNotFound(t *testing.T, s UserStore, tenant string) {
	seedExport(t, s, tenant)
	deleteTenant(t, s, tenant, base.Add(time.Hour))
	for _, tn := range []string{tenantNowhere, tenant} {
		calls := 0
		err := s.ExportUsers(context.Background(), users.ListQuery{Tenant: tn, ShowDeleted: true}, func(*users.User) error {
			calls++
			return nil
		})
		if !errors.Is(err, users.ErrNotFound) || calls != 0 {
			t.Errorf("ExportUsers(%s) err = %v after %d calls; want ErrNotFound and none", tn, err, calls)
		}
	}
	undeleteTenant(t, s, tenant)
	if got := exportAll(t, s, users.ListQuery{Tenant: tenant, ShowDeleted: true}); len(got) != 30 {
		t.Errorf("ExportUsers(%s) once undeleted: %d users, want 30", tenant, len(got))
	}
}

// snapshotChanges makes, through the store and while an export runs,
// changes the export must not see: it creates a user created after all
// of us (so that it would come last), renames the last user of us (by
// export order), deletes the one before, and undeletes a deleted one (or
// suspends the first, when none is). It returns the user it created.
func snapshotChanges(ctx context.Context, s users.UserStore, tenant string, us []*users.User) (*users.User, error) {
	nu := userIn(tenant, 10_000)
	nu.Email = "created-during-export@example.com"
	nu.CreateTime = users.Truncate(users.Now().Add(24 * time.Hour))
	nu.UpdateTime = nu.CreateTime
	created, err := s.CreateUser(ctx, nu, nil)
	if err != nil {
		return nil, fmt.Errorf("CreateUser during the export: %w", err)
	}
	last, before := us[len(us)-1], us[len(us)-2]
	if _, err := s.UpdateUser(ctx, tenant, last.ID, func(u *users.User) error {
		u.DisplayName = "Renamed during the export"
		return nil
	}); err != nil {
		return nil, fmt.Errorf("UpdateUser(rename) during the export: %w", err)
	}
	if _, err := s.UpdateUser(ctx, tenant, before.ID, softDelete); err != nil {
		return nil, fmt.Errorf("UpdateUser(delete) during the export: %w", err)
	}
	return created, nil
}

// testExportSnapshot: an export reads one snapshot, taken before fn is
// first called. A user created through the store while the export runs
// (here, within fn's first call, on another connection) is not exported,
// nor are the changes made then; the next export sees them all.
func testExportSnapshot(t *testing.T, s UserStore, tenant string) {
	ctx := context.Background()
	want := live(sorted(seedExport(t, s, tenant), users.Order{}))
	var (
		got     []*users.User
		created *users.User
	)
	err := s.ExportUsers(ctx, users.ListQuery{Tenant: tenant}, func(u *users.User) error {
		if got = append(got, u); len(got) == 1 {
			var err error
			created, err = snapshotChanges(ctx, s, tenant, want)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ExportUsers err = %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ExportUsers with changes made while it ran (-as it began +exported):\n%s", diff)
	}
	after := exportAll(t, s, users.ListQuery{Tenant: tenant})
	if n := len(after); n != len(want) || after[n-1].ID != created.ID || after[n-2].DisplayName != "Renamed during the export" {
		t.Errorf("the next ExportUsers = %d users, last %s; want %d, the renamed user then the one created during the first",
			n, after[n-1].ID, len(want))
	}
}

// TestExportMany is ExportUsers on n users of one tenant, stored by
// imports of 1000 rows: it checks that the export returns each once, in
// order, from one snapshot (changes made through the store after its first
// user, however many statements the store reads them in, are not seen),
// and that the memory it holds does not grow with n: the live heap,
// measured after a collection every n/10 users, must stay within
// maxGrowth bytes of what it was before the export. s must be empty, with
// a job queue (imports seed it). Each store's TestExportMany calls it.
// Under the race detector it exports at most 3000 users, and does not
// measure the heap.
func TestExportMany(t *testing.T, s ImportStore, n int, maxGrowth uint64) {
	ctx := context.Background()
	if RaceEnabled {
		n = min(n, 3000)
	}
	tenant := exportTenant
	createTenant(t, s, tenant, 0)
	seedImports(t, s, tenant, n)
	var want []*users.User
	// The order the export must follow, read a page at a time.
	for q := (users.ListQuery{Tenant: tenant, Limit: 1000}); ; {
		page, err := s.ListUsers(ctx, q)
		if err != nil {
			t.Fatalf("ListUsers err = %v", err)
		}
		want = append(want, page...)
		if len(page) < q.Limit {
			break
		}
		last := page[len(page)-1]
		q.After = &users.Cursor{CreateTime: last.CreateTime, ID: last.ID}
	}
	if len(want) != n {
		t.Fatalf("seeded %d users, want %d", len(want), n)
	}

	var ms runtime.MemStats
	liveHeap := func() uint64 {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := liveHeap()
	var (
		peak    uint64
		got     int
		created *users.User
		wrong   []string
	)
	err := s.ExportUsers(ctx, users.ListQuery{Tenant: tenant}, func(u *users.User) error {
		if got < len(want) && (u.ID != want[got].ID || u.DisplayName != want[got].DisplayName || u.State != want[got].State) {
			wrong = append(wrong, fmt.Sprintf("#%d: %s %q %s, want %s %q %s", got, u.ID, u.DisplayName, u.State,
				want[got].ID, want[got].DisplayName, want[got].State))
		}
		got++
		if got == 1 {
			var err error
			created, err = snapshotChanges(ctx, s, tenant, want)
			return err
		}
		if got%(max(n/10, 1)) == 0 {
			peak = max(peak, liveHeap())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ExportUsers err = %v", err)
	}
	if got != n || len(wrong) > 0 {
		t.Errorf("ExportUsers = %d users, want %d; %d out of place or changed, first %v", got, n, len(wrong), wrong[:min(3, len(wrong))])
	}
	growth := int64(peak) - int64(before)
	t.Logf("%d users exported; live heap %.1f MiB before, at most %.1f MiB during (%+.2f MiB)",
		n, float64(before)/(1<<20), float64(peak)/(1<<20), float64(growth)/(1<<20))
	if growth > int64(maxGrowth) && !RaceEnabled {
		t.Errorf("live heap grew %d bytes during the export of %d users, want at most %d: the export holds users", growth, n, maxGrowth)
	}
	if after, err := s.GetUser(ctx, tenant, created.ID); err != nil || after.ID != created.ID {
		t.Errorf("GetUser(the user created during the export) = %v, %v", after, err)
	}
}

// seedImports stores n users in the tenant by imports of 1000 rows.
func seedImports(tb testing.TB, s ImportStore, tenant string, n int) {
	tb.Helper()
	ctx := context.Background()
	for i, done := 0, 0; done < n; i++ {
		op, chunks := importIn(tenant, fmt.Sprintf("export-seed-%d", i), min(1000, n-done))
		if _, err := s.CreateImport(ctx, op, users.IdempotencyKey{RequestID: op.RequestID}, chunks); err != nil {
			tb.Fatalf("CreateImport err = %v", err)
		}
		if err := s.ImportChunk(ctx, op.ID, 0, ImportedUsers(chunks[0]), nil); err != nil {
			tb.Fatalf("ImportChunk err = %v", err)
		}
		done += len(chunks[0].Rows)
	}
}

// BenchmarkExport measures ExportUsers of a tenant of 20,000 users (a
// third suspended, half with labels), all exported: users/s, and the
// bytes and allocations per user. s must be empty, with a job queue
// (imports seed it). Each store's BenchmarkExport calls it.
func BenchmarkExport(b *testing.B, s ImportStore) {
	const n = 20_000
	ctx := context.Background()
	tenant := exportTenant
	if _, err := s.CreateTenant(ctx, &users.Tenant{ID: tenant, DisplayName: tenant, State: users.StateActive,
		CreateTime: base, UpdateTime: base, Revision: 1}); err != nil {
		b.Fatal(err)
	}
	seedImports(b, s, tenant, n)
	q := users.ListQuery{Tenant: tenant}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for b.Loop() {
		got := 0
		if err := s.ExportUsers(ctx, q, func(*users.User) error { got++; return nil }); err != nil || got != n {
			b.Fatal(got, err)
		}
	}
	runtime.ReadMemStats(&after)
	exported := float64(n) * float64(b.N)
	b.ReportMetric(exported/b.Elapsed().Seconds(), "users/s")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/exported, "B/user")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/exported, "allocs/user")
}
