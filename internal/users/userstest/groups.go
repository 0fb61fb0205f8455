package userstest

// The tests of groups: users.GroupStore, and what users.UserStore does
// with groups (a user that becomes DELETED leaves its groups; the
// FieldGroup filter of ListUsers and CountUsers).

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/users"
)

// GroupStore is what the group tests use: the groups, the users that are
// their members, the feed their changes append to, and the tenants they
// belong to.
type GroupStore interface {
	users.GroupStore
	users.UserStore
	users.EventStore
	users.TenantStore
}

// TestGroupStore is the part of the suite for users.GroupStore, with what
// users.UserStore does with groups. newStore must return an empty,
// migrated store that lives until the test ends.
//
// Its tests run in parallel in tenants of their own (each creates the
// other tenants it needs, named after its own), on a few stores: one for
// the groups, one for their members, one for the races, and one for
// PurgeDeleted, which acts on every tenant of its store.
func TestGroupStore(t *testing.T, newStore func(t *testing.T) GroupStore) {
	run(t, withoutJobs(newStore), []test[GroupStore]{
		{"Groups", storeOnly(func(t *testing.T, s GroupStore) {
			runGroupTests(t, s, []groupTest{
				{"CreateGet", "grp-create", testGroupCreateGet},
				{"CreateConflicts", "grp-conflicts", testGroupCreateConflicts},
				{"NotFound", "grp-not-found", testGroupNotFound},
				{"MissingTenant", "grp-missing", testGroupMissingTenant},
				{"List", "grp-list", testGroupList},
				{"ListFilters", "grp-filters", testGroupListFilters},
				{"ListLiteral", "grp-literal", testGroupListLiteral},
				{"ListOrder", "grp-order", testGroupListOrder},
				{"ListOrderTies", "grp-order-ties", testGroupListOrderTies},
				{"ListOrderCursor", "grp-order-cursor", testGroupListOrderCursor},
				{"Update", "grp-update", testGroupUpdate},
				{"UpdateFnError", "grp-update-fn", testGroupUpdateFnError},
				{"UpdateExternalIDTaken", "grp-update-ext", testGroupUpdateExternalIDTaken},
				{"UpdateEvents", "grp-update-events", testGroupUpdateEvents},
				{"Delete", "grp-delete", testGroupDelete},
				{"DeleteCheck", "grp-delete-check", testGroupDeleteCheck},
				{"Events", "grp-events", testGroupEvents},
				{"Cancelled", "grp-cancelled", testGroupCancelled},
			})
		})},
		{"Members", storeOnly(func(t *testing.T, s GroupStore) {
			runGroupTests(t, s, []groupTest{
				{"Add", "mem-add", testGroupMembersAdd},
				{"Invalid", "mem-invalid", testGroupMembersInvalid},
				{"Remove", "mem-remove", testGroupMembersRemove},
				{"Paging", "mem-paging", testGroupMembersPaging},
				{"UserGroups", "mem-user-groups", testGroupUserGroups},
				{"UserDeleted", "mem-user-deleted", testGroupUserDeleted},
				{"FilterUsers", "mem-filter", testGroupFilterUsers},
			})
		})},
		{"Races", storeOnly(func(t *testing.T, s GroupStore) {
			runGroupTests(t, s, []groupTest{
				{"AddConcurrent", "race-add", testGroupMembersConcurrent},
				{"Churn", "race-churn", testGroupMembersChurn},
				{"AddDelete", "race-add-delete", testGroupAddDeleteRace},
			})
		})},
		{"TenantPurge", storeOnly(testGroupTenantPurge)},
	})
}

// groupTest is a test of groups that runs in a tenant of its own, which it
// is given created and empty.
type groupTest struct {
	name   string
	tenant string
	fn     func(t *testing.T, s GroupStore, tenant string)
}

// runGroupTests runs tests in parallel on the one store s, each in its
// tenant.
func runGroupTests(t *testing.T, s GroupStore, tests []groupTest) {
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			createTenant(t, s, tt.tenant, 0)
			tt.fn(t, s, tt.tenant)
		})
	}
}

// NewGroup returns a group of the default tenant that is not stored yet,
// with a description and no external id; n makes its name and times
// distinct.
func NewGroup(n int) *users.Group {
	ts := base.Add(time.Duration(n) * time.Minute)
	return &users.Group{
		Tenant:      users.DefaultTenant,
		ID:          users.NewID(),
		DisplayName: fmt.Sprintf("Group %d", n),
		Description: fmt.Sprintf("Group number %d", n),
		CreateTime:  ts,
		UpdateTime:  ts,
		Revision:    1,
	}
}

// groupIn is NewGroup(n) in the tenant.
func groupIn(tenant string, n int) *users.Group {
	g := NewGroup(n)
	g.Tenant = tenant
	return g
}

func cloneGroup(g *users.Group) *users.Group {
	c := *g
	return &c
}

// createGroup stores a copy of g and returns what CreateGroup returned.
func createGroup(t *testing.T, s users.GroupStore, g *users.Group) *users.Group {
	t.Helper()
	got, err := s.CreateGroup(context.Background(), cloneGroup(g))
	if err != nil {
		t.Fatalf("CreateGroup(%q in %s) err = %v", g.DisplayName, g.Tenant, err)
	}
	return got
}

func getGroup(t *testing.T, s users.GroupStore, tenant, id string) *users.Group {
	t.Helper()
	got, err := s.GetGroup(context.Background(), tenant, id)
	if err != nil {
		t.Fatalf("GetGroup(%s, %s) err = %v", tenant, id, err)
	}
	return got
}

func addMembers(t *testing.T, s users.GroupStore, tenant, groupID string, userIDs ...string) *users.Group {
	t.Helper()
	g, err := s.AddGroupMembers(context.Background(), tenant, groupID, userIDs)
	if err != nil {
		t.Fatalf("AddGroupMembers(%s, %s, %d users) err = %v", tenant, groupID, len(userIDs), err)
	}
	return g
}

func removeMembers(t *testing.T, s users.GroupStore, tenant, groupID string, userIDs ...string) *users.Group {
	t.Helper()
	g, err := s.RemoveGroupMembers(context.Background(), tenant, groupID, userIDs)
	if err != nil {
		t.Fatalf("RemoveGroupMembers(%s, %s, %d users) err = %v", tenant, groupID, len(userIDs), err)
	}
	return g
}

// makeUsers creates n users of the tenant, userIn(tenant, first+i).
func makeUsers(t *testing.T, s users.UserStore, tenant string, first, n int) []*users.User {
	t.Helper()
	out := make([]*users.User, n)
	for i := range n {
		out[i] = create(t, s, userIn(tenant, first+i))
	}
	return out
}

func groupIDs(gs []*users.Group) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.ID
	}
	return out
}

func memberIDs(ms []users.GroupMember) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.UserID
	}
	return out
}

// idOrder returns the ids sorted: the default order of ListGroups, and the
// order of the other group lists (ids are compared as their canonical
// strings).
func idOrder(ids []string) []string {
	return slices.Sorted(slices.Values(ids))
}

// groupOrders are the orders of ListGroups, as GroupQuery's ByName and
// Desc, with their names.
var groupOrders = []struct {
	name         string
	byName, desc bool
}{
	{"id", false, false},
	{"id desc", false, true},
	{"name", true, false},
	{"name desc", true, true},
}

// inOrder returns q in the order o.
func inOrder(q users.GroupQuery, byName, desc bool) users.GroupQuery {
	q.ByName, q.Desc = byName, desc
	return q
}

// orderGroups returns the ids of gs in the order of ListGroups with byName
// and desc: by id, or by GroupNameKey (compared bytewise) then id, each
// key reversed with desc.
func orderGroups(gs []*users.Group, byName, desc bool) []string {
	sorted := slices.Clone(gs)
	slices.SortFunc(sorted, func(a, b *users.Group) int {
		c := 0
		if byName {
			c = strings.Compare(users.GroupNameKey(a.DisplayName), users.GroupNameKey(b.DisplayName))
		}
		if c == 0 {
			c = strings.Compare(a.ID, b.ID)
		}
		if desc {
			c = -c
		}
		return c
	})
	return groupIDs(sorted)
}

// groupPages reads every page of q, pageSize at a time, the way the
// service does: the cursor is the last group's id and, in name order, its
// GroupNameKey.
func groupPages(t *testing.T, s users.GroupStore, q users.GroupQuery, pageSize int) []*users.Group {
	t.Helper()
	var out []*users.Group
	q.Limit = pageSize
	for range 1000 {
		got, err := s.ListGroups(context.Background(), q)
		if err != nil {
			t.Fatalf("ListGroups(%+v) err = %v", q, err)
		}
		if len(got) > pageSize {
			t.Fatalf("ListGroups(%+v) returned %d groups, more than the limit", q, len(got))
		}
		out = append(out, got...)
		if len(got) < pageSize {
			return out
		}
		last := got[len(got)-1]
		q.After = last.ID
		if q.ByName {
			q.AfterNameKey = users.GroupNameKey(last.DisplayName)
		}
	}
	t.Fatalf("ListGroups(%+v) did not reach the last page", q)
	return nil
}

// memberPages reads every member of the group, pageSize at a time.
func memberPages(t *testing.T, s users.GroupStore, tenant, groupID string, pageSize int) []users.GroupMember {
	t.Helper()
	var out []users.GroupMember
	after := ""
	for range 1000 {
		got, err := s.ListGroupMembers(context.Background(), tenant, groupID, after, pageSize)
		if err != nil {
			t.Fatalf("ListGroupMembers(%s, %s, after %q, %d) err = %v", tenant, groupID, after, pageSize, err)
		}
		if len(got) > pageSize {
			t.Fatalf("ListGroupMembers(limit %d) returned %d members", pageSize, len(got))
		}
		out = append(out, got...)
		if len(got) < pageSize {
			return out
		}
		after = got[len(got)-1].UserID
	}
	t.Fatalf("ListGroupMembers(%s, %s) did not reach the last page", tenant, groupID)
	return nil
}

// members returns the ids of the group's members, read in pages of 100.
func members(t *testing.T, s users.GroupStore, tenant, groupID string) []string {
	t.Helper()
	return memberIDs(memberPages(t, s, tenant, groupID, 100))
}

// userGroupPages reads every group of the user, pageSize at a time.
func userGroupPages(t *testing.T, s users.GroupStore, tenant, userID string, pageSize int) []*users.Group {
	t.Helper()
	var out []*users.Group
	after := ""
	for range 1000 {
		got, err := s.ListUserGroups(context.Background(), tenant, userID, after, pageSize)
		if err != nil {
			t.Fatalf("ListUserGroups(%s, %s, after %q, %d) err = %v", tenant, userID, after, pageSize, err)
		}
		if len(got) > pageSize {
			t.Fatalf("ListUserGroups(limit %d) returned %d groups", pageSize, len(got))
		}
		out = append(out, got...)
		if len(got) < pageSize {
			return out
		}
		after = got[len(got)-1].ID
	}
	t.Fatalf("ListUserGroups(%s, %s) did not reach the last page", tenant, userID)
	return nil
}

// userGroupIDs returns the ids of the user's groups, read in pages of 100.
func userGroupIDs(t *testing.T, s users.GroupStore, tenant, userID string) []string {
	t.Helper()
	return groupIDs(userGroupPages(t, s, tenant, userID, 100))
}

// wantCount fails the test unless the group's MemberCount, as GetGroup
// reads it, is n.
func wantCount(t *testing.T, s users.GroupStore, what string, tenant, groupID string, n int64) {
	t.Helper()
	if g := getGroup(t, s, tenant, groupID); g.MemberCount != n {
		t.Errorf("%s: MemberCount of group %s = %d, want %d", what, groupID, g.MemberCount, n)
	}
}

// feedEnd creates a marker user in the tenant, reads the tenant's feed up
// to its event and returns that event's position: markIn from it returns
// the events of the changes made since.
func feedEnd(t *testing.T, s feed, tenant string) users.EventPos {
	t.Helper()
	m := userIn(tenant, 998)
	m.Email = "end-" + m.ID + "@example.com"
	create(t, s, m)
	evs := readTenantUntil(t, s, tenant, users.EventPos{}, func(ev users.Event) bool { return ev.UserID == m.ID })
	return evs[len(evs)-1].Pos
}

// wantGroupEvent is what a test expects of an event, group fields
// included.
type wantGroupEvent struct {
	Tenant      string
	Type        users.EventType
	UserID      string
	User        *users.User
	GroupID     string
	Group       *users.Group
	Paths       []string
	TraceParent string
}

// groupEv is the event of a change of g, which it carries as given.
func groupEv(typ users.EventType, g *users.Group, paths ...string) wantGroupEvent {
	return wantGroupEvent{Tenant: g.Tenant, Type: typ, GroupID: g.ID, Group: cloneGroup(g), Paths: paths}
}

// memberEv is the event of a membership.
func memberEv(typ users.EventType, tenant, groupID, userID string) wantGroupEvent {
	return wantGroupEvent{Tenant: tenant, Type: typ, UserID: userID, GroupID: groupID}
}

// userEv is the event of a change of u, which it carries.
func userEv(typ users.EventType, u *users.User, paths ...string) wantGroupEvent {
	return wantGroupEvent{Tenant: u.Tenant, Type: typ, UserID: u.ID, User: u, Paths: paths}
}

func (w wantGroupEvent) traced(traceParent string) wantGroupEvent {
	w.TraceParent = traceParent
	return w
}

// summarizeGroupEvents is a readable form of events for failure
// messages: type, group, user and paths.
func summarizeGroupEvents(evs []users.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = fmt.Sprintf("%s group=%s user=%s %v", ev.Type, ev.GroupID, ev.UserID, ev.Paths)
	}
	return out
}

