package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/usersd/usersd/internal/postgres"
	"github.com/usersd/usersd/internal/postgres/pgtest"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

// newTenant creates the tenant with the limit of users (0: none).
func newTenant(t *testing.T, s *postgres.Store, id string, maxUsers int64) {
	t.Helper()
	now := time.Now()
	_, err := s.CreateTenant(context.Background(), &users.Tenant{
		ID: id, DisplayName: id, State: users.StateActive,
		Settings:   users.TenantSettings{MaxUsers: maxUsers},
		CreateTime: now, UpdateTime: now, Revision: 1,
	})
	if err != nil {
		t.Fatalf("CreateTenant(%s) err = %v", id, err)
	}
}

// userIn is userstest.NewUser in the tenant.
func userIn(tenant string, n int) *users.User {
	u := userstest.NewUser(n)
	u.Tenant = tenant
	return u
}

// TestQuotaLocksOnlyLimitedTenants: while another transaction holds the
// rows of every tenant, CreateUser and an undelete in a tenant without a
// limit go through, since they take no lock on the tenant, and those in a
// tenant with a limit wait for it, since they count under that lock.
func TestQuotaLocksOnlyLimitedTenants(t *testing.T) {
	ctx := context.Background()
	s, dsn := newStore(t)
	pool := newPool(t, dsn)
	newTenant(t, s, "acme", 10)
	gone := make(map[string]*users.User)
	for i, tenant := range []string{users.DefaultTenant, "acme"} {
		u, err := s.CreateUser(ctx, userIn(tenant, i), nil)
		if err != nil {
			t.Fatal(err)
		}
		gone[tenant], err = s.UpdateUser(ctx, tenant, u.ID, func(x *users.User) error {
			x.State, x.DeleteTime = users.StateDeleted, x.UpdateTime
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	undelete := func(x *users.User) error { x.State, x.DeleteTime = users.StateActive, time.Time{}; return nil }

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT FROM tenants FOR UPDATE"); err != nil {
		t.Fatal(err)
	}

	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := s.CreateUser(wctx, userIn(users.DefaultTenant, 10), nil); err != nil {
		t.Errorf("CreateUser(default) while the tenants are locked: %v", err)
	}
	key := &users.IdempotencyKey{RequestID: "r", Fingerprint: []byte("f")}
	if _, err := s.CreateUser(wctx, userIn(users.DefaultTenant, 11), key); err != nil {
		t.Errorf("CreateUser(default, key) while the tenants are locked: %v", err)
	}
	if _, err := s.UpdateUser(wctx, users.DefaultTenant, gone[users.DefaultTenant].ID, undelete); err != nil {
		t.Errorf("UpdateUser(default, undelete) while the tenants are locked: %v", err)
	}

	for name, call := range map[string]func(context.Context) error{
		"CreateUser": func(ctx context.Context) error {
			_, err := s.CreateUser(ctx, userIn("acme", 20), nil)
			return err
		},
		"UpdateUser(undelete)": func(ctx context.Context) error {
			_, err := s.UpdateUser(ctx, "acme", gone["acme"].ID, undelete)
			return err
		},
	} {
		sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err := call(sctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s in a tenant with a limit while it is locked: err = %v, want to wait past the deadline", name, err)
		}
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(wctx, userIn("acme", 20), nil); err != nil {
		t.Errorf("CreateUser(acme) after the lock: %v", err)
	}
	if _, err := s.UpdateUser(wctx, "acme", gone["acme"].ID, undelete); err != nil {
		t.Errorf("UpdateUser(acme, undelete) after the lock: %v", err)
	}
}

// TestMigrateTenantScopes migrates a database with data of every kind from
// before tenants (version 6) to 7, where it is the default tenant's, then
// down, which keeps only the default tenant's data, and up again.
func TestMigrateTenantScopes(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	pool := newPool(t, dsn)
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := postgres.NewMigrationProvider(db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 6); err != nil {
		t.Fatalf("migrate up to 6: %v", err)
	}

	// Version 6's rows, as the previous release wrote them.
	userID, opID, eventID, hookID := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO users (id, email, email_key, display_name, state, create_time, update_time, revision)
			VALUES ($1, 'A@example.com', 'a@example.com', 'A', 'ACTIVE', now(), now(), 1)`, []any{userID}},
		{`INSERT INTO idempotency_keys (request_id, fingerprint, user_id, create_time) VALUES ('req', 'fp', $1, now())`, []any{userID}},
		{`INSERT INTO operations (id, request_id, fingerprint, total, chunks, create_time) VALUES ($1, 'req', 'fp', 1, 1, now())`, []any{opID}},
		{`INSERT INTO operation_chunks (operation_id, chunk, imported, failed, finish_time) VALUES ($1, 0, 1, 0, now())`, []any{opID}},
		{`INSERT INTO events (id, type, user_id, time) VALUES ($1, 'user.created', $2, now())`, []any{eventID, userID}},
		{`INSERT INTO webhooks (id, url, secret, enabled, create_time, update_time) VALUES ($1, 'https://h.example.com', 'whsec_x', true, now(), now())`, []any{hookID}},
	} {
		if _, err := pool.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}

	s := postgres.NewStore(pool)
	// checkDefault checks that the rows of version 6 are the default
	// tenant's.
	checkDefault := func(when string) {
		t.Helper()
		if u, err := s.GetUser(ctx, users.DefaultTenant, userID.String()); err != nil || u.Tenant != users.DefaultTenant {
			t.Errorf("%s: GetUser = %+v, %v; want the user, in the default tenant", when, u, err)
		}
		again := userstest.NewUser(1)
		again.Email = "a@example.com"
		if u, err := s.CreateUser(ctx, again, &users.IdempotencyKey{RequestID: "req", Fingerprint: []byte("fp")}); err != nil || u.ID != userID.String() {
			t.Errorf("%s: CreateUser(replay of req) = %+v, %v; want user %s", when, u, err, userID)
		}
		if op, err := s.GetOperation(ctx, users.DefaultTenant, opID.String()); err != nil || op.Tenant != users.DefaultTenant || op.Imported != 1 {
			t.Errorf("%s: GetOperation = %+v, %v; want the operation, in the default tenant", when, op, err)
		}
		evs, err := s.ListEvents(ctx, users.DefaultTenant, users.EventPos{}, 10)
		if err != nil || len(evs) == 0 || evs[0].ID != eventID.String() || evs[0].Tenant != users.DefaultTenant {
			t.Errorf("%s: ListEvents(default) = %+v, %v; want the event first, in the default tenant", when, evs, err)
		}
		if w, err := s.GetWebhook(ctx, users.DefaultTenant, hookID.String()); err != nil || w.Tenant != users.DefaultTenant || w.AllTenants {
			t.Errorf("%s: GetWebhook = %+v, %v; want the subscription, in the default tenant", when, w, err)
		}
	}

	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("migrate up: %v", err)
	}
	checkDefault("up")
	// Migration 00009 gave the user stored before it a search key.
	search, err := users.ParseSearch("a@example")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.ListUsers(ctx, users.ListQuery{Tenant: users.DefaultTenant, Search: search, Order: users.Order{Field: users.OrderRank}, Limit: 10}); err != nil || len(got) != 1 {
		t.Errorf("up: search for the user stored before profiles = %d users, %v; want 1", len(got), err)
	}
	// Another tenant's rows, which do not survive the way down.
	newTenant(t, s, "acme", 0)
	other := userIn("acme", 2)
	other.Email = "A@example.com" // the default tenant's address, in another tenant
	if _, err := s.CreateUser(ctx, other, &users.IdempotencyKey{RequestID: "req", Fingerprint: []byte("other")}); err != nil {
		t.Fatalf("CreateUser(acme) err = %v", err)
	}
	hook := userstest.NewWebhook(1)
	hook.Tenant = "acme"
	if _, err := s.CreateWebhook(ctx, hook); err != nil {
		t.Fatalf("CreateWebhook(acme) err = %v", err)
	}

	if _, err := p.DownTo(ctx, 6); err != nil {
		t.Fatalf("migrate down to 6: %v", err)
	}
	for table, want := range map[string]int{"users": 1, "idempotency_keys": 1, "operations": 1, "events": 1, "webhooks": 1} {
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != want {
			t.Errorf("down: %d rows in %s, %v; want %d", n, table, err, want)
		}
	}
	var columns int
	err = pool.QueryRow(ctx, "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' AND column_name IN ('tenant_id', 'all_tenants')").Scan(&columns)
	if err != nil || columns != 0 {
		t.Errorf("down: %d tenant columns, %v; want none", columns, err)
	}

	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("migrate up again: %v", err)
	}
	checkDefault("up again")
	if _, err := s.GetUser(ctx, "acme", other.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("up again: GetUser(acme's user) err = %v, want ErrNotFound", err)
	}
}
