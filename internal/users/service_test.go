package users_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usersd/usersd/internal/attrschema"
	"github.com/usersd/usersd/internal/sqlite"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

// clock is a settable clock for users.Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newService returns a Service with cfg over a migrated SQLite store in a
// fresh directory, closed when the test ends. Its job queue records what
// is enqueued and runs nothing.
func newService(t *testing.T, cfg users.Config) *users.Service {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "users.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("sqlite.Open(%s) err = %v", path, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("db.Close err = %v", err)
		}
	})
	if err := sqlite.Migrate(ctx, db, nil); err != nil {
		t.Fatalf("sqlite.Migrate err = %v", err)
	}
	return users.NewService(sqlite.NewStore(db, sqlite.WithJobs(&userstest.Queue[*sql.Tx]{})), cfg)
}

func newUser(n int) *users.User {
	return &users.User{Email: fmt.Sprintf("user%04d@example.com", n), DisplayName: fmt.Sprintf("User %d", n)}
}

func mustCreate(t *testing.T, svc *users.Service, u *users.User) *users.User {
	t.Helper()
	got, err := svc.Create(context.Background(), users.CreateRequest{User: u})
	if err != nil {
		t.Fatalf("Create(%s) err = %v", u.Email, err)
	}
	return got
}

// checkInvalid fails the test unless err is an *users.InvalidError naming
// field.
func checkInvalid(t *testing.T, call string, err error, field string) {
	t.Helper()
	var inv *users.InvalidError
	if !errors.As(err, &inv) {
		t.Errorf("%s err = %v, want an InvalidError on %s", call, err, field)
		return
	}
	for _, v := range inv.Violations {
		if v.Field == field {
			return
		}
	}
	t.Errorf("%s violations = %+v, want one on %s", call, inv.Violations, field)
}

// TestLifecycleTimes follows one user through create, update, delete and
// undelete with an injected clock and checks every time and revision.
func TestLifecycleTimes(t *testing.T) {
	ctx := context.Background()
	// Not UTC and finer than the microseconds the stores keep.
	clk := &clock{t: time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.FixedZone("CET", 3600))}
	svc := newService(t, users.Config{Now: clk.Now})

	// check compares got with want, the user Get returns with want, and
	// that every time is in UTC.
	check := func(t *testing.T, op string, want, got *users.User) {
		t.Helper()
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", op, diff)
		}
		for name, ts := range map[string]time.Time{"CreateTime": got.CreateTime, "UpdateTime": got.UpdateTime, "DeleteTime": got.DeleteTime} {
			if !ts.IsZero() && ts.Location() != time.UTC {
				t.Errorf("%s %s = %v, want UTC", op, name, ts)
			}
		}
		stored, err := svc.Get(ctx, users.DefaultTenant, got.ID)
		if err != nil {
			t.Fatalf("Get after %s err = %v", op, err)
		}
		if diff := cmp.Diff(want, stored); diff != "" {
			t.Errorf("Get after %s (-want +got):\n%s", op, diff)
		}
	}

	created, err := svc.Create(ctx, users.CreateRequest{User: &users.User{
		Email: "Ada@Example.com", DisplayName: "Ada", Labels: map[string]string{"team": "core"},
	}})
	if err != nil {
		t.Fatalf("Create err = %v", err)
	}
	t0 := time.Date(2026, 3, 4, 4, 6, 7, 123456000, time.UTC)
	want := &users.User{
		Tenant: users.DefaultTenant, ID: created.ID, Email: "Ada@Example.com", DisplayName: "Ada", State: users.StateActive,
		Labels: map[string]string{"team": "core"}, CreateTime: t0, UpdateTime: t0, Revision: 1,
	}
	check(t, "Create", want, created)

	clk.Advance(time.Second + 100) // .123456789 + 100ns truncates to .123456
	updated, err := svc.Update(ctx, users.UpdateRequest{
		User:  &users.User{ID: created.ID, DisplayName: "Ada Lovelace"},
		Paths: []string{"display_name"},
		Etag:  created.Etag(),
	})
	if err != nil {
		t.Fatalf("Update err = %v", err)
	}
	t1 := t0.Add(time.Second)
	want.DisplayName, want.UpdateTime, want.Revision = "Ada Lovelace", t1, 2
	check(t, "Update", want, updated)
	if updated.Etag() == created.Etag() {
		t.Errorf("Update left the etag at %q", updated.Etag())
	}

	clk.Advance(time.Minute)
	deleted, err := svc.Delete(ctx, users.DefaultTenant, created.ID, updated.Etag())
	if err != nil {
		t.Fatalf("Delete err = %v", err)
	}
	t2 := t1.Add(time.Minute)
	want.State, want.DeleteTime, want.UpdateTime, want.Revision = users.StateDeleted, t2, t2, 3
	check(t, "Delete", want, deleted)

	clk.Advance(time.Hour)
	undeleted, err := svc.Undelete(ctx, users.DefaultTenant, created.ID, `W/"`+deleted.Etag()+`"`)
	if err != nil {
		t.Fatalf("Undelete err = %v", err)
	}
	t3 := t2.Add(time.Hour)
	want.State, want.DeleteTime, want.UpdateTime, want.Revision = users.StateActive, time.Time{}, t3, 4
	check(t, "Undelete", want, undeleted)
}