// checkGroupEvents compares evs with want, and checks what every event
// must have: an id that is a UUIDv7, a time in [from, to] in UTC at µs,
// and a position after the previous event's. Empty paths compare as nil.
func checkGroupEvents(t *testing.T, what string, evs []users.Event, want []wantGroupEvent, from, to time.Time) {
	t.Helper()
	want = slices.Clone(want)
	for i := range want {
		if len(want[i].Paths) == 0 {
			want[i].Paths = nil
		}
	}
	got := make([]wantGroupEvent, len(evs))
	for i, ev := range evs {
		got[i] = wantGroupEvent{Tenant: ev.Tenant, Type: ev.Type, UserID: ev.UserID, User: ev.User,
			GroupID: ev.GroupID, Group: ev.Group, Paths: ev.Paths, TraceParent: ev.TraceParent}
		if len(got[i].Paths) == 0 {
			got[i].Paths = nil
		}
		if id, err := uuid.Parse(ev.ID); err != nil || id.Version() != 7 || id.String() != ev.ID {
			t.Errorf("%s: event %d id %q is not a canonical UUIDv7", what, i, ev.ID)
		}
		if ev.Time.Before(from) || ev.Time.After(to) || ev.Time != users.Truncate(ev.Time) {
			t.Errorf("%s: event %d time %v, want in [%v, %v], UTC, in µs", what, i, ev.Time, from, to)
		}
		if i > 0 && !evs[i-1].Pos.Less(ev.Pos) {
			t.Errorf("%s: event %d at %+v is not after event %d at %+v", what, i, ev.Pos, i-1, evs[i-1].Pos)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s: events (-want +got):\n%s\ngot: %v", what, diff, summarizeGroupEvents(evs))
	}
}

// wantNoEvents fails the test if changes made since the position appended
// events to the tenant's feed.
func wantNoEvents(t *testing.T, s feed, what, tenant string, since users.EventPos) {
	t.Helper()
	if extra := markIn(t, s, tenant, since); len(extra) != 0 {
		t.Errorf("%s appended events: %v", what, summarizeGroupEvents(extra))
	}
}

// testGroupCreateGet: CreateGroup stores every field, with MemberCount 0,
// and returns the group as GetGroup reads it, times in UTC at µs.
func testGroupCreateGet(t *testing.T, s GroupStore, tenant string) {
	ctx := context.Background()
	full := groupIn(tenant, 1)
	full.ExternalID = "okta-00g1"
	full.DisplayName = "Équipe Ünïcode 日本 'quoted' \"too\""
	full.Description = `Quotes " and ' and \ and % and _`
	// Two groups without an external id, one without a description.
	plain := groupIn(tenant, 2)
	plain.Description = ""
	other := groupIn(tenant, 3)
	for _, g := range []*users.Group{full, plain, other} {
		got, err := s.CreateGroup(ctx, cloneGroup(g))
		if err != nil {
			t.Fatalf("CreateGroup(%q) err = %v", g.DisplayName, err)
		}
		if diff := cmp.Diff(g, got); diff != "" {
			t.Errorf("CreateGroup(%q) returned (-want +got):\n%s", g.DisplayName, diff)
		}
		read := getGroup(t, s, g.Tenant, g.ID)
		if diff := cmp.Diff(g, read); diff != "" {
			t.Errorf("GetGroup(%q) (-want +got):\n%s", g.DisplayName, diff)
		}
		if read.MemberCount != 0 || read.Etag() != g.Etag() {
			t.Errorf("GetGroup(%q) member count %d, etag %s; want 0, %s", g.DisplayName, read.MemberCount, read.Etag(), g.Etag())
		}
	}

	// Times off the microsecond, in another zone, read back at µs in UTC,
	// from CreateGroup as from GetGroup.
	odd := groupIn(tenant, 4)
	odd.CreateTime = odd.CreateTime.Add(789 * time.Nanosecond).In(time.FixedZone("X", 3600))
	odd.UpdateTime = odd.CreateTime.Add(time.Second + 1)
	got := createGroup(t, s, odd)
	read := getGroup(t, s, odd.Tenant, odd.ID)
	for _, r := range []struct {
		by string
		g  *users.Group
	}{{"CreateGroup", got}, {"GetGroup", read}} {
		for _, f := range []struct {
			field     string
			got, want time.Time
		}{{"CreateTime", r.g.CreateTime, users.Truncate(odd.CreateTime)}, {"UpdateTime", r.g.UpdateTime, users.Truncate(odd.UpdateTime)}} {
			if !f.got.Equal(f.want) || f.got.Location() != time.UTC {
				t.Errorf("%s %s = %v, want %v in UTC", r.by, f.field, f.got, f.want)
			}
		}
	}
	if diff := cmp.Diff(got, read); diff != "" {
		t.Errorf("GetGroup differs from what CreateGroup returned (-returned +read):\n%s", diff)
	}
}

// testGroupCreateConflicts: an external id is unique among the tenant's
// groups (ErrExternalIDTaken), exactly as spelt and in its tenant only; an
// id is unique (ErrIDTaken); display names need not be. A refused create
// stores nothing and appends nothing.
func testGroupCreateConflicts(t *testing.T, s GroupStore, tenant string) {
	ctx := context.Background()
	other := tenant + "-b"
	createTenant(t, s, other, 0)
	from := users.Now()
	a := groupIn(tenant, 1)
	a.ExternalID = "okta-1"
	a = createGroup(t, s, a)

	dup := groupIn(tenant, 2)
	dup.ExternalID = a.ExternalID
	if got, err := s.CreateGroup(ctx, cloneGroup(dup)); !errors.Is(err, users.ErrExternalIDTaken) {
		t.Errorf("CreateGroup(external id taken) = %+v, %v; want ErrExternalIDTaken", got, err)
	}
	if _, err := s.GetGroup(ctx, tenant, dup.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("a group refused for its external id: GetGroup err = %v, want ErrNotFound", err)
	}
	again := groupIn(tenant, 3)
	again.ID = a.ID
	if got, err := s.CreateGroup(ctx, cloneGroup(again)); !errors.Is(err, users.ErrIDTaken) {
		t.Errorf("CreateGroup(id taken) = %+v, %v; want ErrIDTaken", got, err)
	}
	if diff := cmp.Diff(a, getGroup(t, s, tenant, a.ID)); diff != "" {
		t.Errorf("the group whose id a create reused changed (-want +got):\n%s", diff)
	}

	// External ids compare exactly, and each tenant has its own.
	upper := groupIn(tenant, 4)
	upper.ExternalID = strings.ToUpper(a.ExternalID)
	upper = createGroup(t, s, upper)
	inOther := groupIn(other, 1)
	inOther.ExternalID = a.ExternalID
	createGroup(t, s, inOther)
	// Display names need not be unique, in any case.
	twin := groupIn(tenant, 5)
	twin.DisplayName = a.DisplayName
	twin = createGroup(t, s, twin)
	loud := groupIn(tenant, 6)
	loud.DisplayName = strings.ToUpper(a.DisplayName)
	loud = createGroup(t, s, loud)
	if got := groupIDs(groupPages(t, s, users.GroupQuery{Tenant: tenant}, 10)); !slices.Equal(got, idOrder([]string{a.ID, upper.ID, twin.ID, loud.ID})) {
		t.Errorf("ListGroups after the conflicts = %v, want the 4 groups stored", got)
	}
	checkGroupEvents(t, "CreateGroup", markIn(t, s, tenant, users.EventPos{}), []wantGroupEvent{
		groupEv(users.EventGroupCreated, a),
		groupEv(users.EventGroupCreated, upper),
		groupEv(users.EventGroupCreated, twin),
		groupEv(users.EventGroupCreated, loud),
	}, from, users.Now())
}

// testGroupNotFound: an unknown group, or another tenant's, is
// ErrNotFound to every method that names a group, which then calls no
// function of the caller's and changes nothing; ListUserGroups of an
// unknown user, or another tenant's, returns none.
func testGroupNotFound(t *testing.T, s GroupStore, tenant string) {
	ctx := context.Background()
	// A's group and member, B's user; the test's tenant has a user.
	other, third := tenant+"-a", tenant+"-b"
	createTenant(t, s, other, 0)
	createTenant(t, s, third, 0)
	gA := createGroup(t, s, groupIn(other, 1))
	uA := create(t, s, userIn(other, 1))
	uB := create(t, s, userIn(third, 1))
	gA = addMembers(t, s, other, gA.ID, uA.ID)
	u := create(t, s, userIn(tenant, 1))

	for _, c := range []struct {
		name, tenant, id, user string
	}{
		{"unknown id", tenant, users.NewID(), u.ID},
		{"not a uuid", tenant, "not-a-uuid", u.ID},
		{"another tenant's group", third, gA.ID, uB.ID},
		{"another tenant's group, from a third", tenant, gA.ID, u.ID},
	} {
		if got, err := s.GetGroup(ctx, c.tenant, c.id); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("%s: GetGroup = %+v, %v; want ErrNotFound", c.name, got, err)
		}
		called := false
		if _, err := s.UpdateGroup(ctx, c.tenant, c.id, func(g *users.Group) error {
			called = true
			g.DisplayName = "changed"
			return nil
		}); !errors.Is(err, users.ErrNotFound) || called {
			t.Errorf("%s: UpdateGroup err = %v, fn called %v; want ErrNotFound, not called", c.name, err, called)
		}
		called = false
		if _, err := s.DeleteGroup(ctx, c.tenant, c.id, func(*users.Group) error { called = true; return nil }); !errors.Is(err, users.ErrNotFound) || called {
			t.Errorf("%s: DeleteGroup err = %v, check called %v; want ErrNotFound, not called", c.name, err, called)
		}
		if _, err := s.DeleteGroup(ctx, c.tenant, c.id, nil); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("%s: DeleteGroup(nil check) err = %v, want ErrNotFound", c.name, err)
		}
		if _, err := s.AddGroupMembers(ctx, c.tenant, c.id, []string{c.user}); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("%s: AddGroupMembers err = %v, want ErrNotFound", c.name, err)
		}
		if _, err := s.RemoveGroupMembers(ctx, c.tenant, c.id, []string{c.user}); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("%s: RemoveGroupMembers err = %v, want ErrNotFound", c.name, err)
		}
		if got, err := s.ListGroupMembers(ctx, c.tenant, c.id, "", 10); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("%s: ListGroupMembers = %v, %v; want ErrNotFound", c.name, memberIDs(got), err)
		}
	}
	// The group of A is as it was.
	if diff := cmp.Diff(gA, getGroup(t, s, other, gA.ID)); diff != "" {
		t.Errorf("A's group after calls from other tenants (-want +got):\n%s", diff)
	}
	if got := members(t, s, other, gA.ID); !slices.Equal(got, []string{uA.ID}) {
		t.Errorf("members of A's group after calls from other tenants = %v, want [%s]", got, uA.ID)
	}
	// Users that are not the tenant's have no groups in it.
	for _, c := range []struct{ name, tenant, user string }{
		{"unknown user", tenant, users.NewID()},
		{"user without groups", tenant, u.ID},
		{"A's member from B", third, uA.ID},
		{"A's member from a third tenant", tenant, uA.ID},
	} {
		if got, err := s.ListUserGroups(ctx, c.tenant, c.user, "", 10); err != nil || len(got) != 0 {
			t.Errorf("%s: ListUserGroups = %v, %v; want none", c.name, groupIDs(got), err)
		}
	}
	if got := userGroupIDs(t, s, other, uA.ID); !slices.Equal(got, []string{gA.ID}) {
		t.Errorf("ListUserGroups(%s, its member) = %v, want [%s]", other, got, gA.ID)
	}
	for _, tn := range []string{tenant, third} {
		if got := groupPages(t, s, users.GroupQuery{Tenant: tn}, 10); len(got) != 0 {
			t.Errorf("ListGroups(%s) = %v, want none: the only group is A's", tn, groupIDs(got))
		}
	}
}

// testGroupMissingTenant: every method returns ErrNotFound while the
// tenant is deleted or does not exist, and changes nothing; an undeleted
// tenant has its groups and members as they were.
func testGroupMissingTenant(t *testing.T, s GroupStore, tenant string) {
	ctx := context.Background()
	other, nowhere := tenant, tenant+"-nowhere" // deleted, never created
	g := createGroup(t, s, groupIn(other, 1))
	u := create(t, s, userIn(other, 1))
	v := create(t, s, userIn(other, 2))
	g = addMembers(t, s, other, g.ID, u.ID)
	since := feedEnd(t, s, other)
	deleteTenant(t, s, other, base.Add(time.Hour))

	var refused []string
	for _, tenant := range []string{nowhere, other} { // shadows: each tenant in turn
		ng := groupIn(tenant, 2)
		refused = append(refused, ng.ID)
		if got, err := s.CreateGroup(ctx, ng); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("CreateGroup(in %s) = %+v, %v; want ErrNotFound", tenant, got, err)
		}
		if got, err := s.GetGroup(ctx, tenant, g.ID); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("GetGroup(%s) = %+v, %v; want ErrNotFound", tenant, got, err)
		}
		if got, err := s.ListGroups(ctx, users.GroupQuery{Tenant: tenant, Limit: 10}); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("ListGroups(%s) = %v, %v; want ErrNotFound", tenant, groupIDs(got), err)
		}
		called := false
		if _, err := s.UpdateGroup(ctx, tenant, g.ID, func(x *users.Group) error {
			called = true
			x.DisplayName = "changed"
			return nil
		}); !errors.Is(err, users.ErrNotFound) || called {
			t.Errorf("UpdateGroup(%s) err = %v, fn called %v; want ErrNotFound, not called", tenant, err, called)
		}
		called = false
		if _, err := s.DeleteGroup(ctx, tenant, g.ID, func(*users.Group) error { called = true; return nil }); !errors.Is(err, users.ErrNotFound) || called {
			t.Errorf("DeleteGroup(%s) err = %v, check called %v; want ErrNotFound, not called", tenant, err, called)
		}
		if _, err := s.AddGroupMembers(ctx, tenant, g.ID, []string{v.ID}); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("AddGroupMembers(%s) err = %v, want ErrNotFound", tenant, err)
		}
		if _, err := s.RemoveGroupMembers(ctx, tenant, g.ID, []string{u.ID}); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("RemoveGroupMembers(%s) err = %v, want ErrNotFound", tenant, err)
		}
		if got, err := s.ListGroupMembers(ctx, tenant, g.ID, "", 10); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("ListGroupMembers(%s) = %v, %v; want ErrNotFound", tenant, memberIDs(got), err)
		}
		if got, err := s.ListUserGroups(ctx, tenant, u.ID, "", 10); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("ListUserGroups(%s) = %v, %v; want ErrNotFound", tenant, groupIDs(got), err)
		}
	}

	undeleteTenant(t, s, other)
	if diff := cmp.Diff(g, getGroup(t, s, other, g.ID)); diff != "" {
		t.Errorf("group after the tenant is undeleted (-want +got):\n%s", diff)
	}
	if got := members(t, s, other, g.ID); !slices.Equal(got, []string{u.ID}) {
		t.Errorf("members after the tenant is undeleted = %v, want [%s]", got, u.ID)
	}
	for _, id := range refused {
		if _, err := s.GetGroup(ctx, other, id); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("a group refused while its tenant was missing: GetGroup err = %v, want ErrNotFound", err)
		}
	}
	if got := groupPages(t, s, users.GroupQuery{Tenant: other}, 10); !slices.Equal(groupIDs(got), []string{g.ID}) {
		t.Errorf("ListGroups(%s) after the tenant is undeleted = %v, want [%s]", other, groupIDs(got), g.ID)
	}
	wantNoEvents(t, s, "calls while the tenant was missing", other, since)
}

