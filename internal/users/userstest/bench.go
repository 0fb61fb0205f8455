package userstest

import (
	"context"
	"fmt"
	"testing"

	"github.com/usersd/usersd/internal/users"
)

// benchUsers is how many users the read benchmarks store: enough for a
// page deep in the list and a batch of 100 distinct ids.
const benchUsers = 2000

// seedImported stores n users through imports of 500-row chunks, as usersd's bulk
// import does, and returns them in import order.
func seedImported(b *testing.B, s ImportStore, n int) []*users.User {
	b.Helper()
	ctx := context.Background()
	var out []*users.User
	for i := 0; len(out) < n; i++ {
		op, chunks := NewImport(fmt.Sprint("seed-", i), min(500, n-len(out)))
		if _, err := s.CreateImport(ctx, op, users.IdempotencyKey{RequestID: op.RequestID}, chunks); err != nil {
			b.Fatal(err)
		}
		rows := ImportedUsers(chunks[0])
		if err := s.ImportChunk(ctx, op.ID, 0, rows, nil); err != nil {
			b.Fatal(err)
		}
		for _, r := range rows {
			out = append(out, r.User)
		}
	}
	return out
}

// BenchmarkReads measures a store's reads on benchUsers users: one user by
// id, a batch of 100, and a page of 50 (the service asks for 51) by email,
// first and deep in the list (keyset pagination: the deep page should cost
// the same). s must be empty, with a job queue (imports seed it). Each
// store's BenchmarkReads calls it.
func BenchmarkReads(b *testing.B, s ImportStore) {
	ctx := context.Background()
	us := seedImported(b, s, benchUsers)

	b.Run("GetUser", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := s.GetUser(ctx, users.DefaultTenant, us[i%len(us)].ID); err != nil {
				b.Fatal(err)
			}
		}
	})
	ids := make([]string, 100)
	for i := range ids {
		ids[i] = us[i*len(us)/len(ids)].ID
	}
	b.Run("BatchGetUsers-100", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if got, err := s.BatchGetUsers(ctx, users.DefaultTenant, ids); err != nil || len(got) != len(ids) {
				b.Fatal(len(got), err)
			}
		}
	})
	order := users.Order{Field: users.OrderEmail}
	active := users.Filter{{Field: users.FieldState, Op: users.OpEq, Value: users.StateActive}}
	// The cursor of a page about 100 active users before the end.
	all, err := s.ListUsers(ctx, users.ListQuery{Tenant: users.DefaultTenant, Order: order, Filter: active, Limit: benchUsers})
	if err != nil || len(all) < 200 {
		b.Fatal(len(all), err)
	}
	last := all[len(all)-100]
	deep := &users.Cursor{CreateTime: last.CreateTime, EmailKey: users.EmailKey(last.Email), ID: last.ID}
	for _, bc := range []struct {
		name  string
		after *users.Cursor
	}{{"first", nil}, {"deep", deep}} {
		q := users.ListQuery{Tenant: users.DefaultTenant, Order: order, Filter: active, After: bc.after, Limit: 51}
		b.Run("ListUsers/"+bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if got, err := s.ListUsers(ctx, q); err != nil || len(got) != 51 {
					b.Fatal(len(got), err)
				}
			}
		})
	}
}
