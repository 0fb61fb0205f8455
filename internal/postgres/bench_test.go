package postgres_test

import (
	"context"
	"testing"

	"github.com/usersd/usersd/internal/users/userstest"
)

// BenchmarkReads: see userstest.BenchmarkReads; the same runs on SQLite.
func BenchmarkReads(b *testing.B) {
	s, _ := newStoreWithJobs(b)
	userstest.BenchmarkReads(b, s)
}

// BenchmarkGroupMembers: see userstest.BenchmarkGroupMembers; the same
// runs on SQLite.
func BenchmarkGroupMembers(b *testing.B) {
	s, _ := newStoreWithJobs(b)
	userstest.BenchmarkGroupMembers(b, s)
}

// BenchmarkCreateUser measures one insert without an idempotency key, as
// the benchmark harness (bench/) creates users; BenchmarkStore has the
// insert with a key.
func BenchmarkCreateUser(b *testing.B) {
	s, _ := newStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := s.CreateUser(ctx, userstest.NewUser(i), nil); err != nil {
			b.Fatal(err)
		}
	}
}