// testGroupList: ListGroups returns the tenant's groups in id order (not
// the order of insertion), a page at a time after the last id.
func testGroupList(t *testing.T, s GroupStore, tenant string) {
	ctx := context.Background()
	other := tenant + "-b"
	createTenant(t, s, other, 0)
	const n = 23
	gs := make([]*users.Group, n)
	for i := range gs {
		gs[i] = groupIn(tenant, i)
	}
	// Insert in an order that is not the order of the ids, and a group of
	// another tenant between them.
	stored := map[string]*users.Group{}
	for k := range n {
		i := (k * 7) % n
		stored[gs[i].ID] = createGroup(t, s, gs[i])
		if k == n/2 {
			createGroup(t, s, groupIn(other, 100))
		}
	}
	want := idOrder(groupIDs(gs))
	for _, size := range []int{1, 4, n, n + 1, 100} {
		got := groupPages(t, s, users.GroupQuery{Tenant: tenant}, size)
		if diff := cmp.Diff(want, groupIDs(got)); diff != "" {
			t.Errorf("ListGroups by pages of %d (-want +got):\n%s", size, diff)
		}
		if size == 100 {
			for _, g := range got {
				if diff := cmp.Diff(stored[g.ID], g); diff != "" {
					t.Errorf("ListGroups returned group %s unlike CreateGroup (-created +listed):\n%s", g.ID, diff)
				}
			}
		}
	}
	for _, c := range []struct {
		name  string
		q     users.GroupQuery
		wantN []string
	}{
		{"a full first page", users.GroupQuery{Limit: 5}, want[:5]},
		{"after the tenth", users.GroupQuery{After: want[9], Limit: 3}, want[10:13]},
		{"after the last but one", users.GroupQuery{After: want[n-2], Limit: 3}, want[n-1:]},
		{"after the last", users.GroupQuery{After: want[n-1], Limit: 3}, nil},
		{"limit 0", users.GroupQuery{Limit: 0}, nil},
	} {
		c.q.Tenant = tenant
		got, err := s.ListGroups(ctx, c.q)
		if err != nil {
			t.Errorf("ListGroups(%s) err = %v", c.name, err)
			continue
		}
		if !slices.Equal(groupIDs(got), c.wantN) {
			t.Errorf("ListGroups(%s) = %v, want %v", c.name, groupIDs(got), c.wantN)
		}
	}
}

// filterGroups is ListGroups' contract: the groups of gs that q keeps, in
// q's order (q.After and q.Limit aside).
func filterGroups(gs []*users.Group, q users.GroupQuery) []string {
	var kept []*users.Group
	for _, g := range gs {
		key := users.GroupNameKey(g.DisplayName)
		if g.Tenant != q.Tenant ||
			(q.NameKey != "" && key != q.NameKey) ||
			(q.ExternalID != "" && g.ExternalID != q.ExternalID) ||
			(q.Contains != "" && !strings.Contains(key, q.Contains)) {
			continue
		}
		kept = append(kept, g)
	}
	return orderGroups(kept, q.ByName, q.Desc)
}

// checkGroupQueries lists each query in every order, in pages of 2 and in
// one page, and compares with filterGroups; wantN is how many groups each
// query must find, so that the model cannot hide a query that tests
// nothing.
func checkGroupQueries(t *testing.T, s users.GroupStore, all []*users.Group, queries []users.GroupQuery, wantN []int) {
	t.Helper()
	for i, q := range queries {
		for _, o := range groupOrders {
			q := inOrder(q, o.byName, o.desc)
			want := filterGroups(all, q)
			if len(want) != wantN[i] {
				t.Fatalf("the test's own model keeps %d groups for %+v, the test expects %d", len(want), q, wantN[i])
			}
			for _, size := range []int{2, 1000} {
				got := groupIDs(groupPages(t, s, q, size))
				if diff := cmp.Diff(want, got, cmpEmptyStrings); diff != "" {
					t.Errorf("ListGroups(%+v) in %s order by pages of %d (-want +got):\n%s", q, o.name, size, diff)
				}
			}
		}
	}
}

// cmpEmptyStrings compares nil and empty string slices as equal.
var cmpEmptyStrings = cmp.FilterValues(func(a, b []string) bool { return len(a) == 0 && len(b) == 0 }, cmp.Ignore())

// testGroupListFilters: NameKey keeps the groups whose folded name equals
// it, ExternalID the one with that external id (exactly), Contains those
// whose folded name holds it; they combine, and keep to the tenant.
func testGroupListFilters(t *testing.T, s GroupStore, tenant string) {
	other, third := tenant+"-b", tenant+"-c" // third has no groups
	createTenant(t, s, other, 0)
	createTenant(t, s, third, 0)
	var all []*users.Group
	add := func(tn, name, externalID string) {
		g := groupIn(tn, len(all))
		g.DisplayName, g.ExternalID = name, externalID
		all = append(all, createGroup(t, s, g))
	}
	add(tenant, "Engineering", "e-1")
	add(tenant, "engineering", "")
	add(tenant, "Éngïneering", "E-1")
	add(tenant, "ENGINEERING Ops", "e-2")
	add(tenant, "Platform Engineering", "")
	add(tenant, "Sales", "sales")
	add(tenant, "Straße", "")
	add(tenant, "Eng", "")
	add(other, "Engineering", "e-1")
	add(other, "Sales", "")
	d := tenant
	checkGroupQueries(t, s, all, []users.GroupQuery{
		{Tenant: d},
		{Tenant: d, NameKey: users.GroupNameKey("Engineering")},
		{Tenant: d, NameKey: users.GroupNameKey("ENGINÉERING")},
		{Tenant: d, NameKey: users.GroupNameKey("Eng")},
		{Tenant: d, NameKey: users.GroupNameKey("STRASSE")},
		{Tenant: d, NameKey: users.GroupNameKey("Engineer")},
		{Tenant: d, ExternalID: "e-1"},
		{Tenant: d, ExternalID: "E-1"},
		{Tenant: d, ExternalID: "e-"},
		{Tenant: d, Contains: "engineering"},
		{Tenant: d, Contains: "eng"},
		{Tenant: d, Contains: "ering op"},
		{Tenant: d, Contains: users.GroupNameKey("straSSe")},
		{Tenant: d, Contains: "platform engineering ops"},
		{Tenant: d, NameKey: users.GroupNameKey("Engineering"), Contains: "ops"},
		{Tenant: d, NameKey: users.GroupNameKey("Engineering"), ExternalID: "E-1"},
		{Tenant: d, Contains: "eng", ExternalID: "e-2"},
		{Tenant: d, Contains: "sales", ExternalID: "e-1"},
		{Tenant: other},
		{Tenant: other, Contains: "eng"},
		{Tenant: other, ExternalID: "e-1"},
		{Tenant: other, NameKey: "sales"},
		{Tenant: third},
		{Tenant: third, Contains: "eng"},
	}, []int{8, 3, 3, 1, 1, 0, 1, 1, 0, 5, 6, 1, 1, 0, 0, 1, 1, 0, 2, 1, 1, 1, 0, 0})
}

// testGroupListOrder: ListGroups in every order (id or name, each
// ascending or descending), a page at a time, returns every group of the
// tenant once, in that order, whatever the page size: names compare as
// their GroupNameKey (folded: "Straße" is "strasse", "Éngineering"
// "engineering"), bytewise, and a name that folds to nothing comes first;
// groups of equal keys follow their ids, in the direction of the order.
// The groups are inserted in neither order, with another tenant's between
// them.
func testGroupListOrder(t *testing.T, s GroupStore, tenant string) {
	other := tenant + "-b"
	createTenant(t, s, other, 0)
	names := []string{
		"Sales", "Engineering", "engineering", "Zeta", "alpha", "Éngineering", "ENGINEERING", "Alpha", "Ålpha",
		"beta", "Straße", "strasse", "\u0301", "Ops", "Engineering Ops", "Eng", "Engineering", "zeta", "10 Ops", "Ω",
	}
	n := len(names)
	gs := make([]*users.Group, n)
	for i, name := range names {
		gs[i] = groupIn(tenant, i)
		gs[i].DisplayName = name
	}
	var all []*users.Group
	for k := range n {
		i := (k * 7) % n // not the order of the ids, nor of the names
		all = append(all, createGroup(t, s, gs[i]))
		if k%5 == 2 {
			g := groupIn(other, 100+k)
			g.DisplayName = names[(k*3)%n]
			all = append(all, createGroup(t, s, g))
		}
	}
	if key := users.GroupNameKey("\u0301"); key != "" {
		t.Fatalf("GroupNameKey(U+0301) = %q, the test wants a name that folds to nothing", key)
	}
	for _, o := range groupOrders {
		q := inOrder(users.GroupQuery{Tenant: tenant}, o.byName, o.desc)
		want := filterGroups(all, q)
		if len(want) != n {
			t.Fatalf("the test's own model keeps %d groups, want %d", len(want), n)
		}
		for _, size := range []int{1, 2, 3, 7, n - 1, n, n + 1, 1000} {
			got := groupIDs(groupPages(t, s, q, size))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("ListGroups in %s order by pages of %d (-want +got):\n%s", o.name, size, diff)
			}
		}
	}
	// The model's name order, spelled out: the folded names, each group
	// of equal ones in id order.
	got := groupPages(t, s, users.GroupQuery{Tenant: tenant, ByName: true}, 4)
	var keys []string
	for _, g := range got {
		keys = append(keys, users.GroupNameKey(g.DisplayName))
	}
	wantKeys := []string{
		"", "10 ops", "alpha", "alpha", "alpha", "beta", "eng", "engineering", "engineering", "engineering",
		"engineering", "engineering", "engineering ops", "ops", "sales", "strasse", "strasse", "zeta", "zeta", "ω",
	}
	if diff := cmp.Diff(wantKeys, keys); diff != "" {
		t.Errorf("ListGroups in name order: the name keys (-want +got):\n%s", diff)
	}
	for i := 1; i < len(got); i++ {
		if keys[i] == keys[i-1] && got[i].ID < got[i-1].ID {
			t.Errorf("ListGroups in name order: %q: %s before %s, not in id order", keys[i], got[i-1].ID, got[i].ID)
		}
	}
}

// testGroupListOrderTies: groups whose names fold alike, more of them than
// a page holds, page in id order within their name key, ascending or
// descending with the order, alone or among other names, with each
// filter.
func testGroupListOrderTies(t *testing.T, s GroupStore, tenant string) {
	var all []*users.Group
	add := func(name, externalID string) {
		g := groupIn(tenant, len(all))
		g.DisplayName, g.ExternalID = name, externalID
		all = append(all, createGroup(t, s, g))
	}
	// Inserted in the order of their ids: a store that ordered ties by
	// insertion would pass the ascending order but not the descending one.
	for i, name := range []string{"Team", "team", "TEAM", "Téam", "team", "Team", "tëam", "Team"} {
		ext := ""
		if i%2 == 0 {
			ext = fmt.Sprintf("team-%d", i)
		}
		add(name, ext)
	}
	add("Teams", "")
	add("A Team", "a-team")
	add("Tea", "")
	add("Zed Team", "")
	d := tenant
	teamKey := users.GroupNameKey("Team")
	checkGroupQueries(t, s, all, []users.GroupQuery{
		{Tenant: d},
		{Tenant: d, NameKey: teamKey},
		{Tenant: d, NameKey: users.GroupNameKey("TÉAMS")},
		{Tenant: d, Contains: "team"},
		{Tenant: d, Contains: "tea"},
		{Tenant: d, Contains: " team"},
		{Tenant: d, ExternalID: "team-4"},
		{Tenant: d, ExternalID: "a-team"},
		{Tenant: d, NameKey: teamKey, ExternalID: "team-2"},
		{Tenant: d, NameKey: teamKey, Contains: "eam"},
		{Tenant: d, Contains: "team", ExternalID: "team-6"},
	}, []int{12, 8, 1, 11, 12, 2, 1, 1, 1, 8, 1})
	for _, o := range groupOrders {
		q := inOrder(users.GroupQuery{Tenant: tenant, NameKey: teamKey}, o.byName, o.desc)
		for _, size := range []int{1, 3} {
			got := groupIDs(groupPages(t, s, q, size))
			want := idOrder(got)
			if o.desc {
				slices.Reverse(want)
			}
			if !slices.Equal(got, want) || len(got) != 8 {
				t.Errorf("ListGroups(the 8 teams) in %s order by pages of %d = %v, want the 8 by id, %v", o.name, size, got, want)
			}
		}
	}
}

