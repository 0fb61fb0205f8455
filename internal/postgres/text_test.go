package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/usersd/usersd/internal/postgres"
	"github.com/usersd/usersd/internal/postgres/pgtest"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

// TestUnstorableText calls the store directly, past the domain's
// validation, with values that Postgres cannot store: each is refused
// with users.ErrInvalid (INVALID_ARGUMENT, not INTERNAL), nothing is
// stored, and the connection serves the next statement. Values that look
// alike but can be stored are stored.
func TestUnstorableText(t *testing.T) {
	ctx := context.Background()
	// One connection: each statement runs on the one that refused the one
	// before.
	dsn := pgtest.NewMigratedDatabase(t)
	if strings.Contains(dsn, "?") {
		dsn += "&pool_max_conns=1"
	} else {
		dsn += "?pool_max_conns=1"
	}
	pool, err := postgres.NewPool(ctx, dsn, nil)
	if err != nil {
		t.Fatalf("NewPool err = %v", err)
	}
	t.Cleanup(pool.Close)
	s := postgres.NewStore(pool)
	existing, err := s.CreateUser(ctx, userstest.NewUser(0), nil)
	if err != nil {
		t.Fatal(err)
	}
	hook, err := s.CreateWebhook(ctx, userstest.NewWebhook(0))
	if err != nil {
		t.Fatal(err)
	}

	user := func(edit func(u *users.User)) *users.User {
		u := userstest.NewUser(1)
		edit(u)
		return u
	}
	refused := []struct {
		name string
		call func() error
	}{
		{"display name NUL", func() error {
			_, err := s.CreateUser(ctx, user(func(u *users.User) { u.DisplayName = "\x00nul" }), nil)
			return err
		}},
		{"email not UTF-8", func() error {
			_, err := s.CreateUser(ctx, user(func(u *users.User) { u.Email = "a\xff@example.com" }), nil)
			return err
		}},
		{"label NUL, cast to jsonb", func() error {
			_, err := s.CreateUser(ctx, user(func(u *users.User) { u.Labels = map[string]string{"team": "a\x00b"} }), nil)
			return err
		}},
		{"update display name NUL", func() error {
			_, err := s.UpdateUser(ctx, users.DefaultTenant, existing.ID, func(u *users.User) error { u.DisplayName = "x\x00"; return nil })
			return err
		}},
		{"update label NUL", func() error {
			_, err := s.UpdateUser(ctx, users.DefaultTenant, existing.ID, func(u *users.User) error { u.Labels = map[string]string{"k": "\x00"}; return nil })
			return err
		}},
		{"filter NUL", func() error {
			_, err := s.ListUsers(ctx, users.ListQuery{Tenant: users.DefaultTenant, Filter: users.Filter{{Field: users.FieldDisplayName, Op: users.OpEq, Value: "\x00"}}, Limit: 10})
			return err
		}},
		{"webhook url NUL", func() error {
			w := userstest.NewWebhook(1)
			w.URL += "\x00"
			_, err := s.CreateWebhook(ctx, w)
			return err
		}},
		{"delivery error NUL", func() error {
			_, err := s.RecordDeliveryAttempts(ctx, hook.ID, []users.DeliveryAttempt{{
				WebhookID: hook.ID, EventID: users.NewID(), EventType: users.EventCreated, Attempt: 1, Error: "\x00", Time: users.Now(),
			}}, 50)
			return err
		}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, users.ErrInvalid) {
				t.Errorf("err = %v, want users.ErrInvalid", err)
			}
			if _, err := s.GetUser(ctx, users.DefaultTenant, existing.ID); err != nil {
				t.Errorf("GetUser after the refusal err = %v", err)
			}
		})
	}

	if got, err := s.GetUser(ctx, users.DefaultTenant, existing.ID); err != nil || got.Revision != existing.Revision {
		t.Errorf("GetUser = revision %v, %v; want %d, unchanged", got, err, existing.Revision)
	}
	if us, err := s.ListUsers(ctx, users.ListQuery{Tenant: users.DefaultTenant, Limit: 10}); err != nil || len(us) != 1 {
		t.Errorf("ListUsers = %d users, %v; want only the first", len(us), err)
	}

	// Storable look-alikes: a backslash escape written out in plain
	// text, an escaped backslash in JSON, other control-free Unicode.
	for _, tt := range []struct {
		name string
		user *users.User
	}{
		{"literal \\u0000 in text", user(func(u *users.User) { u.DisplayName = `\u0000`; u.Email = "lit@example.com" })},
		{"escaped backslash in a label", user(func(u *users.User) { u.Labels = map[string]string{"k": `\u0000`}; u.Email = "esc@example.com" })},
		{"non-ASCII", user(func(u *users.User) { u.DisplayName = "Zoë ☃ 𝄞"; u.Email = "zoe@example.com" })},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.CreateUser(ctx, tt.user, nil)
			if err != nil {
				t.Fatalf("CreateUser err = %v", err)
			}
			if got.DisplayName != tt.user.DisplayName || got.Labels["k"] != tt.user.Labels["k"] {
				t.Errorf("stored %q %v, want %q %v", got.DisplayName, got.Labels, tt.user.DisplayName, tt.user.Labels)
			}
		})
	}
}
