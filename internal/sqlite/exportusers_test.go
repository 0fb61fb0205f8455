package sqlite_test

import (
	"testing"

	"github.com/usersd/usersd/internal/users/userstest"
)

// TestExportMany exports 20,000 users (see userstest.TestExportMany): in
// order, from one snapshot, with the live heap no more than 4 MiB above
// what it was before.
func TestExportMany(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 20,000 users")
	}
	s, _ := newStoreWithJobs(t)
	userstest.TestExportMany(t, s, 20_000, 4<<20)
}

// BenchmarkExport: see userstest.BenchmarkExport; the same runs on
// Postgres.
func BenchmarkExport(b *testing.B) {
	s, _ := newStoreWithJobs(b)
	userstest.BenchmarkExport(b, s)
}