// testGroupListOrderCursor: a cursor is a place in the order, not a group:
// the page after it starts there though its group is gone, or another
// key; a cursor of a name key that no group has starts after that key (ids
// of that key before or after the cursor's); with NameKey, a cursor of
// another key starts before or after all of the name's groups.
func testGroupListOrderCursor(t *testing.T, s GroupStore, tenant string) {
	ctx := context.Background()
	var all []*users.Group
	for i, name := range []string{"b", "B", "a", "c", "b", "d", "C", "a", "e", "b"} {
		g := groupIn(tenant, i)
		g.DisplayName = name
		all = append(all, createGroup(t, s, g))
	}
	const (
		minID = "00000000-0000-0000-0000-000000000000"
		maxID = "ffffffff-ffff-ffff-ffff-ffffffffffff"
	)
	keyIs := func(key string) func(*users.Group) bool {
		return func(g *users.Group) bool { return users.GroupNameKey(g.DisplayName) == key }
	}
	keyAfter := func(key string) func(*users.Group) bool {
		return func(g *users.Group) bool { return users.GroupNameKey(g.DisplayName) > key }
	}
	keyBefore := func(key string) func(*users.Group) bool {
		return func(g *users.Group) bool { return users.GroupNameKey(g.DisplayName) < key }
	}
	where := func(keep func(*users.Group) bool) []*users.Group {
		var out []*users.Group
		for _, g := range all {
			if keep(g) {
				out = append(out, g)
			}
		}
		return out
	}
	bs := orderGroups(where(keyIs("b")), false, false) // the ids of the four b's
	for _, c := range []struct {
		name string
		q    users.GroupQuery
		want []string
	}{
		{"after b with the least id", users.GroupQuery{ByName: true, AfterNameKey: "b", After: minID},
			orderGroups(where(func(g *users.Group) bool { return !keyBefore("b")(g) }), true, false)},
		{"after b with the greatest id", users.GroupQuery{ByName: true, AfterNameKey: "b", After: maxID},
			orderGroups(where(keyAfter("b")), true, false)},
		{"after the second b", users.GroupQuery{ByName: true, AfterNameKey: "b", After: bs[1]},
			append(slices.Clone(bs[2:]), orderGroups(where(keyAfter("b")), true, false)...)},
		{"after bb, no such key", users.GroupQuery{ByName: true, AfterNameKey: "bb", After: minID},
			orderGroups(where(keyAfter("b")), true, false)},
		{"after the empty key", users.GroupQuery{ByName: true, AfterNameKey: "", After: maxID},
			orderGroups(all, true, false)},
		{"after z", users.GroupQuery{ByName: true, AfterNameKey: "z", After: minID}, nil},
		{"desc, before b with the greatest id", users.GroupQuery{ByName: true, Desc: true, AfterNameKey: "b", After: maxID},
			orderGroups(where(func(g *users.Group) bool { return !keyAfter("b")(g) }), true, true)},
		{"desc, before b with the least id", users.GroupQuery{ByName: true, Desc: true, AfterNameKey: "b", After: minID},
			orderGroups(where(keyBefore("b")), true, true)},
		{"desc, before the second b", users.GroupQuery{ByName: true, Desc: true, AfterNameKey: "b", After: bs[1]},
			append([]string{bs[0]}, orderGroups(where(keyBefore("b")), true, true)...)},
		{"desc, before bb, no such key", users.GroupQuery{ByName: true, Desc: true, AfterNameKey: "bb", After: minID},
			orderGroups(where(func(g *users.Group) bool { return !keyAfter("b")(g) }), true, true)},
		{"desc, before the empty key", users.GroupQuery{ByName: true, Desc: true, AfterNameKey: "", After: maxID}, nil},
		{"name b, after the second b", users.GroupQuery{ByName: true, NameKey: "b", AfterNameKey: "b", After: bs[1]}, bs[2:]},
		{"name b, desc, before the second b", users.GroupQuery{ByName: true, Desc: true, NameKey: "b", AfterNameKey: "b", After: bs[1]}, bs[:1]},
		{"name b, after a", users.GroupQuery{ByName: true, NameKey: "b", AfterNameKey: "a", After: maxID}, bs},
		{"name b, after c", users.GroupQuery{ByName: true, NameKey: "b", AfterNameKey: "c", After: minID}, nil},
		{"name b, desc, before c", users.GroupQuery{ByName: true, Desc: true, NameKey: "b", AfterNameKey: "c", After: minID},
			[]string{bs[3], bs[2], bs[1], bs[0]}},
		{"name b, desc, before a", users.GroupQuery{ByName: true, Desc: true, NameKey: "b", AfterNameKey: "a", After: maxID}, nil},
		{"id desc, before the second b", users.GroupQuery{Desc: true, After: bs[1]},
			orderGroups(where(func(g *users.Group) bool { return g.ID < bs[1] }), false, true)},
		{"id desc, before the least id", users.GroupQuery{Desc: true, After: minID}, nil},
	} {
		c.q.Tenant, c.q.Limit = tenant, 100
		got, err := s.ListGroups(ctx, c.q)
		if err != nil {
			t.Errorf("ListGroups(%s) err = %v", c.name, err)
			continue
		}
		if diff := cmp.Diff(c.want, groupIDs(got), cmpEmptyStrings); diff != "" {
			t.Errorf("ListGroups(%s) (-want +got):\n%s", c.name, diff)
		}
	}

	// The group of the cursor is deleted, and another renamed across it,
	// between two pages: the next page starts where the first ended.
	for _, o := range groupOrders {
		q := inOrder(users.GroupQuery{Tenant: tenant, Limit: 4}, o.byName, o.desc)
		first, err := s.ListGroups(ctx, q)
		if err != nil || len(first) != 4 {
			t.Fatalf("ListGroups(%s order, first page) = %v, %v", o.name, groupIDs(first), err)
		}
		last := first[3]
		q.After, q.AfterNameKey = last.ID, users.GroupNameKey(last.DisplayName)
		if _, err := s.DeleteGroup(ctx, tenant, last.ID, nil); err != nil {
			t.Fatalf("DeleteGroup err = %v", err)
		}
		q.Limit = 100
		rest, err := s.ListGroups(ctx, q)
		if err != nil {
			t.Fatalf("ListGroups(%s order, after a deleted group) err = %v", o.name, err)
		}
		all = slices.DeleteFunc(all, func(g *users.Group) bool { return g.ID == last.ID })
		want := filterGroups(all, inOrder(users.GroupQuery{Tenant: tenant}, o.byName, o.desc))[3:]
		if diff := cmp.Diff(want, groupIDs(rest), cmpEmptyStrings); diff != "" {
			t.Errorf("ListGroups(%s order, after a deleted group) (-want +got):\n%s", o.name, diff)
		}
	}
}