func TestLifecyclePreconditions(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, users.Config{})
	u := mustCreate(t, svc, newUser(1))

	if _, err := svc.Undelete(ctx, users.DefaultTenant, u.ID, ""); !errors.Is(err, users.ErrWrongState) {
		t.Errorf("Undelete(active) err = %v, want ErrWrongState", err)
	}
	if _, err := svc.Delete(ctx, users.DefaultTenant, u.ID, "0123456789abcdef"); !errors.Is(err, users.ErrEtagMismatch) {
		t.Errorf("Delete(stale etag) err = %v, want ErrEtagMismatch", err)
	}
	if _, err := svc.Delete(ctx, users.DefaultTenant, u.ID, ""); err != nil {
		t.Fatalf("Delete err = %v", err)
	}
	if _, err := svc.Delete(ctx, users.DefaultTenant, u.ID, ""); !errors.Is(err, users.ErrWrongState) {
		t.Errorf("Delete(deleted) err = %v, want ErrWrongState", err)
	}
	_, err := svc.Update(ctx, users.UpdateRequest{User: &users.User{ID: u.ID, DisplayName: "X"}})
	if !errors.Is(err, users.ErrWrongState) {
		t.Errorf("Update(deleted) err = %v, want ErrWrongState", err)
	}
}

func TestCreateFingerprint(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, users.Config{})

	const n = 20
	forward := make(map[string]string, n)
	backward := make(map[string]string, n)
	for i := range n {
		forward[fmt.Sprintf("k%02d", i)] = fmt.Sprintf("v%d", i)
	}
	for i := n - 1; i >= 0; i-- {
		backward[fmt.Sprintf("k%02d", i)] = fmt.Sprintf("v%d", i)
	}
	changed := make(map[string]string, n)
	for k, v := range forward {
		changed[k] = v
	}
	changed["k07"] = "other"
	withState := func(s users.State) *users.User {
		return &users.User{Email: "fp@example.com", DisplayName: "FP", State: s, Labels: backward}
	}

	first, err := svc.Create(ctx, users.CreateRequest{
		User:      &users.User{Email: "fp@example.com", DisplayName: "FP", Labels: forward},
		RequestID: "req-fp",
	})
	if err != nil {
		t.Fatalf("Create err = %v", err)
	}

	tests := []struct {
		name       string
		user       *users.User
		wantReplay bool
	}{
		{"labels in another order", &users.User{Email: "fp@example.com", DisplayName: "FP", Labels: backward}, true},
		{"default state spelled out", withState(users.StateActive), true},
		{"another label value", &users.User{Email: "fp@example.com", DisplayName: "FP", Labels: changed}, false},
		{"another state", withState(users.StateSuspended), false},
		{"email in another case", &users.User{Email: "FP@example.com", DisplayName: "FP", Labels: forward}, false},
		{"another display name", &users.User{Email: "fp@example.com", DisplayName: "FP2", Labels: forward}, false},
		{"no labels", &users.User{Email: "fp@example.com", DisplayName: "FP"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := svc.Create(ctx, users.CreateRequest{User: tt.user, RequestID: "req-fp"})
			if tt.wantReplay {
				if err != nil {
					t.Fatalf("Create(replay) err = %v", err)
				}
				if diff := cmp.Diff(first, got); diff != "" {
					t.Errorf("Create(replay) (-first +replay):\n%s", diff)
				}
				return
			}
			var inv *users.InvalidError
			if !errors.As(err, &inv) || inv.Reason != users.ReasonRequestIDReused {
				t.Errorf("Create(other request, same id) = %+v, %v; want an InvalidError with reason %s", got, err, users.ReasonRequestIDReused)
			}
		})
	}
}

