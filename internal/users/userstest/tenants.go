package userstest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/usersd/usersd/internal/users"
)

// TestTenantStore is the part of the suite for users.TenantStore. newStore
// must return a freshly migrated store, which holds the default tenant
// only, that lives until the test ends.
func TestTenantStore(t *testing.T, newStore func(t *testing.T) users.TenantStore) {
	run(t, withoutJobs(newStore), []test[users.TenantStore]{
		{"TenantDefault", storeOnly(testTenantDefault)},
		{"TenantCreateGet", storeOnly(testTenantCreateGet)},
		{"TenantIDTaken", storeOnly(testTenantIDTaken)},
		{"TenantUpdate", storeOnly(testTenantUpdate)},
		{"TenantUpdateConcurrent", storeOnly(testTenantUpdateConcurrent)},
		{"TenantList", storeOnly(testTenantList)},
	})
}

// NewTenant returns an active tenant that is not stored yet; n makes its id
// and times distinct.
func NewTenant(n int) *users.Tenant {
	ts := base.Add(time.Duration(n) * time.Minute)
	return &users.Tenant{
		ID: fmt.Sprintf("tenant-%03d", n), DisplayName: fmt.Sprintf("Tenant %d", n), State: users.StateActive,
		Settings:   users.TenantSettings{MaxUsers: int64(n), RequestsPerSecond: float64(n) / 2},
		CreateTime: ts, UpdateTime: ts, Revision: 1,
	}
}

func testTenantDefault(t *testing.T, s users.TenantStore) {
	d, err := s.GetTenant(context.Background(), users.DefaultTenant)
	if err != nil {
		t.Fatalf("GetTenant(default) err = %v; a migrated store has the default tenant", err)
	}
	if d.State != users.StateActive || d.Revision != 1 || d.CreateTime.IsZero() || d.Settings != (users.TenantSettings{}) {
		t.Errorf("default tenant = %+v, want active, revision 1, with a create time and no limits", d)
	}
}

func testTenantCreateGet(t *testing.T, s users.TenantStore) {
	ctx := context.Background()
	want := NewTenant(1)
	got, err := s.CreateTenant(ctx, want.Clone())
	if err != nil {
		t.Fatalf("CreateTenant err = %v", err)
	}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("CreateTenant returned (-want +got):\n%s", diff)
	}
	read, err := s.GetTenant(ctx, want.ID)
	if err != nil {
		t.Fatalf("GetTenant err = %v", err)
	}
	if diff := gocmp.Diff(want, read); diff != "" {
		t.Errorf("GetTenant (-want +got):\n%s", diff)
	}
	if _, err := s.GetTenant(ctx, "nobody"); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("GetTenant(unknown) err = %v, want ErrNotFound", err)
	}
}

func testTenantIDTaken(t *testing.T, s users.TenantStore) {
	ctx := context.Background()
	if _, err := s.CreateTenant(ctx, NewTenant(1)); err != nil {
		t.Fatal(err)
	}
	again := NewTenant(2)
	again.ID = NewTenant(1).ID
	if _, err := s.CreateTenant(ctx, again); !errors.Is(err, users.ErrIDTaken) {
		t.Errorf("CreateTenant with a taken id err = %v, want ErrIDTaken", err)
	}
	def := NewTenant(3)
	def.ID = users.DefaultTenant
	if _, err := s.CreateTenant(ctx, def); !errors.Is(err, users.ErrIDTaken) {
		t.Errorf("CreateTenant(default) err = %v, want ErrIDTaken", err)
	}
}