// testGroupListLiteral: Contains and NameKey take every character as
// itself, the wildcards and escapes of SQL patterns among them.
func testGroupListLiteral(t *testing.T, s GroupStore, tenant string) {
	var all []*users.Group
	for i, name := range []string{
		"100% done", "100 done", "a_b", "axb", `back\slash`, "backslash", `say "hi"`, "say hi",
		"it's", "its", "star*", "stars", "what?", "whats", "[set]", "set", "a%b", "a%%b",
	} {
		g := groupIn(tenant, i)
		g.DisplayName = name
		all = append(all, createGroup(t, s, g))
	}
	d := tenant
	checkGroupQueries(t, s, all, []users.GroupQuery{
		{Tenant: d, Contains: "%"},
		{Tenant: d, Contains: "0%"},
		{Tenant: d, Contains: "%%"},
		{Tenant: d, Contains: "_"},
		{Tenant: d, Contains: "a_b"},
		{Tenant: d, Contains: `\`},
		{Tenant: d, Contains: `k\s`},
		{Tenant: d, Contains: `\\`},
		{Tenant: d, Contains: `"`},
		{Tenant: d, Contains: `"hi"`},
		{Tenant: d, Contains: "'"},
		{Tenant: d, Contains: "*"},
		{Tenant: d, Contains: "?"},
		{Tenant: d, Contains: "["},
		{Tenant: d, Contains: "[set]"},
		{Tenant: d, NameKey: "100%"},
		{Tenant: d, NameKey: "a_b"},
		{Tenant: d, NameKey: "a%b"},
		{Tenant: d, NameKey: "a%"},
		{Tenant: d, NameKey: `back\slash`},
		{Tenant: d, NameKey: `say "hi"`},
		{Tenant: d, NameKey: "it's"},
		{Tenant: d, NameKey: "star*"},
		{Tenant: d, NameKey: "sta*"},
		{Tenant: d, NameKey: "what?"},
		{Tenant: d, NameKey: "[set]"},
	}, []int{3, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1})
}

// testGroupUpdate: UpdateGroup calls fn with a copy of the stored group
// and stores what fn made of it with Revision incremented (the etag
// changes); MemberCount and Revision are the store's, not fn's; ListGroups
// finds the group by its new name and external id; an update that changes
// nothing still counts a revision; the old external id is free again.
func testGroupUpdate(t *testing.T, s GroupStore, tenant string) {
	ctx := context.Background()
	g := groupIn(tenant, 1)
	g.ExternalID = "ext-1"
	g = createGroup(t, s, g)
	u := create(t, s, userIn(tenant, 1))
	g = addMembers(t, s, tenant, g.ID, u.ID)
	before := getGroup(t, s, tenant, g.ID)
	later := g.UpdateTime.Add(time.Hour)
	var seen users.Group
	got, err := s.UpdateGroup(ctx, tenant, g.ID, func(x *users.Group) error {
		seen = *x
		x.DisplayName = "Renamed"
		x.ExternalID = "ext-2"
		x.Description = ""
		x.UpdateTime = later
		x.Revision, x.MemberCount = 99, 42 // not the fn's to set
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateGroup err = %v", err)
	}
	if diff := cmp.Diff(before, &seen); diff != "" {
		t.Errorf("fn was called with (-stored +seen):\n%s", diff)
	}
	want := cloneGroup(before)
	want.DisplayName, want.ExternalID, want.Description, want.UpdateTime = "Renamed", "ext-2", "", later
	want.Revision = before.Revision + 1
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("UpdateGroup returned (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, getGroup(t, s, tenant, g.ID)); diff != "" {
		t.Errorf("GetGroup after the update (-want +got):\n%s", diff)
	}
	if got.Etag() == before.Etag() {
		t.Errorf("the etag did not change with the update: %s", got.Etag())
	}
	if n := len(members(t, s, tenant, g.ID)); n != 1 {
		t.Errorf("members after the update = %d, want 1", n)
	}
	// ListGroups finds the group by what it is now, not by what it was.
	for _, c := range []struct {
		q    users.GroupQuery
		want []string
	}{
		{users.GroupQuery{NameKey: users.GroupNameKey("Renamed")}, []string{g.ID}},
		{users.GroupQuery{Contains: "enam"}, []string{g.ID}},
		{users.GroupQuery{ExternalID: "ext-2"}, []string{g.ID}},
		{users.GroupQuery{NameKey: users.GroupNameKey(before.DisplayName)}, nil},
		{users.GroupQuery{ExternalID: "ext-1"}, nil},
	} {
		c.q.Tenant = tenant
		if got := groupIDs(groupPages(t, s, c.q, 10)); !slices.Equal(got, c.want) {
			t.Errorf("ListGroups(%+v) after the update = %v, want %v", c.q, got, c.want)
		}
	}

	// The old external id is free again; the group may drop its own, and
	// so may another: groups without one do not collide.
	reuse := groupIn(tenant, 2)
	reuse.ExternalID = "ext-1"
	createGroup(t, s, reuse)
	bare := createGroup(t, s, groupIn(tenant, 3))
	dropped, err := s.UpdateGroup(ctx, tenant, g.ID, func(x *users.Group) error { x.ExternalID = ""; return nil })
	if err != nil || dropped.ExternalID != "" || dropped.Revision != want.Revision+1 {
		t.Fatalf("UpdateGroup(drop the external id) = %+v, %v; want no external id, revision %d", dropped, err, want.Revision+1)
	}
	if _, err := s.UpdateGroup(ctx, tenant, bare.ID, func(x *users.Group) error { x.Description = "still none"; return nil }); err != nil {
		t.Errorf("UpdateGroup of another group without an external id err = %v", err)
	}

	// Nothing changes: the revision moves all the same, and the etag.
	same, err := s.UpdateGroup(ctx, tenant, g.ID, func(*users.Group) error { return nil })
	if err != nil {
		t.Fatalf("UpdateGroup(no change) err = %v", err)
	}
	wantSame := cloneGroup(dropped)
	wantSame.Revision++
	if diff := cmp.Diff(wantSame, same); diff != "" {
		t.Errorf("UpdateGroup(no change) returned (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantSame, getGroup(t, s, tenant, g.ID)); diff != "" {
		t.Errorf("GetGroup after an update that changed nothing (-want +got):\n%s", diff)
	}
	if same.Etag() == dropped.Etag() {
		t.Errorf("the etag did not change with the revision")
	}
}

// testGroupUpdateFnError: an error of fn changes nothing and is returned;
// fn always sees the group as stored, not what an earlier fn did to its
// copy. No event.
func testGroupUpdateFnError(t *testing.T, s GroupStore, tenant string) {
	ctx := context.Background()
	g := groupIn(tenant, 1)
	g.ExternalID = "ext-1"
	g = createGroup(t, s, g)
	since := feedEnd(t, s, tenant)
	boom := fmt.Errorf("rule broken: %w", users.ErrWrongState)
	for i := range 2 {
		var seen users.Group
		_, err := s.UpdateGroup(ctx, tenant, g.ID, func(x *users.Group) error {
			seen = *x
			x.DisplayName, x.ExternalID, x.Description = "changed", "ext-changed", "changed"
			x.UpdateTime = x.UpdateTime.Add(time.Hour)
			return boom
		})
		if !errors.Is(err, users.ErrWrongState) {
			t.Errorf("UpdateGroup #%d err = %v, want the function's error", i, err)
		}
		if diff := cmp.Diff(g, &seen); diff != "" {
			t.Errorf("UpdateGroup #%d: fn saw (-stored +seen):\n%s", i, diff)
		}
	}
	if diff := cmp.Diff(g, getGroup(t, s, tenant, g.ID)); diff != "" {
		t.Errorf("group changed although fn failed (-want +got):\n%s", diff)
	}
	// The external id the failed update tried is free.
	other := groupIn(tenant, 2)
	other.ExternalID = "ext-changed"
	createGroup(t, s, other)
	evs := markIn(t, s, tenant, since)
	if len(evs) != 1 || evs[0].Type != users.EventGroupCreated || evs[0].GroupID != other.ID {
		t.Errorf("events after failed updates and a create = %v, want only the create", summarizeGroupEvents(evs))
	}
}

// testGroupUpdateExternalIDTaken: an update to another group's external
// id fails with ErrExternalIDTaken and changes nothing, not even the
// fields it changed besides; another tenant's external id, or the group's
// own, is free to take.
func testGroupUpdateExternalIDTaken(t *testing.T, s GroupStore, tenant string) {
	ctx := context.Background()
	other := tenant + "-b"
	createTenant(t, s, other, 0)
	a := groupIn(tenant, 1)
	a.ExternalID = "ext-a"
	a = createGroup(t, s, a)
	b := groupIn(tenant, 2)
	b.ExternalID = "ext-b"
	b = createGroup(t, s, b)
	inOther := groupIn(other, 3)
	inOther.ExternalID = "ext-c"
	createGroup(t, s, inOther)
	since := feedEnd(t, s, tenant)
	from := users.Now()

	_, err := s.UpdateGroup(ctx, tenant, b.ID, func(x *users.Group) error {
		x.DisplayName, x.ExternalID, x.Description = "B2", a.ExternalID, "new"
		return nil
	})
	if !errors.Is(err, users.ErrExternalIDTaken) {
		t.Errorf("UpdateGroup(external id of another group) err = %v, want ErrExternalIDTaken", err)
	}
	if diff := cmp.Diff(b, getGroup(t, s, tenant, b.ID)); diff != "" {
		t.Errorf("group changed by a refused update (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(a, getGroup(t, s, tenant, a.ID)); diff != "" {
		t.Errorf("the group whose external id was asked for changed (-want +got):\n%s", diff)
	}
	// Another tenant's external id is free to take; then the group's own
	// again, which changes nothing.
	moved, err := s.UpdateGroup(ctx, tenant, b.ID, func(x *users.Group) error { x.ExternalID = inOther.ExternalID; return nil })
	if err != nil || moved.ExternalID != inOther.ExternalID {
		t.Fatalf("UpdateGroup(another tenant's external id) = %+v, %v; want it taken", moved, err)
	}
	if _, err := s.UpdateGroup(ctx, tenant, b.ID, func(x *users.Group) error { x.ExternalID = inOther.ExternalID; return nil }); err != nil {
		t.Errorf("UpdateGroup(its own external id) err = %v", err)
	}
	checkGroupEvents(t, "UpdateGroup", markIn(t, s, tenant, since), []wantGroupEvent{
		groupEv(users.EventGroupUpdated, moved, "external_id"),
	}, from, users.Now())
}

// testGroupUpdateEvents: an update appends a GroupUpdated event carrying
// the group as written and the fields changed, in the order display_name,
// external_id, description; one that changes none of them (update_time
// and revision aside) appends none.
func testGroupUpdateEvents(t *testing.T, s GroupStore, tenant string) {
	ctx, traceParent := tracedContext()
	bg := context.Background()
	g := groupIn(tenant, 1)
	g.ExternalID = "ext-1"
	g = createGroup(t, s, g)
	since := feedEnd(t, s, tenant)
	from := users.Now()
	var want []wantGroupEvent
	update := func(ctx context.Context, fn func(*users.Group)) *users.Group {
		t.Helper()
		got, err := s.UpdateGroup(ctx, tenant, g.ID, func(x *users.Group) error { fn(x); return nil })
		if err != nil {
			t.Fatalf("UpdateGroup err = %v", err)
		}
		return got
	}
	later := func(x *users.Group) { x.UpdateTime = x.UpdateTime.Add(time.Minute) }

	// Set in the reverse of the order the paths list them.
	got := update(ctx, func(x *users.Group) {
		x.Description, x.ExternalID, x.DisplayName = "new description", "ext-2", "New name"
		later(x)
	})
	want = append(want, groupEv(users.EventGroupUpdated, got, "display_name", "external_id", "description").traced(traceParent))
	update(bg, later)                                                     // update_time only: no event
	update(bg, func(x *users.Group) { x.DisplayName = "New name" })       // the same name: no event
	got = update(bg, func(x *users.Group) { x.DisplayName = "NEW NAME" }) // a change of case is a change
	want = append(want, groupEv(users.EventGroupUpdated, got, "display_name"))
	got = update(bg, func(x *users.Group) { x.Description = ""; later(x) })
	want = append(want, groupEv(users.EventGroupUpdated, got, "description"))
	got = update(bg, func(x *users.Group) { x.ExternalID = "" })
	want = append(want, groupEv(users.EventGroupUpdated, got, "external_id"))
	got = update(bg, func(x *users.Group) { x.Description, x.DisplayName = "d", "n" })
	want = append(want, groupEv(users.EventGroupUpdated, got, "display_name", "description"))
	got = update(ctx, func(x *users.Group) { x.ExternalID, x.DisplayName = "ext-3", "m" })
	want = append(want, groupEv(users.EventGroupUpdated, got, "display_name", "external_id").traced(traceParent))
	checkGroupEvents(t, "UpdateGroup", markIn(t, s, tenant, since), want, from, users.Now())
	if final := getGroup(t, s, tenant, g.ID); final.Revision != g.Revision+8 {
		t.Errorf("revision after 8 updates = %d, want %d", final.Revision, g.Revision+8)
	}
}

// testGroupDelete: DeleteGroup calls check with the group, removes it and
// its memberships, appends one GroupDeleted event carrying the group as it
// was, and returns that; the group is gone for every method, and its
// external id is free.
func testGroupDelete(t *testing.T, s GroupStore, tenant string) {
	ctx := context.Background()
	g := groupIn(tenant, 1)
	g.ExternalID = "ext-1"
	g = createGroup(t, s, g)
	other := createGroup(t, s, groupIn(tenant, 2))
	u1 := create(t, s, userIn(tenant, 1))
	u2 := create(t, s, userIn(tenant, 2))
	addMembers(t, s, tenant, g.ID, u1.ID, u2.ID)
	addMembers(t, s, tenant, other.ID, u1.ID)
	g, err := s.UpdateGroup(ctx, tenant, g.ID, func(x *users.Group) error { x.Description = "to go"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	before := getGroup(t, s, tenant, g.ID)
	if before.MemberCount != 2 {
		t.Fatalf("MemberCount before the delete = %d, want 2", before.MemberCount)
	}
	since := feedEnd(t, s, tenant)
	from := users.Now()

	var checked []*users.Group
	got, err := s.DeleteGroup(ctx, tenant, g.ID, func(x *users.Group) error {
		checked = append(checked, cloneGroup(x))
		return nil
	})
	if err != nil {
		t.Fatalf("DeleteGroup err = %v", err)
	}
	if len(checked) != 1 {
		t.Fatalf("check called %d times, want once", len(checked))
	}
	if diff := cmp.Diff(before, checked[0]); diff != "" {
		t.Errorf("check was called with (-stored +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, got); diff != "" {
		t.Errorf("DeleteGroup returned (-as it was +got):\n%s", diff)
	}
	checkGroupEvents(t, "DeleteGroup", markIn(t, s, tenant, since), []wantGroupEvent{
		groupEv(users.EventGroupDeleted, before),
	}, from, users.Now())

	if _, err := s.GetGroup(ctx, tenant, g.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("GetGroup(deleted) err = %v, want ErrNotFound", err)
	}
	if got := groupIDs(groupPages(t, s, users.GroupQuery{Tenant: tenant}, 10)); !slices.Equal(got, []string{other.ID}) {
		t.Errorf("ListGroups after the delete = %v, want [%s]", got, other.ID)
	}
	if got, err := s.ListGroupMembers(ctx, tenant, g.ID, "", 10); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("ListGroupMembers(deleted) = %v, %v; want ErrNotFound", memberIDs(got), err)
	}
	if got := userGroupIDs(t, s, tenant, u2.ID); len(got) != 0 {
		t.Errorf("ListUserGroups of a former member = %v, want none", got)
	}
	if got := userGroupIDs(t, s, tenant, u1.ID); !slices.Equal(got, []string{other.ID}) {
		t.Errorf("ListUserGroups of a member of another group too = %v, want [%s]", got, other.ID)
	}
	wantCount(t, s, "the other group", tenant, other.ID, 1)
	for _, f := range []users.Condition{
		{Field: users.FieldGroup, Op: users.OpEq, Value: g.ID},
	} {
		if got, err := s.ListUsers(ctx, users.ListQuery{Tenant: tenant, Filter: users.Filter{f}, ShowDeleted: true, Limit: 100}); err != nil || len(got) != 0 {
			t.Errorf("ListUsers(members of the deleted group) = %v, %v; want none", ids(got), err)
		}
	}
	if _, err := s.AddGroupMembers(ctx, tenant, g.ID, []string{u1.ID}); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("AddGroupMembers(deleted) err = %v, want ErrNotFound", err)
	}
	called := false
	if _, err := s.DeleteGroup(ctx, tenant, g.ID, func(*users.Group) error { called = true; return nil }); !errors.Is(err, users.ErrNotFound) || called {
		t.Errorf("DeleteGroup again err = %v, check called %v; want ErrNotFound, not called", err, called)
	}
	// Its external id is free; a nil check deletes too.
	reuse := groupIn(tenant, 3)
	reuse.ExternalID = g.ExternalID
	createGroup(t, s, reuse)
	if got, err := s.DeleteGroup(ctx, tenant, other.ID, nil); err != nil || got.ID != other.ID || got.MemberCount != 1 {
		t.Errorf("DeleteGroup(nil check) = %+v, %v; want the group, 1 member", got, err)
	}
	if got := userGroupIDs(t, s, tenant, u1.ID); len(got) != 0 {
		t.Errorf("ListUserGroups after both groups are deleted = %v, want none", got)
	}
}

// testGroupDeleteCheck: an error of check aborts the delete: it is
// returned, and the group, its members and the feed are as they were.
func testGroupDeleteCheck(t *testing.T, s GroupStore, tenant string) {
	ctx := context.Background()
	g := createGroup(t, s, groupIn(tenant, 1))
	u := create(t, s, userIn(tenant, 1))
	g = addMembers(t, s, tenant, g.ID, u.ID)
	since := feedEnd(t, s, tenant)
	boom := fmt.Errorf("group in use: %w", users.ErrWrongState)
	calls := 0
	if _, err := s.DeleteGroup(ctx, tenant, g.ID, func(*users.Group) error { calls++; return boom }); !errors.Is(err, users.ErrWrongState) || calls != 1 {
		t.Errorf("DeleteGroup with a failing check err = %v, check called %d times; want the check's error, once", err, calls)
	}
	if diff := cmp.Diff(g, getGroup(t, s, tenant, g.ID)); diff != "" {
		t.Errorf("group after a refused delete (-want +got):\n%s", diff)
	}
	if got := members(t, s, tenant, g.ID); !slices.Equal(got, []string{u.ID}) {
		t.Errorf("members after a refused delete = %v, want [%s]", got, u.ID)
	}
	if got := userGroupIDs(t, s, tenant, u.ID); !slices.Equal(got, []string{g.ID}) {
		t.Errorf("ListUserGroups after a refused delete = %v, want [%s]", got, g.ID)
	}
	wantNoEvents(t, s, "a refused delete", tenant, since)
}

// testGroupMembersAdd: AddGroupMembers adds each user not yet a member
// once, duplicates in the call and members already there aside, with one
// GroupMemberAdded event each in the order of the ids; it returns the
// group with its MemberCount, which member changes do not count as
// revisions; a suspended user may be a member; memberships keep the time
// they were made.
func testGroupMembersAdd(t *testing.T, s GroupStore, tenant string) {
	g := createGroup(t, s, groupIn(tenant, 1))
	other := createGroup(t, s, groupIn(tenant, 2))
	us := makeUsers(t, s, tenant, 0, 6)
	sus, err := s.UpdateUser(context.Background(), tenant, us[5].ID, func(u *users.User) error { u.State = users.StateSuspended; return nil })
	if err != nil {
		t.Fatal(err)
	}
	us[5] = sus
	since := feedEnd(t, s, tenant)
	from := users.Now()
	d := tenant

	got := addMembers(t, s, d, g.ID, us[2].ID, us[0].ID, us[2].ID, us[1].ID)
	mid := users.Now()
	want := cloneGroup(g)
	want.MemberCount = 3
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("AddGroupMembers returned (-want +got):\n%s", diff)
	}
	first := memberPages(t, s, d, g.ID, 100)
	if diff := cmp.Diff(idOrder([]string{us[0].ID, us[1].ID, us[2].ID}), memberIDs(first)); diff != "" {
		t.Errorf("members after the first add (-want +got):\n%s", diff)
	}
	for _, m := range first {
		if m.CreateTime.Before(from) || m.CreateTime.After(mid) || m.CreateTime != users.Truncate(m.CreateTime) {
			t.Errorf("member %s create time %v, want in [%v, %v], UTC, in µs", m.UserID, m.CreateTime, from, mid)
		}
	}

	// Members already there are left as they are; a suspended user joins.
	got = addMembers(t, s, d, g.ID, us[1].ID, us[3].ID, us[0].ID, us[5].ID, us[3].ID)
	want.MemberCount = 5
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("AddGroupMembers with members already there returned (-want +got):\n%s", diff)
	}
	for _, again := range [][]string{{us[2].ID}, {us[5].ID, us[0].ID}, nil, {}} {
		if got := addMembers(t, s, d, g.ID, again...); got.MemberCount != 5 || got.Revision != g.Revision {
			t.Errorf("AddGroupMembers(%d members again) = count %d, revision %d; want 5, %d", len(again), got.MemberCount, got.Revision, g.Revision)
		}
	}
	stored := getGroup(t, s, d, g.ID)
	if diff := cmp.Diff(want, stored); diff != "" {
		t.Errorf("GetGroup after the adds (-want +got):\n%s", diff)
	}
	if stored.Etag() != g.Etag() {
		t.Errorf("the etag changed with the members: %s, was %s", stored.Etag(), g.Etag())
	}
	all := memberPages(t, s, d, g.ID, 100)
	if diff := cmp.Diff(idOrder([]string{us[0].ID, us[1].ID, us[2].ID, us[3].ID, us[5].ID}), memberIDs(all)); diff != "" {
		t.Errorf("members after the adds (-want +got):\n%s", diff)
	}
	for _, m := range all {
		if i := slices.IndexFunc(first, func(f users.GroupMember) bool { return f.UserID == m.UserID }); i >= 0 && !m.CreateTime.Equal(first[i].CreateTime) {
			t.Errorf("member %s: create time %v after adding it again, was %v", m.UserID, m.CreateTime, first[i].CreateTime)
		}
	}
	// The other group is not touched; a user may be in both.
	wantCount(t, s, "the other group", d, other.ID, 0)
	if got := addMembers(t, s, d, other.ID, us[0].ID); got.MemberCount != 1 {
		t.Errorf("AddGroupMembers(other group) count = %d, want 1", got.MemberCount)
	}
	wantCount(t, s, "the group after a member joins another", d, g.ID, 5)

	checkGroupEvents(t, "AddGroupMembers", markIn(t, s, d, since), []wantGroupEvent{
		memberEv(users.EventGroupMemberAdded, d, g.ID, us[2].ID),
		memberEv(users.EventGroupMemberAdded, d, g.ID, us[0].ID),
		memberEv(users.EventGroupMemberAdded, d, g.ID, us[1].ID),
		memberEv(users.EventGroupMemberAdded, d, g.ID, us[3].ID),
		memberEv(users.EventGroupMemberAdded, d, g.ID, us[5].ID),
		memberEv(users.EventGroupMemberAdded, d, other.ID, us[0].ID),
	}, from, users.Now())
}

// testGroupMembersInvalid: a user that does not exist in the tenant
// (unknown, malformed id, another tenant's) or is deleted fails the whole
// AddGroupMembers with an *InvalidError naming "user_ids[i]": nothing is
// added, no event.
func testGroupMembersInvalid(t *testing.T, s GroupStore, tenant string) {
	ctx := context.Background()
	other := tenant + "-b"
	createTenant(t, s, other, 0)
	d := tenant
	g := createGroup(t, s, groupIn(tenant, 1))
	us := makeUsers(t, s, d, 0, 3)
	gone := create(t, s, userIn(tenant, 10))
	gone, err := s.UpdateUser(ctx, d, gone.ID, softDelete)
	if err != nil {
		t.Fatal(err)
	}
	inOther := create(t, s, userIn(other, 0))
	g = addMembers(t, s, d, g.ID, us[0].ID)
	since := feedEnd(t, s, d)

	for _, c := range []struct {
		name  string
		ids   []string
		index int
	}{
		{"unknown user", []string{us[1].ID, users.NewID(), us[2].ID}, 1},
		{"malformed id", []string{us[1].ID, us[2].ID, "not-a-uuid"}, 2},
		{"another tenant's user", []string{inOther.ID, us[1].ID}, 0},
		{"deleted user", []string{us[1].ID, us[2].ID, us[0].ID, gone.ID}, 3},
		{"deleted user after a duplicate", []string{us[1].ID, us[1].ID, gone.ID, us[2].ID}, 2},
		{"only a deleted user", []string{gone.ID}, 0},
	} {
		got, err := s.AddGroupMembers(ctx, d, g.ID, c.ids)
		if !errors.Is(err, users.ErrInvalid) {
			t.Errorf("%s: AddGroupMembers = %+v, %v; want ErrInvalid", c.name, got, err)
			continue
		}
		wantInvalid(t, c.name+": AddGroupMembers", err, fmt.Sprintf("user_ids[%d]", c.index))
	}
	if diff := cmp.Diff(g, getGroup(t, s, d, g.ID)); diff != "" {
		t.Errorf("group after refused adds (-want +got):\n%s", diff)
	}
	if got := members(t, s, d, g.ID); !slices.Equal(got, []string{us[0].ID}) {
		t.Errorf("members after refused adds = %v, want only [%s]", got, us[0].ID)
	}
	for _, u := range []*users.User{us[1], us[2], gone} {
		if got := userGroupIDs(t, s, d, u.ID); len(got) != 0 {
			t.Errorf("ListUserGroups(%s) after refused adds = %v, want none", u.Email, got)
		}
	}
	if got, err := s.ListUserGroups(ctx, other, inOther.ID, "", 10); err != nil || len(got) != 0 {
		t.Errorf("ListUserGroups(%s, the other tenant's user) = %v, %v; want none", other, groupIDs(got), err)
	}
	wantNoEvents(t, s, "refused AddGroupMembers", d, since)
}

// testGroupMembersRemove: RemoveGroupMembers removes each member named
// once, with one GroupMemberRemoved event each in the order of the ids,
// ignores the ids that are not members, lowers MemberCount, and leaves
// the user's other groups; a removed user may join again.
func testGroupMembersRemove(t *testing.T, s GroupStore, tenant string) {
	d := tenant
	g := createGroup(t, s, groupIn(tenant, 1))
	other := createGroup(t, s, groupIn(tenant, 2))
	us := makeUsers(t, s, d, 0, 5)
	addMembers(t, s, d, g.ID, us[0].ID, us[1].ID, us[2].ID, us[3].ID)
	addMembers(t, s, d, other.ID, us[0].ID)
	since := feedEnd(t, s, d)
	from := users.Now()

	got := removeMembers(t, s, d, g.ID, us[2].ID, us[4].ID, users.NewID(), us[0].ID, us[2].ID, "not-a-uuid")
	want := cloneGroup(g)
	want.MemberCount = 2
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RemoveGroupMembers returned (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, getGroup(t, s, d, g.ID)); diff != "" {
		t.Errorf("GetGroup after the removal (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(idOrder([]string{us[1].ID, us[3].ID}), members(t, s, d, g.ID)); diff != "" {
		t.Errorf("members after the removal (-want +got):\n%s", diff)
	}
	if got := userGroupIDs(t, s, d, us[0].ID); !slices.Equal(got, []string{other.ID}) {
		t.Errorf("ListUserGroups of a user removed from one of its groups = %v, want [%s]", got, other.ID)
	}
	wantCount(t, s, "the other group", d, other.ID, 1)
	// Nothing to remove: no change, no event.
	for _, none := range [][]string{nil, {us[4].ID}, {us[2].ID, us[0].ID}} {
		if got := removeMembers(t, s, d, g.ID, none...); got.MemberCount != 2 {
			t.Errorf("RemoveGroupMembers(%d non-members) count = %d, want 2", len(none), got.MemberCount)
		}
	}
	// Every member.
	if got := removeMembers(t, s, d, g.ID, us[3].ID, us[1].ID); got.MemberCount != 0 {
		t.Errorf("RemoveGroupMembers(every member) count = %d, want 0", got.MemberCount)
	}
	if got := members(t, s, d, g.ID); len(got) != 0 {
		t.Errorf("members after removing every member = %v, want none", got)
	}
	// Removed users may join again.
	if got := addMembers(t, s, d, g.ID, us[2].ID); got.MemberCount != 1 {
		t.Errorf("AddGroupMembers(a removed user) count = %d, want 1", got.MemberCount)
	}
	checkGroupEvents(t, "RemoveGroupMembers", markIn(t, s, d, since), []wantGroupEvent{
		memberEv(users.EventGroupMemberRemoved, d, g.ID, us[2].ID),
		memberEv(users.EventGroupMemberRemoved, d, g.ID, us[0].ID),
		memberEv(users.EventGroupMemberRemoved, d, g.ID, us[3].ID),
		memberEv(users.EventGroupMemberRemoved, d, g.ID, us[1].ID),
		memberEv(users.EventGroupMemberAdded, d, g.ID, us[2].ID),
	}, from, users.Now())
}

// testGroupMembersPaging: ListGroupMembers returns the group's members (no
// other group's) in user id order, whatever the order they were added in,
// a page at a time after the last user id.
func testGroupMembersPaging(t *testing.T, s GroupStore, tenant string) {
	ctx := context.Background()
	d := tenant
	const n = 240
	g := createGroup(t, s, groupIn(tenant, 1))
	other := createGroup(t, s, groupIn(tenant, 2))
	us := makeUsers(t, s, d, 0, n)
	all := ids(us)
	shuffled := slices.Clone(all)
	rand.New(rand.NewPCG(1, 2)).Shuffle(n, func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for i := 0; i < n; i += 80 {
		addMembers(t, s, d, g.ID, shuffled[i:i+80]...)
	}
	var third []string
	for i := 0; i < n; i += 3 {
		third = append(third, all[i])
	}
	addMembers(t, s, d, other.ID, third...)
	wantCount(t, s, "group", d, g.ID, n)
	wantCount(t, s, "other group", d, other.ID, int64(len(third)))

	want := idOrder(all)
	for _, size := range []int{7, 50, n, n + 1} {
		if diff := cmp.Diff(want, memberIDs(memberPages(t, s, d, g.ID, size))); diff != "" {
			t.Errorf("ListGroupMembers by pages of %d (-want +got):\n%s", size, diff)
		}
	}
	if diff := cmp.Diff(idOrder(third), memberIDs(memberPages(t, s, d, other.ID, 9))); diff != "" {
		t.Errorf("ListGroupMembers(other group) by pages of 9 (-want +got):\n%s", diff)
	}
	for _, c := range []struct {
		name  string
		after string
		limit int
		want  []string
	}{
		{"after the 100th", want[99], 5, want[100:105]},
		{"after the last but one", want[n-2], 5, want[n-1:]},
		{"after the last", want[n-1], 5, nil},
		{"limit 0", "", 0, nil},
	} {
		got, err := s.ListGroupMembers(ctx, d, g.ID, c.after, c.limit)
		if err != nil || !slices.Equal(memberIDs(got), c.want) {
			t.Errorf("ListGroupMembers(%s) = %v, %v; want %v", c.name, memberIDs(got), err, c.want)
		}
	}
}

// testGroupUserGroups: ListUserGroups returns the groups the user is a
// member of, with their member counts, in group id order, a page at a
// time after the last group id; deleted groups are gone from it.
func testGroupUserGroups(t *testing.T, s GroupStore, tenant string) {
	ctx := context.Background()
	d := tenant
	const n = 14
	gs := make([]*users.Group, n)
	for i := range gs {
		gs[i] = groupIn(tenant, i)
	}
	for k := range n { // not in id order
		i := (k * 5) % n
		gs[i] = createGroup(t, s, gs[i])
	}
	u := create(t, s, userIn(tenant, 1))
	v := create(t, s, userIn(tenant, 2))
	var mine []string
	for k := range n {
		i := (k * 3) % n // joined in another order still
		if i%4 != 3 {
			addMembers(t, s, d, gs[i].ID, u.ID)
			mine = append(mine, gs[i].ID)
		}
		if i%2 == 0 {
			addMembers(t, s, d, gs[i].ID, v.ID)
		}
	}
	check := func(what string, want []string) {
		t.Helper()
		for _, size := range []int{1, 4, len(want), len(want) + 1} {
			if size == 0 {
				continue
			}
			got := userGroupPages(t, s, d, u.ID, size)
			if diff := cmp.Diff(want, groupIDs(got), cmpEmptyStrings); diff != "" {
				t.Errorf("%s: ListUserGroups by pages of %d (-want +got):\n%s", what, size, diff)
			}
			for _, g := range got {
				if diff := cmp.Diff(getGroup(t, s, d, g.ID), g); diff != "" {
					t.Errorf("%s: ListUserGroups returned group %s unlike GetGroup (-get +listed):\n%s", what, g.ID, diff)
				}
			}
		}
	}
	want := idOrder(mine)
	check("member of several", want)
	for _, c := range []struct {
		name  string
		after string
		limit int
		want  []string
	}{
		{"after the 3rd", want[2], 2, want[3:5]},
		{"after the last", want[len(want)-1], 5, nil},
		{"limit 0", "", 0, nil},
	} {
		got, err := s.ListUserGroups(ctx, d, u.ID, c.after, c.limit)
		if err != nil || !slices.Equal(groupIDs(got), c.want) {
			t.Errorf("ListUserGroups(%s) = %v, %v; want %v", c.name, groupIDs(got), err, c.want)
		}
	}
	// A group deleted, a membership removed.
	if _, err := s.DeleteGroup(ctx, d, want[1], nil); err != nil {
		t.Fatal(err)
	}
	removeMembers(t, s, d, want[3], u.ID)
	check("after a delete and a removal", append(append([]string{want[0]}, want[2]), want[4:]...))
}

// testGroupUserDeleted: an UpdateUser that makes the user DELETED removes
// its memberships, with a GroupMemberRemoved event each after the user's
// own event, in group id order (with the trace parent of the change), and
// lowers the member counts; other changes, a failed delete, and an
// undelete change no membership.
func testGroupUserDeleted(t *testing.T, s GroupStore, tenant string) {
	ctx := context.Background()
	d := tenant
	g1 := createGroup(t, s, groupIn(tenant, 1))
	g2 := createGroup(t, s, groupIn(tenant, 2))
	g3 := createGroup(t, s, groupIn(tenant, 3))
	if !(g1.ID < g2.ID && g2.ID < g3.ID) {
		t.Fatalf("group ids %s, %s, %s out of order", g1.ID, g2.ID, g3.ID)
	}
	u := create(t, s, userIn(tenant, 1))
	v := create(t, s, userIn(tenant, 2))
	lone := create(t, s, userIn(tenant, 3))
	// Joined in an order that is not the groups' order.
	addMembers(t, s, d, g3.ID, u.ID)
	addMembers(t, s, d, g1.ID, u.ID)
	addMembers(t, s, d, g2.ID, v.ID, u.ID)

	// Changes that do not delete keep the memberships.
	if _, err := s.UpdateUser(ctx, d, u.ID, func(x *users.User) error {
		x.DisplayName, x.State = "Renamed", users.StateSuspended
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if _, err := s.UpdateUser(ctx, d, u.ID, func(x *users.User) error { softDelete(x); return boom }); !errors.Is(err, boom) {
		t.Fatalf("UpdateUser(failing delete) err = %v, want %v", err, boom)
	}
	if got := userGroupIDs(t, s, d, u.ID); !slices.Equal(got, []string{g1.ID, g2.ID, g3.ID}) {
		t.Fatalf("ListUserGroups after a rename, suspension and failed delete = %v, want the 3 groups", got)
	}
	since := feedEnd(t, s, d)
	from := users.Now()

	traced, traceParent := tracedContext()
	deleted, err := s.UpdateUser(traced, d, u.ID, softDelete)
	if err != nil {
		t.Fatalf("UpdateUser(delete) err = %v", err)
	}
	wantCount(t, s, "g1", d, g1.ID, 0)
	wantCount(t, s, "g2", d, g2.ID, 1)
	wantCount(t, s, "g3", d, g3.ID, 0)
	if got := userGroupIDs(t, s, d, u.ID); len(got) != 0 {
		t.Errorf("ListUserGroups of the deleted user = %v, want none", got)
	}
	for _, c := range []struct {
		g    *users.Group
		want []string
	}{{g1, nil}, {g2, []string{v.ID}}, {g3, nil}} {
		if got := members(t, s, d, c.g.ID); !slices.Equal(got, c.want) {
			t.Errorf("members of %s after the delete = %v, want %v", c.g.DisplayName, got, c.want)
		}
	}
	// A user without groups: its own event only.
	lonely, err := s.UpdateUser(ctx, d, lone.ID, softDelete)
	if err != nil {
		t.Fatal(err)
	}
	// Undeleting restores no membership.
	back, err := s.UpdateUser(ctx, d, u.ID, func(x *users.User) error {
		x.State, x.DeleteTime = users.StateActive, time.Time{}
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateUser(undelete) err = %v", err)
	}
	if got := userGroupIDs(t, s, d, u.ID); len(got) != 0 {
		t.Errorf("ListUserGroups of the undeleted user = %v, want none", got)
	}
	wantCount(t, s, "g2 after the undelete", d, g2.ID, 1)
	// Deleting the last member of g2 empties it.
	vGone, err := s.UpdateUser(ctx, d, v.ID, softDelete)
	if err != nil {
		t.Fatal(err)
	}
	wantCount(t, s, "g2 after its last member is deleted", d, g2.ID, 0)

	checkGroupEvents(t, "UpdateUser", markIn(t, s, d, since), []wantGroupEvent{
		userEv(users.EventDeleted, deleted, "state", "delete_time").traced(traceParent),
		memberEv(users.EventGroupMemberRemoved, d, g1.ID, u.ID).traced(traceParent),
		memberEv(users.EventGroupMemberRemoved, d, g2.ID, u.ID).traced(traceParent),
		memberEv(users.EventGroupMemberRemoved, d, g3.ID, u.ID).traced(traceParent),
		userEv(users.EventDeleted, lonely, "state", "delete_time"),
		userEv(users.EventUndeleted, back, "state", "delete_time"),
		userEv(users.EventDeleted, vGone, "state", "delete_time"),
		memberEv(users.EventGroupMemberRemoved, d, g2.ID, v.ID),
	}, from, users.Now())
}

// testGroupFilterUsers: the FieldGroup condition of ListUsers and
// CountUsers keeps the group's members (OpEq) or the other users (OpNe),
// alone or with other conditions, deleted users (never members) among the
// others when shown.
func testGroupFilterUsers(t *testing.T, s GroupStore, tenant string) {
	ctx := context.Background()
	other := tenant + "-b"
	createTenant(t, s, other, 0)
	d := tenant
	us := makeUsers(t, s, d, 0, 10)
	for _, i := range []int{6, 8} {
		sus, err := s.UpdateUser(ctx, d, us[i].ID, func(u *users.User) error { u.State = users.StateSuspended; return nil })
		if err != nil {
			t.Fatal(err)
		}
		us[i] = sus
	}
	g := createGroup(t, s, groupIn(tenant, 1))
	h := createGroup(t, s, groupIn(tenant, 2))
	empty := createGroup(t, s, groupIn(tenant, 3))
	addMembers(t, s, d, g.ID, us[1].ID, us[3].ID, us[5].ID, us[8].ID, us[9].ID)
	addMembers(t, s, d, h.ID, us[2].ID, us[3].ID)
	gone, err := s.UpdateUser(ctx, d, us[9].ID, softDelete) // leaves g
	if err != nil {
		t.Fatal(err)
	}
	us[9] = gone
	gA := createGroup(t, s, groupIn(other, 1))
	uA := create(t, s, userIn(other, 1))
	addMembers(t, s, other, gA.ID, uA.ID)

	member := map[string]map[string]bool{g.ID: {}, h.ID: {}}
	for _, i := range []int{1, 3, 5, 8} {
		member[g.ID][us[i].ID] = true
	}
	for _, i := range []int{2, 3} {
		member[h.ID][us[i].ID] = true
	}
	in := func(group string) func(*users.User) bool {
		return func(u *users.User) bool { return member[group][u.ID] }
	}
	not := func(f func(*users.User) bool) func(*users.User) bool {
		return func(u *users.User) bool { return !f(u) }
	}
	is := func(group string, op users.Op) users.Condition {
		return users.Condition{Field: users.FieldGroup, Op: op, Value: group}
	}
	state := func(st users.State) users.Condition {
		return users.Condition{Field: users.FieldState, Op: users.OpEq, Value: st}
	}
	all := func(*users.User) bool { return true }
	tests := []struct {
		name        string
		filter      users.Filter
		showDeleted bool
		keep        func(*users.User) bool
		wantN       int
	}{
		{"members", users.Filter{is(g.ID, users.OpEq)}, false, in(g.ID), 4},
		{"members, deleted shown", users.Filter{is(g.ID, users.OpEq)}, true, in(g.ID), 4},
		{"non-members", users.Filter{is(g.ID, users.OpNe)}, false, not(in(g.ID)), 5},
		{"non-members, deleted shown", users.Filter{is(g.ID, users.OpNe)}, true, not(in(g.ID)), 6},
		{"active members", users.Filter{is(g.ID, users.OpEq), state(users.StateActive)}, false,
			func(u *users.User) bool { return in(g.ID)(u) && u.State == users.StateActive }, 3},
		{"suspended non-members", users.Filter{state(users.StateSuspended), is(g.ID, users.OpNe)}, false,
			func(u *users.User) bool { return !in(g.ID)(u) && u.State == users.StateSuspended }, 1},
		{"members of both", users.Filter{is(g.ID, users.OpEq), is(h.ID, users.OpEq)}, false,
			func(u *users.User) bool { return in(g.ID)(u) && in(h.ID)(u) }, 1},
		{"members of one, not the other", users.Filter{is(g.ID, users.OpEq), is(h.ID, users.OpNe)}, false,
			func(u *users.User) bool { return in(g.ID)(u) && !in(h.ID)(u) }, 3},
		{"members of an empty group", users.Filter{is(empty.ID, users.OpEq)}, true, not(all), 0},
		{"non-members of an empty group", users.Filter{is(empty.ID, users.OpNe)}, false,
			func(u *users.User) bool { return u.State != users.StateDeleted }, 9},
		{"members of another tenant's group", users.Filter{is(gA.ID, users.OpEq)}, true, not(all), 0},
		{"non-members of another tenant's group", users.Filter{is(gA.ID, users.OpNe)}, true, all, 10},
		{"members of an unknown group", users.Filter{is(users.NewID(), users.OpEq)}, true, not(all), 0},
	}
	o := users.Order{Field: users.OrderEmail, Desc: true}
	for _, tt := range tests {
		var want []*users.User
		for _, u := range us {
			if tt.keep(u) && (tt.showDeleted || u.State != users.StateDeleted) {
				want = append(want, u)
			}
		}
		if len(want) != tt.wantN {
			t.Fatalf("%s: the test's own model keeps %d users, the test expects %d", tt.name, len(want), tt.wantN)
		}
		q := users.ListQuery{Tenant: d, Filter: tt.filter, Order: o, ShowDeleted: tt.showDeleted}
		got := page(t, s, q, 3)
		if diff := cmp.Diff(ids(sorted(want, o)), ids(got), cmpEmptyStrings); diff != "" {
			t.Errorf("ListUsers(%s) (-want +got):\n%s", tt.name, diff)
		}
		n, exact, err := s.CountUsers(ctx, q, 1000)
		if err != nil || n != int64(len(want)) || !exact {
			t.Errorf("CountUsers(%s) = %d, %v, %v; want %d, exact", tt.name, n, exact, err, len(want))
		}
	}
	q := users.ListQuery{Tenant: other, Filter: users.Filter{is(gA.ID, users.OpEq)}, Limit: 10}
	if got, err := s.ListUsers(ctx, q); err != nil || !slices.Equal(ids(got), []string{uA.ID}) {
		t.Errorf("ListUsers(%s, members of its group) = %v, %v; want [%s]", other, ids(got), err, uA.ID)
	}
}

// addErrOK reports whether err is one AddGroupMembers may return in a race
// with other writers: none, or contention.
func addErrOK(err error) bool {
	return err == nil || errors.Is(err, users.ErrContention)
}

// testGroupMembersConcurrent: concurrent AddGroupMembers of the same users
// (named in different orders) make each a member once, with one
// GroupMemberAdded event, and a MemberCount that is the real count.
func testGroupMembersConcurrent(t *testing.T, s GroupStore, tenant string) {
	ctx := context.Background()
	d := tenant
	g := createGroup(t, s, groupIn(tenant, 1))
	h := createGroup(t, s, groupIn(tenant, 2))
	all := ids(makeUsers(t, s, d, 0, 20))
	since := feedEnd(t, s, d)
	const n = 8
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		order := append(slices.Clone(all[i:]), all[:i]...)
		if i%2 == 1 {
			slices.Reverse(order)
		}
		group := g.ID
		if i%4 == 3 {
			group = h.ID // another group, the same users, at once
		}
		wg.Go(func() {
			<-start
			_, errs[i] = s.AddGroupMembers(ctx, d, group, order)
		})
	}
	close(start)
	wg.Wait()
	okG, okH := 0, 0
	for i, err := range errs {
		if !addErrOK(err) {
			t.Errorf("concurrent AddGroupMembers #%d err = %v", i, err)
		}
		if err == nil && i%4 == 3 {
			okH++
		} else if err == nil {
			okG++
		}
	}
	if okG == 0 || okH == 0 {
		t.Fatalf("concurrent AddGroupMembers: %d of g's and %d of h's calls succeeded; want some of each", okG, okH)
	}
	added := map[string]map[string]int{g.ID: {}, h.ID: {}}
	for _, ev := range markIn(t, s, d, since) {
		if ev.Type != users.EventGroupMemberAdded || added[ev.GroupID] == nil {
			t.Errorf("unexpected event %s group=%s user=%s", ev.Type, ev.GroupID, ev.UserID)
			continue
		}
		added[ev.GroupID][ev.UserID]++
	}
	for _, grp := range []*users.Group{g, h} {
		if diff := cmp.Diff(idOrder(all), members(t, s, d, grp.ID)); diff != "" {
			t.Errorf("members of %s after concurrent adds (-want +got):\n%s", grp.DisplayName, diff)
		}
		wantCount(t, s, grp.DisplayName+" after concurrent adds", d, grp.ID, int64(len(all)))
		for _, id := range all {
			if c := added[grp.ID][id]; c != 1 {
				t.Errorf("%s: %d member_added events for user %s, want 1", grp.DisplayName, c, id)
			}
		}
		if len(added[grp.ID]) != len(all) {
			t.Errorf("%s: member_added events for %d users, want %d", grp.DisplayName, len(added[grp.ID]), len(all))
		}
	}
}

// testGroupMembersChurn: concurrent adds and removals of random sets of
// users leave each group's MemberCount equal to its real count, and each
// membership's events alternate, added first, ending as the membership
// does.
func testGroupMembersChurn(t *testing.T, s GroupStore, tenant string) {
	ctx := context.Background()
	d := tenant
	gs := []*users.Group{createGroup(t, s, groupIn(tenant, 1)), createGroup(t, s, groupIn(tenant, 2))}
	all := ids(makeUsers(t, s, d, 0, 8))
	since := feedEnd(t, s, d)
	const workers, rounds = 6, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for range rounds {
				g := gs[r.IntN(len(gs))]
				pick := make([]string, 1+r.IntN(5))
				for i := range pick {
					pick[i] = all[r.IntN(len(all))]
				}
				var err error
				if r.IntN(2) == 0 {
					_, err = s.AddGroupMembers(ctx, d, g.ID, pick)
				} else {
					_, err = s.RemoveGroupMembers(ctx, d, g.ID, pick)
				}
				if !addErrOK(err) {
					t.Errorf("concurrent member change err = %v", err)
				}
			}
		})
	}
	wg.Wait()
	// A consumer that follows the feed knows who the members are: each
	// membership's events alternate, added first, and the last one says
	// whether the user is a member.
	type membership struct{ group, user string }
	last := map[membership]users.EventType{}
	for _, ev := range markIn(t, s, d, since) {
		m := membership{ev.GroupID, ev.UserID}
		prev := last[m]
		if ev.Type != users.EventGroupMemberAdded && ev.Type != users.EventGroupMemberRemoved ||
			(ev.Type == users.EventGroupMemberAdded) == (prev == users.EventGroupMemberAdded) {
			t.Errorf("feed out of the order of the changes: %s of group %s, user %s at %+v follows %q",
				ev.Type, ev.GroupID, ev.UserID, ev.Pos, prev)
		}
		last[m] = ev.Type
	}
	for _, g := range gs {
		got := members(t, s, d, g.ID)
		wantCount(t, s, g.DisplayName+" after the churn", d, g.ID, int64(len(got)))
		var fromEvents []string
		for m, typ := range last {
			if m.group == g.ID && typ == users.EventGroupMemberAdded {
				fromEvents = append(fromEvents, m.user)
			}
		}
		if diff := cmp.Diff(idOrder(fromEvents), got, cmpEmptyStrings); diff != "" {
			t.Errorf("%s: members (+) unlike what the events say (-):\n%s", g.DisplayName, diff)
		}
	}
}

// testGroupAddDeleteRace: AddGroupMembers racing the deletion of the user
// it adds never leaves a DELETED user a member: either the add comes
// first, and the delete removes the membership (member_added, user.deleted,
// member_removed), or the add fails with an *InvalidError (user.deleted
// only).
func testGroupAddDeleteRace(t *testing.T, s GroupStore, tenant string) {
	ctx := context.Background()
	d := tenant
	g := createGroup(t, s, groupIn(tenant, 1))
	keep := create(t, s, userIn(tenant, 100))
	addMembers(t, s, d, g.ID, keep.ID)
	const n = 12
	us := makeUsers(t, s, d, 0, n)
	since := feedEnd(t, s, d)
	addErrs := make([]error, n)
	delErrs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, u := range us {
		wg.Go(func() {
			<-start
			_, addErrs[i] = s.AddGroupMembers(ctx, d, g.ID, []string{u.ID})
		})
		wg.Go(func() {
			<-start
			_, delErrs[i] = s.UpdateUser(ctx, d, u.ID, softDelete)
		})
	}
	close(start)
	wg.Wait()
	byUser := map[string][]users.EventType{}
	for _, ev := range markIn(t, s, d, since) {
		if ev.GroupID != "" && ev.GroupID != g.ID {
			t.Errorf("event of an unknown group: %s %s", ev.Type, ev.GroupID)
		}
		byUser[ev.UserID] = append(byUser[ev.UserID], ev.Type)
	}
	for i, u := range us {
		if delErrs[i] != nil {
			t.Errorf("user %d: UpdateUser(delete) err = %v", i, delErrs[i])
			continue
		}
		var want []users.EventType
		switch err := addErrs[i]; {
		case err == nil:
			want = []users.EventType{users.EventGroupMemberAdded, users.EventDeleted, users.EventGroupMemberRemoved}
		case errors.Is(err, users.ErrInvalid):
			wantInvalid(t, fmt.Sprintf("user %d: AddGroupMembers", i), err, "user_ids[0]")
			want = []users.EventType{users.EventDeleted}
		case errors.Is(err, users.ErrContention):
			want = []users.EventType{users.EventDeleted}
		default:
			t.Errorf("user %d: AddGroupMembers err = %v", i, err)
		}
		if diff := cmp.Diff(want, byUser[u.ID]); want != nil && diff != "" {
			t.Errorf("user %d (add err %v): events (-want +got):\n%s", i, addErrs[i], diff)
		}
		if got := userGroupIDs(t, s, d, u.ID); len(got) != 0 {
			t.Errorf("user %d, deleted: ListUserGroups = %v, want none", i, got)
		}
	}
	if got := members(t, s, d, g.ID); !slices.Equal(got, []string{keep.ID}) {
		t.Errorf("members after the races = %v, want only [%s]: deleted users are no members", got, keep.ID)
	}
	wantCount(t, s, "after the races", d, g.ID, 1)
}

// testGroupEvents: every group change appends its event in the tenant's
// feed only, in feed order, with the tenant, the group or the member, the
// paths and the trace parent; the same event reads back from the feed of
// every tenant and from GetEvent.
func testGroupEvents(t *testing.T, s GroupStore, tenant string) {
	ctx, traceParent := tracedContext()
	other, third := tenant, tenant+"-b" // A and B
	createTenant(t, s, third, 0)
	from := users.Now()
	u1 := create(t, s, userIn(other, 1))
	u2 := create(t, s, userIn(other, 2))
	src := groupIn(other, 1)
	src.ExternalID = "ext-1"
	g, err := s.CreateGroup(ctx, src)
	if err != nil {
		t.Fatalf("CreateGroup err = %v", err)
	}
	upd, err := s.UpdateGroup(ctx, other, g.ID, func(x *users.Group) error { x.DisplayName = "Renamed"; return nil })
	if err != nil {
		t.Fatalf("UpdateGroup err = %v", err)
	}
	if _, err := s.AddGroupMembers(ctx, other, g.ID, []string{u2.ID, u1.ID}); err != nil {
		t.Fatalf("AddGroupMembers err = %v", err)
	}
	if _, err := s.RemoveGroupMembers(ctx, other, g.ID, []string{u1.ID}); err != nil {
		t.Fatalf("RemoveGroupMembers err = %v", err)
	}
	h := createGroup(t, s, groupIn(other, 2))
	gone, err := s.DeleteGroup(ctx, other, g.ID, nil)
	if err != nil {
		t.Fatalf("DeleteGroup err = %v", err)
	}
	inB := createGroup(t, s, groupIn(third, 1))
	evs := markIn(t, s, other, users.EventPos{})
	to := users.Now()
	checkGroupEvents(t, "tenant A's feed", evs, []wantGroupEvent{
		userEv(users.EventCreated, u1),
		userEv(users.EventCreated, u2),
		groupEv(users.EventGroupCreated, g).traced(traceParent),
		groupEv(users.EventGroupUpdated, upd, "display_name").traced(traceParent),
		memberEv(users.EventGroupMemberAdded, other, g.ID, u2.ID).traced(traceParent),
		memberEv(users.EventGroupMemberAdded, other, g.ID, u1.ID).traced(traceParent),
		memberEv(users.EventGroupMemberRemoved, other, g.ID, u1.ID).traced(traceParent),
		groupEv(users.EventGroupCreated, h),
		groupEv(users.EventGroupDeleted, gone).traced(traceParent),
	}, from, to)
	if gone.MemberCount != 1 || gone.DisplayName != "Renamed" {
		t.Errorf("DeleteGroup returned %+v, want the group as it was: renamed, 1 member", gone)
	}
	// Each reads back the same from GetEvent and from the feed of every
	// tenant.
	var groupEvs []users.Event
	for _, ev := range evs {
		if ev.Type.IsGroupEvent() {
			groupEvs = append(groupEvs, ev)
		}
		got, err := s.GetEvent(context.Background(), ev.ID)
		if err != nil {
			t.Errorf("GetEvent(%s) err = %v", ev.Type, err)
			continue
		}
		if diff := cmp.Diff(&ev, got); diff != "" {
			t.Errorf("GetEvent(%s) (-ListEvents +GetEvent):\n%s", ev.Type, diff)
		}
	}
	var everywhere []users.Event
	for _, ev := range readTenantUntil(t, s, users.AllTenants, users.EventPos{}, func(ev users.Event) bool { return ev.GroupID == inB.ID }) {
		if ev.Type.IsGroupEvent() && ev.Tenant == other {
			everywhere = append(everywhere, ev)
		}
	}
	if diff := cmp.Diff(groupEvs, everywhere); diff != "" {
		t.Errorf("A's group events in the feed of every tenant (-A's feed +every tenant's):\n%s", diff)
	}
	checkGroupEvents(t, "tenant B's feed", markIn(t, s, third, users.EventPos{}), []wantGroupEvent{
		groupEv(users.EventGroupCreated, inB),
	}, from, users.Now())
}

// testGroupTenantPurge: PurgeDeleted purges the users of a deleted tenant
// that has groups and members, and the tenant; a tenant created anew with
// its id has none of the old groups.
func testGroupTenantPurge(t *testing.T, s GroupStore) {
	ctx := context.Background()
	createTenant(t, s, tenantA, 0)
	g := createGroup(t, s, groupIn(tenantA, 1))
	us := makeUsers(t, s, tenantA, 0, 2)
	addMembers(t, s, tenantA, g.ID, us[0].ID, us[1].ID)
	// A group and a member of the default tenant are not touched.
	keepG := createGroup(t, s, NewGroup(2))
	keepU := create(t, s, NewUser(1))
	addMembers(t, s, users.DefaultTenant, keepG.ID, keepU.ID)
	cutoff := base.Add(24 * time.Hour)
	deleteTenant(t, s, tenantA, cutoff.Add(-time.Hour))
	if n := purgeAll(t, s, cutoff); n != 2 {
		t.Errorf("PurgeDeleted removed %d users, want the deleted tenant's 2", n)
	}
	if _, err := s.GetTenant(ctx, tenantA); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("GetTenant(%s) after the purge err = %v, want ErrNotFound", tenantA, err)
	}
	createTenant(t, s, tenantA, 0)
	if got := groupPages(t, s, users.GroupQuery{Tenant: tenantA}, 10); len(got) != 0 {
		t.Errorf("groups of the new %s = %v, want none", tenantA, groupIDs(got))
	}
	if got, err := s.GetGroup(ctx, tenantA, g.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("GetGroup(%s, a group of the purged tenant) = %+v, %v; want ErrNotFound", tenantA, got, err)
	}
	if got := members(t, s, users.DefaultTenant, keepG.ID); !slices.Equal(got, []string{keepU.ID}) {
		t.Errorf("members of the default tenant's group after the purge = %v, want [%s]", got, keepU.ID)
	}
}

// testGroupCancelled: every method fails with a cancelled context, and the
// changes change nothing and append nothing.
func testGroupCancelled(t *testing.T, s GroupStore, tenant string) {
	bg := context.Background()
	d := tenant
	g := createGroup(t, s, groupIn(tenant, 1))
	u := create(t, s, userIn(tenant, 1))
	v := create(t, s, userIn(tenant, 2))
	g = addMembers(t, s, d, g.ID, u.ID)
	since := feedEnd(t, s, d)
	ctx, cancel := context.WithCancel(bg)
	cancel()

	fresh := groupIn(tenant, 2)
	if _, err := s.CreateGroup(ctx, cloneGroup(fresh)); err == nil {
		t.Error("CreateGroup with a cancelled context succeeded")
	}
	if _, err := s.GetGroup(ctx, d, g.ID); err == nil {
		t.Error("GetGroup with a cancelled context succeeded")
	}
	if _, err := s.ListGroups(ctx, users.GroupQuery{Tenant: d, Limit: 10}); err == nil {
		t.Error("ListGroups with a cancelled context succeeded")
	}
	if _, err := s.UpdateGroup(ctx, d, g.ID, func(x *users.Group) error { x.DisplayName = "changed"; return nil }); err == nil {
		t.Error("UpdateGroup with a cancelled context succeeded")
	}
	if _, err := s.DeleteGroup(ctx, d, g.ID, nil); err == nil {
		t.Error("DeleteGroup with a cancelled context succeeded")
	}
	if _, err := s.AddGroupMembers(ctx, d, g.ID, []string{v.ID}); err == nil {
		t.Error("AddGroupMembers with a cancelled context succeeded")
	}
	if _, err := s.RemoveGroupMembers(ctx, d, g.ID, []string{u.ID}); err == nil {
		t.Error("RemoveGroupMembers with a cancelled context succeeded")
	}
	if _, err := s.ListGroupMembers(ctx, d, g.ID, "", 10); err == nil {
		t.Error("ListGroupMembers with a cancelled context succeeded")
	}
	if _, err := s.ListUserGroups(ctx, d, u.ID, "", 10); err == nil {
		t.Error("ListUserGroups with a cancelled context succeeded")
	}
	if diff := cmp.Diff(g, getGroup(t, s, d, g.ID)); diff != "" {
		t.Errorf("group after cancelled calls (-want +got):\n%s", diff)
	}
	if got := members(t, s, d, g.ID); !slices.Equal(got, []string{u.ID}) {
		t.Errorf("members after cancelled calls = %v, want [%s]", got, u.ID)
	}
	if _, err := s.GetGroup(bg, d, fresh.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("a group created with a cancelled context: GetGroup err = %v, want ErrNotFound", err)
	}
	wantNoEvents(t, s, "calls with a cancelled context", d, since)
}
