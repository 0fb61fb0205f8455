package postgres_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

func TestMalformedIDs(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	u, err := s.CreateUser(ctx, userstest.NewUser(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Stored ids are canonical; other spellings of a UUID match nothing,
	// as on SQLite, where ids are text.
	for _, id := range []string{"", "not-a-uuid", "'; DROP TABLE users; --", strings.ToUpper(u.ID), "{" + u.ID + "}", "urn:uuid:" + u.ID} {
		if _, err := s.GetUser(ctx, users.DefaultTenant, id); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("GetUser(%q) err = %v, want ErrNotFound", id, err)
		}
		_, err := s.UpdateUser(ctx, users.DefaultTenant, id, func(*users.User) error { return errors.New("fn called") })
		if !errors.Is(err, users.ErrNotFound) {
			t.Errorf("UpdateUser(%q) err = %v, want ErrNotFound", id, err)
		}
	}
	got, err := s.BatchGetUsers(ctx, users.DefaultTenant, []string{"not-a-uuid", u.ID, strings.ToUpper(u.ID), u.ID})
	if err != nil || len(got) != 1 || got[0].ID != u.ID {
		t.Errorf("BatchGetUsers = %v, %v; want just %s", got, err, u.ID)
	}
	got, err = s.BatchGetUsers(ctx, users.DefaultTenant, []string{"x"})
	if err != nil || len(got) != 0 {
		t.Errorf("BatchGetUsers(no valid id) = %v, %v; want none", got, err)
	}
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	u := userstest.NewUser(1)
	// Times in another zone come back in UTC; an empty labels map comes
	// back nil.
	u.CreateTime = u.CreateTime.In(time.FixedZone("X", 5*3600))
	u.Labels = map[string]string{}
	got, err := s.CreateUser(ctx, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := u.Clone()
	want.CreateTime = want.CreateTime.UTC()
	want.Labels = nil
	for _, g := range []*users.User{got, mustGet(t, s, u.ID)} {
		if diff := cmp.Diff(want, g); diff != "" {
			t.Errorf("user (-want +got):\n%s", diff)
		}
		if g.CreateTime.Location() != time.UTC || g.UpdateTime.Location() != time.UTC {
			t.Errorf("times in %v, %v; want UTC", g.CreateTime.Location(), g.UpdateTime.Location())
		}
	}

	// Labels with characters JSON escapes survive.
	labels := map[string]string{"a<b": `"q"&\`, "ü": "\u2028"}
	got, err = s.UpdateUser(ctx, users.DefaultTenant, u.ID, func(x *users.User) error { x.Labels = labels; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(labels, mustGet(t, s, u.ID).Labels); diff != "" || !cmp.Equal(labels, got.Labels) {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	// Clearing them stores '{}' and reads back nil.
	got, err = s.UpdateUser(ctx, users.DefaultTenant, u.ID, func(x *users.User) error { x.Labels = nil; return nil })
	if err != nil || got.Labels != nil || mustGet(t, s, u.ID).Labels != nil {
		t.Errorf("cleared labels = %v, %v; want nil", got.Labels, err)
	}
}

func TestIdempotentCreateEmailTaken(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	a, err := s.CreateUser(ctx, userstest.NewUser(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	key := &users.IdempotencyKey{RequestID: "r", Fingerprint: []byte("f")}
	b := userstest.NewUser(2)
	b.Email = a.Email
	if _, err := s.CreateUser(ctx, b, key); !errors.Is(err, users.ErrEmailTaken) {
		t.Fatalf("CreateUser(taken address, key) err = %v, want ErrEmailTaken", err)
	}
	// The key was not kept: the same request id works for a corrected
	// request.
	c := userstest.NewUser(3)
	got, err := s.CreateUser(ctx, c, &users.IdempotencyKey{RequestID: "r", Fingerprint: []byte("g")})
	if err != nil || got.ID != c.ID {
		t.Errorf("CreateUser(new address, same key) = %v, %v; want user %s", got, err, c.ID)
	}
}

func TestDuplicateID(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	a, err := s.CreateUser(ctx, userstest.NewUser(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	b := userstest.NewUser(2)
	b.ID = a.ID
	if _, err := s.CreateUser(ctx, b, nil); !errors.Is(err, users.ErrIDTaken) {
		t.Errorf("CreateUser(taken id) err = %v, want ErrIDTaken", err)
	}
}

func mustGet(t testing.TB, s users.Store, id string) *users.User {
	t.Helper()
	u, err := s.GetUser(context.Background(), users.DefaultTenant, id)
	if err != nil {
		t.Fatalf("GetUser(%s) err = %v", id, err)
	}
	return u
}

// TestUpdateCancelledWhileLocked checks that a cancelled context stops an
// UpdateUser waiting for a row lock on the server too, not only in the
// client.
func TestUpdateCancelledWhileLocked(t *testing.T) {
	ctx := context.Background()
	s, dsn := newStore(t)
	u, err := s.CreateUser(ctx, userstest.NewUser(1), nil)
	if err != nil {
		t.Fatal(err)
	}

	locker, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(ctx)
	var lockerPID uint32
	if err := locker.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&lockerPID); err != nil {
		t.Fatal(err)
	}
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT 1 FROM users WHERE id = $1 FOR UPDATE", u.ID); err != nil {
		t.Fatal(err)
	}

	monitor, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer monitor.Close(ctx)
	// waiting counts the backends of the test database, other than the
	// locker's and the monitor's, that run a statement or wait for a lock.
	waiting := func() int {
		t.Helper()
		var n int
		err := monitor.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> $1 AND pid <> pg_backend_pid()
			AND (state = 'active' OR wait_event_type = 'Lock')`, lockerPID).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	uctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = s.UpdateUser(uctx, users.DefaultTenant, u.ID, func(x *users.User) error { x.DisplayName = "late"; return nil })
	elapsed := time.Since(start)
	if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("UpdateUser while locked: err = %v, want the context's error", err)
	}
	if elapsed > time.Second {
		t.Errorf("UpdateUser returned after %v, want within 1s of the start", elapsed)
	}

	deadline := time.Now().Add(time.Second)
	for n := waiting(); n > 0; n = waiting() {
		if time.Now().After(deadline) {
			t.Fatalf("%d backends still run or wait 1s after UpdateUser returned", n)
		}
		time.Sleep(20 * time.Millisecond)
	}

	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, u.ID); got.DisplayName != u.DisplayName || got.Revision != u.Revision {
		t.Errorf("after the cancelled update: %+v, want unchanged", got)
	}
	// The store still works.
	if _, err := s.UpdateUser(ctx, users.DefaultTenant, u.ID, func(x *users.User) error { x.DisplayName = "now"; return nil }); err != nil {
		t.Errorf("UpdateUser after release: %v", err)
	}
}