func TestCreateLimits(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, users.Config{})

	labels := func(n int) map[string]string {
		m := make(map[string]string, n)
		for i := range n {
			m[fmt.Sprintf("key%02d", i)] = "v"
		}
		return m
	}
	tests := []struct {
		name      string
		user      *users.User
		wantField string // empty: the user is valid
	}{
		{"display name of 200 two-byte characters", &users.User{DisplayName: strings.Repeat("é", 200)}, ""},
		{"display name of 200 four-byte characters", &users.User{DisplayName: strings.Repeat("🙂", 200)}, ""},
		{"display name of 201 two-byte characters", &users.User{DisplayName: strings.Repeat("é", 201)}, "user.display_name"},
		{"display name of 201 ASCII characters", &users.User{DisplayName: strings.Repeat("a", 201)}, "user.display_name"},
		{"64 labels", &users.User{DisplayName: "L", Labels: labels(users.MaxLabels)}, ""},
		{"65 labels", &users.User{DisplayName: "L", Labels: labels(users.MaxLabels + 1)}, "user.labels"},
		{"label key of 63 characters", &users.User{DisplayName: "L", Labels: map[string]string{"k" + strings.Repeat("x", 62): "v"}}, ""},
		{"label key of 64 characters", &users.User{DisplayName: "L", Labels: map[string]string{"k" + strings.Repeat("x", 63): "v"}}, "user.labels"},
		{"label value of 255 bytes", &users.User{DisplayName: "L", Labels: map[string]string{"k": strings.Repeat("v", 255)}}, ""},
		{"label value of 256 bytes", &users.User{DisplayName: "L", Labels: map[string]string{"k": strings.Repeat("v", 256)}}, "user.labels"},
		{"label value of 255 two-byte characters", &users.User{DisplayName: "L", Labels: map[string]string{"k": strings.Repeat("é", 255)}}, ""},
		{"label value of 256 two-byte characters", &users.User{DisplayName: "L", Labels: map[string]string{"k": strings.Repeat("é", 256)}}, "user.labels"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.user.Email = fmt.Sprintf("limit%d@example.com", i)
			got, err := svc.Create(ctx, users.CreateRequest{User: tt.user})
			if tt.wantField != "" {
				checkInvalid(t, "Create", err, tt.wantField)
				return
			}
			if err != nil {
				t.Fatalf("Create err = %v", err)
			}
			if got.DisplayName != tt.user.DisplayName || len(got.Labels) != len(tt.user.Labels) {
				t.Errorf("Create stored display name %q and %d labels, want %q and %d", got.DisplayName, len(got.Labels), tt.user.DisplayName, len(tt.user.Labels))
			}
		})
	}
}

// list returns the result of List(req), failing the test on an error.
func list(t *testing.T, svc *users.Service, req users.ListRequest) *users.ListResult {
	t.Helper()
	res, err := svc.List(context.Background(), req)
	if err != nil {
		t.Fatalf("List(%+v) err = %v", req, err)
	}
	return res
}

func TestListDefaultPageSize(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, users.Config{})
	const total = 60
	var want []string
	for i := range total {
		want = append(want, mustCreate(t, svc, newUser(i)).ID)
	}

	first := list(t, svc, users.ListRequest{})
	if len(first.Users) != users.DefaultPageSize || first.NextPageToken == "" {
		t.Fatalf("List(page size 0) = %d users, token %q; want %d and a token", len(first.Users), first.NextPageToken, users.DefaultPageSize)
	}
	second, err := svc.List(ctx, users.ListRequest{PageToken: first.NextPageToken})
	if err != nil {
		t.Fatalf("List(page 2) err = %v", err)
	}
	if second.NextPageToken != "" {
		t.Errorf("List(page 2) token = %q, want none", second.NextPageToken)
	}
	var got []string
	for _, u := range append(first.Users, second.Users...) {
		got = append(got, u.ID)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("two default pages (-want +got):\n%s", diff)
	}
}

func TestListMaxPageSize(t *testing.T) {
	if testing.Short() {
		t.Skip("creates more than 1000 users; skipped in -short mode")
	}
	svc := newService(t, users.Config{})
	const total = users.MaxPageSize + 1
	for i := range total {
		mustCreate(t, svc, newUser(i))
	}

	tests := []struct {
		name      string
		size      int
		wantUsers int
		wantToken bool
	}{
		{"maximum", users.MaxPageSize, users.MaxPageSize, true},
		{"one above the maximum", users.MaxPageSize + 1, users.MaxPageSize, true},
		{"far above the maximum", 1 << 30, users.MaxPageSize, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := list(t, svc, users.ListRequest{PageSize: tt.size})
			if len(res.Users) != tt.wantUsers || (res.NextPageToken != "") != tt.wantToken {
				t.Errorf("List(page size %d) = %d users, token %q; want %d users, token %v", tt.size, len(res.Users), res.NextPageToken, tt.wantUsers, tt.wantToken)
			}
		})
	}
}

