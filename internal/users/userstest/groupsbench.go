package userstest

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/usersd/usersd/internal/users"
)

// groupBenchMembers is how many members BenchmarkGroupMembers gives its
// group: USERSD_BENCH_GROUP_MEMBERS, or 2,000, which keeps the one run of
// every benchmark in make test short. The size the API promises to page
// through is 100,000:
//
//	USERSD_BENCH_GROUP_MEMBERS=100000 go test ./internal/sqlite -run '^$' -bench GroupMembers -count 5
func groupBenchMembers() int {
	if n, err := strconv.Atoi(os.Getenv("USERSD_BENCH_GROUP_MEMBERS")); err == nil && n >= 200 {
		return n
	}
	return 2000
}

// BenchmarkGroupMembers measures a page of 100 members of a group of
// groupBenchMembers, first and at the end of the list (keyset pages: the
// deep page should cost the same), and ListUsers filtered by the group.
// s must be empty, with a job queue (imports seed the users). Each store's
// BenchmarkGroupMembers calls it.
func BenchmarkGroupMembers(b *testing.B, s interface {
	ImportStore
	users.GroupStore
}) {
	ctx := context.Background()
	n := groupBenchMembers()
	us := seedImported(b, s, n)
	g, err := s.CreateGroup(ctx, &users.Group{Tenant: users.DefaultTenant, ID: users.NewID(), DisplayName: "everyone",
		CreateTime: users.Now(), UpdateTime: users.Now()})
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, len(us))
	for i, u := range us {
		ids[i] = u.ID
	}
	for i := 0; i < len(ids); i += users.MaxMembersPerCall {
		if _, err := s.AddGroupMembers(ctx, users.DefaultTenant, g.ID, ids[i:min(i+users.MaxMembersPerCall, len(ids))]); err != nil {
			b.Fatal(err)
		}
	}
	all, err := s.ListGroupMembers(ctx, users.DefaultTenant, g.ID, "", n)
	if err != nil || len(all) != n {
		b.Fatal(len(all), err)
	}
	// A page is 100 members and one more, which tells the service there
	// is a next page; the deep page is the last 100.
	for _, bc := range []struct {
		name, after string
		want        int
	}{{"first", "", 101}, {"deep", all[len(all)-101].UserID, 100}} {
		b.Run("ListGroupMembers/"+bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if got, err := s.ListGroupMembers(ctx, users.DefaultTenant, g.ID, bc.after, 101); err != nil || len(got) != bc.want {
					b.Fatal(len(got), err)
				}
			}
		})
	}
	q := users.ListQuery{Tenant: users.DefaultTenant, Limit: 51,
		Filter: users.Filter{{Field: users.FieldGroup, Op: users.OpEq, Value: g.ID}}}
	b.Run("ListUsers/group", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if got, err := s.ListUsers(ctx, q); err != nil || len(got) != 51 {
				b.Fatal(len(got), err)
			}
		}
	})
}