// TestListMatchesGet checks that ListUsers and BatchGetUsers read every
// column as GetUser does, across rows that differ in NULLs and labels.
func TestListMatchesGet(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	var want []*users.User
	for i := range 4 {
		u := userstest.NewUser(i)
		if i%2 == 0 {
			u.Labels = map[string]string{"n": strings.Repeat("x", i)}
		}
		u, err := s.CreateUser(ctx, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			u, err = s.UpdateUser(ctx, users.DefaultTenant, u.ID, func(x *users.User) error {
				x.State, x.DeleteTime = users.StateDeleted, x.UpdateTime
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		want = append(want, u)
	}
	got, err := s.ListUsers(ctx, users.ListQuery{Tenant: users.DefaultTenant, ShowDeleted: true, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListUsers (-want +got):\n%s", diff)
	}
	got, err = s.BatchGetUsers(ctx, users.DefaultTenant, userIDs(want))
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b *users.User) int { return a.CreateTime.Compare(b.CreateTime) })
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("BatchGetUsers (-want +got):\n%s", diff)
	}
}

func userIDs(us []*users.User) []string {
	ids := make([]string, len(us))
	for i, u := range us {
		ids[i] = u.ID
	}
	return ids
}

func BenchmarkStore(b *testing.B) {
	ctx := context.Background()
	s, _ := newStore(b)
	var ids []string
	for i := range 200 {
		u := userstest.NewUser(i)
		u.Labels = map[string]string{"team": "core"}
		if _, err := s.CreateUser(ctx, u, nil); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	b.Run("GetUser", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := s.GetUser(ctx, users.DefaultTenant, ids[i%len(ids)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("BatchGetUsers10", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.BatchGetUsers(ctx, users.DefaultTenant, ids[:10]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ListUsers50", func(b *testing.B) {
		q := users.ListQuery{Tenant: users.DefaultTenant,
			Filter: users.Filter{{Field: users.FieldState, Op: users.OpEq, Value: users.StateActive}},
			Order:  users.Order{Field: users.OrderEmail},
			Limit:  50,
		}
		for b.Loop() {
			if _, err := s.ListUsers(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("UpdateUser", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			_, err := s.UpdateUser(ctx, users.DefaultTenant, ids[i%len(ids)], func(u *users.User) error {
				u.DisplayName = "x"
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CreateUserWithKey", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			u := userstest.NewUser(1000 + i)
			key := &users.IdempotencyKey{RequestID: u.ID, Fingerprint: []byte("f")}
			if _, err := s.CreateUser(ctx, u, key); err != nil {
				b.Fatal(err)
			}
		}
	})
}