func TestListNegativePageSize(t *testing.T) {
	svc := newService(t, users.Config{})
	_, err := svc.List(context.Background(), users.ListRequest{PageSize: -1})
	checkInvalid(t, "List(page size -1)", err, "page_size")
}

// TestListFilterTimePrecision checks that a filter time finer than the
// microseconds the stores keep is compared exactly, not truncated first.
func TestListFilterTimePrecision(t *testing.T) {
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)
	svc := newService(t, users.Config{Now: (&clock{t: t0}).Now})
	u := mustCreate(t, svc, newUser(1))

	// The user was created 500ns before this instant.
	const after = "2026-03-04T05:06:07.1234565Z"
	tests := []struct {
		filter    string
		wantMatch bool
	}{
		{`create_time < "` + after + `"`, true},
		{`create_time <= "` + after + `"`, true},
		{`create_time = "` + after + `"`, false},
		{`create_time != "` + after + `"`, true},
		{`create_time >= "` + after + `"`, false},
		{`create_time > "` + after + `"`, false},
		{`create_time = "2026-03-04T05:06:07.123456Z"`, true},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			res := list(t, svc, users.ListRequest{Filter: tt.filter})
			if got := len(res.Users) == 1 && res.Users[0].ID == u.ID; got != tt.wantMatch {
				t.Errorf("List(filter %s) matches the user created at %s: %v, want %v", tt.filter, u.CreateTime.Format(time.RFC3339Nano), got, tt.wantMatch)
			}
		})
	}
}

// TestExportSlots: at most Config.MaxExports exports run at once; one
// more is ErrUnavailable (exports_busy) while they run, and goes once a
// slot is free.
func TestExportSlots(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, users.Config{MaxExports: 1})
	if _, err := svc.Create(ctx, users.CreateRequest{User: &users.User{Email: "a@example.com", DisplayName: "A"}}); err != nil {
		t.Fatal(err)
	}
	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		done <- svc.Export(ctx, users.ExportRequest{}, func(*users.User) error {
			close(inside)
			<-release
			return nil
		})
	}()
	<-inside
	err := svc.Export(ctx, users.ExportRequest{}, func(*users.User) error { return nil })
	var se *users.StoreError
	if !errors.Is(err, users.ErrUnavailable) || !errors.As(err, &se) || se.Cause != "exports_busy" {
		t.Errorf("a second export while one runs: %v, want ErrUnavailable (exports_busy)", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the first export: %v", err)
	}
	n := 0
	if err := svc.Export(ctx, users.ExportRequest{}, func(*users.User) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("an export once the slot is free: %d users, %v; want 1, nil", n, err)
	}
}

// noSettings is an attrschema.SettingsReader of tenants without schemas.
type noSettings struct{}

func (noSettings) Settings(context.Context, string) (users.TenantSettings, error) {
	return users.TenantSettings{}, nil
}
func (noSettings) Forget(string) {}

// TestUpdateTenantSettingsKeepsSchema: the mask path "settings" changes
// the limits, and the schema only when the request carries one, so that a
// client that knows no schema keeps the tenant's; the path
// settings.attributes_schema removes it.
func TestUpdateTenantSettingsKeepsSchema(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, users.Config{AttributeSchemas: attrschema.NewTenants(noSettings{}, 0)})
	const schema = `{"type":"object"}`
	if _, err := svc.CreateTenant(ctx, "acme", users.TenantRequest{DisplayName: "Acme", Settings: users.TenantSettings{AttributesSchema: schema}}); err != nil {
		t.Fatal(err)
	}
	got, err := svc.UpdateTenant(ctx, "acme", users.TenantRequest{Settings: users.TenantSettings{MaxUsers: 5}, Paths: []string{"settings"}})
	if err != nil || got.Settings.MaxUsers != 5 || got.Settings.AttributesSchema != schema {
		t.Errorf("UpdateTenant(settings, limits only) = %+v, %v; want max_users 5 and the schema kept", got, err)
	}
	got, err = svc.UpdateTenant(ctx, "acme", users.TenantRequest{Paths: []string{"settings.attributes_schema"}})
	if err != nil || got.Settings.AttributesSchema != "" || got.Settings.MaxUsers != 5 {
		t.Errorf("UpdateTenant(settings.attributes_schema, none) = %+v, %v; want the schema removed, the limit kept", got, err)
	}
}