func testTenantUpdate(t *testing.T, s users.TenantStore) {
	ctx := context.Background()
	created, err := s.CreateTenant(ctx, NewTenant(1))
	if err != nil {
		t.Fatal(err)
	}
	deleted := base.Add(time.Hour)
	got, err := s.UpdateTenant(ctx, created.ID, func(tn *users.Tenant) error {
		tn.DisplayName = "Renamed"
		tn.Settings = users.TenantSettings{MaxUsers: 10, RequestsPerSecond: 2.5}
		tn.State, tn.DeleteTime, tn.UpdateTime = users.StateDeleted, deleted, deleted
		tn.ID, tn.CreateTime, tn.Revision = "changed", base, 99 // not the fn's to change
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateTenant err = %v", err)
	}
	want := created.Clone()
	want.DisplayName, want.Settings = "Renamed", users.TenantSettings{MaxUsers: 10, RequestsPerSecond: 2.5}
	want.State, want.DeleteTime, want.UpdateTime, want.Revision = users.StateDeleted, deleted, deleted, 2
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("UpdateTenant returned (-want +got):\n%s", diff)
	}
	if read, err := s.GetTenant(ctx, created.ID); err != nil || gocmp.Diff(want, read) != "" {
		t.Errorf("GetTenant after update = %+v, %v; want %+v", read, err, want)
	}

	boom := errors.New("boom")
	if _, err := s.UpdateTenant(ctx, created.ID, func(*users.Tenant) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("UpdateTenant with a failing fn err = %v, want %v", err, boom)
	}
	if read, _ := s.GetTenant(ctx, created.ID); read == nil || read.Revision != 2 {
		t.Errorf("a failing fn changed the tenant: %+v", read)
	}
	if _, err := s.UpdateTenant(ctx, "nobody", func(*users.Tenant) error { return nil }); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("UpdateTenant(unknown) err = %v, want ErrNotFound", err)
	}
}

// testTenantUpdateConcurrent: updates of one tenant are serialised, so
// none is lost.
func testTenantUpdateConcurrent(t *testing.T, s users.TenantStore) {
	ctx := context.Background()
	created, err := s.CreateTenant(ctx, NewTenant(1))
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := s.UpdateTenant(ctx, created.ID, func(tn *users.Tenant) error {
				tn.Settings.MaxUsers++
				return nil
			}); err != nil && !errors.Is(err, users.ErrContention) {
				t.Errorf("UpdateTenant err = %v", err)
			}
		})
	}
	wg.Wait()
	read, err := s.GetTenant(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := read.Revision - 1; read.Settings.MaxUsers != created.Settings.MaxUsers+got {
		t.Errorf("after %d committed updates max_users = %d, want %d: an update was lost", got, read.Settings.MaxUsers, created.Settings.MaxUsers+got)
	}
}

func testTenantList(t *testing.T, s users.TenantStore) {
	ctx := context.Background()
	all := []string{users.DefaultTenant}
	var live []string
	for n := 1; n <= 7; n++ {
		tn := NewTenant(n)
		if n%3 == 0 {
			tn.State, tn.DeleteTime = users.StateDeleted, tn.CreateTime
		} else {
			live = append(live, tn.ID)
		}
		if _, err := s.CreateTenant(ctx, tn); err != nil {
			t.Fatal(err)
		}
		all = append(all, tn.ID)
	}
	live = append([]string{users.DefaultTenant}, live...)
	slices.Sort(all)
	slices.Sort(live)
	for _, tt := range []struct {
		showDeleted bool
		want        []string
	}{{false, live}, {true, all}} {
		var got []string
		after := ""
		for range 10 {
			page, err := s.ListTenants(ctx, users.TenantQuery{After: after, Limit: 3, ShowDeleted: tt.showDeleted})
			if err != nil {
				t.Fatal(err)
			}
			for _, tn := range page {
				got = append(got, tn.ID)
			}
			if len(page) < 3 {
				break
			}
			after = page[len(page)-1].ID
		}
		if diff := gocmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ListTenants by pages of 3, show deleted %v (-want +got):\n%s", tt.showDeleted, diff)
		}
	}
	if none, err := s.ListTenants(ctx, users.TenantQuery{Limit: 0}); err != nil || len(none) != 0 {
		t.Errorf("ListTenants with limit 0 = %v, %v; want none", none, err)
	}
}
