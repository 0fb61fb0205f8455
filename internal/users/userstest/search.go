package userstest

// The tests of what ListUsers and CountUsers select by the profile fields:
// filters (users.ParseFilter's grammar, over every profile field and the
// attributes), search (users.ParseSearch: folding, the fields searched,
// ranks, pages, literal characters) and counts. testSearch runs them on one
// store, each in a tenant of its own.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/usersd/usersd/internal/users"
)

// testSearch runs the filter, search and count tests.
func testSearch(t *testing.T, s UserStore) {
	runInTenants(t, s, []tenantTest{
		{"ProfileFilters", "search-filters", testProfileFilters},
		{"Fold", "search-fold", testSearchFold},
		{"Fields", "search-fields", testSearchFields},
		{"Rank", "search-rank", testSearchRank},
		{"Paging", "search-paging", testSearchPaging},
		{"NoSpan", "search-no-span", testSearchNoSpan},
		{"Literal", "search-literal", testSearchLiteral},
		{"Changes", "search-changes", testSearchChanges},
		{"Imported", "search-imported", testSearchImported},
		{"Tiers", "search-tiers", testSearchTiers},
		{"Count", "search-count", testSearchCount},
	})
}

// cast is a set of users known by names, for readable failures.
type cast struct {
	byName map[string]*users.User
	nameOf map[string]string // by id
}

func newCast() *cast {
	return &cast{byName: map[string]*users.User{}, nameOf: map[string]string{}}
}

// add creates u under the name, and returns it as stored.
func (c *cast) add(t *testing.T, s users.UserStore, name string, u *users.User) *users.User {
	t.Helper()
	got := create(t, s, u)
	c.set(name, got)
	return got
}

// set records u under the name.
func (c *cast) set(name string, u *users.User) {
	c.byName[name] = u
	c.nameOf[u.ID] = name
}

// names returns the names of us, in their order; a user not in the cast
// is "?" and its tenant and id.
func (c *cast) names(us []*users.User) []string {
	out := make([]string, len(us))
	for i, u := range us {
		n, ok := c.nameOf[u.ID]
		if !ok {
			n = "?" + u.Tenant + "/" + u.ID
		}
		out[i] = n
	}
	return out
}

// del soft-deletes the named user.
func (c *cast) del(t *testing.T, s users.UserStore, name string) {
	t.Helper()
	u := c.byName[name]
	d, err := s.UpdateUser(context.Background(), u.Tenant, u.ID, softDelete)
	if err != nil {
		t.Fatalf("UpdateUser(delete %s) err = %v", name, err)
	}
	c.byName[name] = d
}

// parseFilter parses a filter, which must be valid.
func parseFilter(t *testing.T, f string) users.Filter {
	t.Helper()
	got, err := users.ParseFilter(f)
	if err != nil {
		t.Fatalf("ParseFilter(%q) err = %v", f, err)
	}
	return got
}

// parseSearch parses a query, which must be valid.
func parseSearch(t *testing.T, q string) *users.Search {
	t.Helper()
	got, err := users.ParseSearch(q)
	if err != nil {
		t.Fatalf("ParseSearch(%q) err = %v", q, err)
	}
	return got
}

// searchQuery returns the ListQuery of a search in the tenant, in rank
// order.
func searchQuery(t *testing.T, tenant, query string) users.ListQuery {
	t.Helper()
	return users.ListQuery{Tenant: tenant, Search: parseSearch(t, query), Order: users.Order{Field: users.OrderRank}, Limit: 1000}
}

// list runs q, which must succeed.
func list(t *testing.T, s users.UserStore, q users.ListQuery) []*users.User {
	t.Helper()
	got, err := s.ListUsers(context.Background(), q)
	if err != nil {
		t.Fatalf("ListUsers(%+v) err = %v", q, err)
	}
	return got
}

// searchPages reads every page of q, a search, pageSize at a time, with
// the cursors the service makes: the rank and id of a page's last user.
func searchPages(t *testing.T, s users.UserStore, q users.ListQuery, pageSize int) []*users.User {
	t.Helper()
	var out []*users.User
	q.Limit = pageSize
	for range 1000 {
		got := list(t, s, q)
		out = append(out, got...)
		if len(got) < pageSize {
			return out
		}
		last := got[len(got)-1]
		q.After = &users.Cursor{Rank: users.SearchRank(q.Search, users.SearchKey(last)), ID: last.ID}
	}
	t.Fatal("ListUsers did not reach the last page")
	return nil
}

// rankOrder returns us in the order of a search's results: by rank
// (users.SearchRank over users.SearchKey), then id.
func rankOrder(sr *users.Search, us []*users.User) []*users.User {
	out := slices.Clone(us)
	slices.SortFunc(out, func(a, b *users.User) int {
		if c := users.SearchRank(sr, users.SearchKey(a)) - users.SearchRank(sr, users.SearchKey(b)); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// wantNames fails the test unless got are the named users, in order.
func (c *cast) wantNames(t *testing.T, what string, got []*users.User, want ...string) {
	t.Helper()
	if diff := cmp.Diff(want, c.names(got), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

// seedProfiles stores users with varied profiles in the tenant for the
// filter tests: ada, bob, cy, dee (no profile), eve, and fay, deleted.
func seedProfiles(t *testing.T, s UserStore, tenant string) *cast {
	c := newCast()
	mk := func(name string, n int, p users.Profile) {
		u := userIn(tenant, n)
		u.DisplayName = strings.ToUpper(name[:1]) + name[1:]
		u.Profile = p
		c.add(t, s, name, u)
	}
	mk("ada", 1, users.Profile{
		ExternalID: "hr-1", GivenName: "Ada", FamilyName: "Lovelace", PhoneNumber: "+14155550100",
		Locale: "en-US", TimeZone: "Europe/London", EmailVerified: true, PhoneVerified: true,
		Attributes: attrs(t, `{"age": 40, "dept": "R&D", "active": true, "team": {"lead": "ada", "size": 5},
			"nick": null, "tags": ["a", "b"], "score": 9.5, "hundred": 1e2}`),
	})
	mk("bob", 2, users.Profile{
		ExternalID: "hr-2", GivenName: "Bob", FamilyName: "Builder", PhoneNumber: "+442079460958",
		Locale: "en-GB", TimeZone: "Europe/Paris", PhoneVerified: true,
		Attributes: attrs(t, `{"age": "40", "dept": "sales", "active": false, "team": {"lead": null}}`),
	})
	mk("cy", 3, users.Profile{
		GivenName: "Cy", Locale: "fr", EmailVerified: true,
		Attributes: attrs(t, `{"age": 30.5, "dept": "Zeta", "team": "none", "level": {"a": {"b": {"c": 3}}}}`),
	})
	mk("dee", 4, users.Profile{})
	mk("eve", 5, users.Profile{
		ExternalID: "hr-5", GivenName: "Ève", FamilyName: "Lovelace", Locale: "de-DE", TimeZone: "America/New_York",
		Attributes: attrs(t, `{"age": -1, "dept": "é", "active": "true", "team": {"size": "5"}, "name": "Zoë"}`),
	})
	mk("fay", 6, users.Profile{
		ExternalID: "hr-6", GivenName: "Ada", EmailVerified: true,
		Attributes: attrs(t, `{"age": 50, "dept": "R&D"}`),
	})
	c.del(t, s, "fay")
	return c
}

// testProfileFilters lists the users of seedProfiles with filters over
// every profile field, through users.ParseFilter, and counts them.
func testProfileFilters(t *testing.T, s UserStore, tenant string) {
	c := seedProfiles(t, s, tenant)
	const all = true // ShowDeleted
	tests := []struct {
		filter      string
		showDeleted bool
		want        []string // in creation order
	}{
		{`external_id = "hr-1"`, false, []string{"ada"}},
		{`external_id = hr-1`, false, []string{"ada"}},
		{`externalId = "hr-2"`, false, []string{"bob"}},
		{`external_id = "HR-1"`, false, nil},
		{`external_id != "hr-1"`, false, []string{"bob", "cy", "dee", "eve"}},
		{`external_id:*`, false, []string{"ada", "bob", "eve"}},
		{`external_id:*`, all, []string{"ada", "bob", "eve", "fay"}},
		{`external_id = ""`, false, []string{"cy", "dee"}},
		{`external_id != ""`, false, []string{"ada", "bob", "eve"}},
		{`external_id = "hr-6"`, false, nil},
		{`external_id = "hr-6"`, all, []string{"fay"}},
		{`given_name = "Ada"`, false, []string{"ada"}},
		{`given_name = "Ada"`, all, []string{"ada", "fay"}},
		{`given_name = "ada"`, false, nil},
		{`given_name = "Ève"`, false, []string{"eve"}},
		{`givenName != "Ada"`, false, []string{"bob", "cy", "dee", "eve"}},
		{`given_name:*`, false, []string{"ada", "bob", "cy", "eve"}},
		{`given_name = ""`, false, []string{"dee"}},
		{`family_name = Lovelace`, false, []string{"ada", "eve"}},
		{`family_name != Lovelace`, false, []string{"bob", "cy", "dee"}},
		{`familyName:*`, false, []string{"ada", "bob", "eve"}},
		{`phone_number = "+1 415 555 0100"`, false, []string{"ada"}},
		{`phone_number = +14155550100`, false, []string{"ada"}},
		{`phone_number != "+44 20 7946 0958"`, false, []string{"ada", "cy", "dee", "eve"}},
		{`phone_number:*`, false, []string{"ada", "bob"}},
		{`phoneNumber = ""`, false, []string{"cy", "dee", "eve"}},
		{`locale = en-us`, false, []string{"ada"}},
		{`locale = "fr"`, false, []string{"cy"}},
		{`locale != en-GB`, false, []string{"ada", "cy", "dee", "eve"}},
		{`locale:*`, false, []string{"ada", "bob", "cy", "eve"}},
		{`time_zone = Europe/Paris`, false, []string{"bob"}},
		{`timeZone:*`, false, []string{"ada", "bob", "eve"}},
		{`time_zone = ""`, false, []string{"cy", "dee"}},
		{`email_verified = true`, false, []string{"ada", "cy"}},
		{`email_verified = true`, all, []string{"ada", "cy", "fay"}},
		{`email_verified = false`, false, []string{"bob", "dee", "eve"}},
		{`emailVerified != true`, false, []string{"bob", "dee", "eve"}},
		{`phone_verified = true`, false, []string{"ada", "bob"}},
		{`phoneVerified = false`, false, []string{"cy", "dee", "eve"}},
		{`phone_verified != false`, false, []string{"ada", "bob"}},
		// Numbers, and a string that reads as one (bob's "40"), which no
		// numeric comparison matches.
		{`attributes.age > 30`, false, []string{"ada", "cy"}},
		{`attributes.age >= 40`, false, []string{"ada"}},
		{`attributes.age >= 40`, all, []string{"ada", "fay"}},
		{`attributes.age < 40`, false, []string{"cy", "eve"}},
		{`attributes.age <= 30.5`, false, []string{"cy", "eve"}},
		{`attributes.age = 40`, false, []string{"ada"}},
		{`attributes.age = 40.0`, false, []string{"ada"}},
		{`attributes.age != 40`, false, []string{"cy", "eve"}},
		{`attributes.age = -1`, false, []string{"eve"}},
		{`attributes.age = "40"`, false, []string{"bob"}},
		{`attributes.age != "40"`, false, nil},
		{`attributes.age > "3"`, false, []string{"bob"}},
		{`attributes.age:*`, false, []string{"ada", "bob", "cy", "eve"}},
		{`attributes.score > 9`, false, []string{"ada"}},
		{`attributes.score = 9.5`, false, []string{"ada"}},
		{`attributes.hundred = 100`, false, []string{"ada"}},
		{`attributes.hundred >= 1e2`, false, []string{"ada"}},
		// Strings compare bytewise: upper case before lower, é after both.
		{`attributes.dept = "R&D"`, false, []string{"ada"}},
		{`attributes.dept = "R&D"`, all, []string{"ada", "fay"}},
		{`attributes.dept != "R&D"`, false, []string{"bob", "cy", "eve"}},
		{`attributes.dept < "a"`, false, []string{"ada", "cy"}},
		{`attributes.dept >= "s"`, false, []string{"bob", "eve"}},
		{`attributes.dept > "Z"`, false, []string{"bob", "cy", "eve"}},
		{`attributes.dept <= "R&D"`, false, []string{"ada"}},
		{`attributes.dept = "é"`, false, []string{"eve"}},
		{`attributes.name = "Zoë"`, false, []string{"eve"}},
		{`attributes.name = "Zoe"`, false, nil},
		// Booleans, and a string that reads as one (eve's "true").
		{`attributes.active = true`, false, []string{"ada"}},
		{`attributes.active = false`, false, []string{"bob"}},
		{`attributes.active != true`, false, []string{"bob"}},
		{`attributes.active != false`, false, []string{"ada"}},
		{`attributes.active = "true"`, false, []string{"eve"}},
		{`attributes.active:*`, false, []string{"ada", "bob", "eve"}},
		// Nested paths, objects and arrays, null.
		{`attributes.team.lead = ada`, false, []string{"ada"}},
		{`attributes.team.lead = null`, false, []string{"bob"}},
		{`attributes.team.lead != null`, false, []string{"ada"}},
		{`attributes.team.lead != "bob"`, false, []string{"ada"}},
		{`attributes.team.lead:*`, false, []string{"ada"}},
		{`attributes.team.size >= 5`, false, []string{"ada"}},
		{`attributes.team.size = "5"`, false, []string{"eve"}},
		{`attributes.team:*`, false, []string{"ada", "bob", "cy", "eve"}},
		{`attributes.team = "none"`, false, []string{"cy"}},
		{`attributes.level.a.b.c = 3`, false, []string{"cy"}},
		{`attributes.level.a.b.c > 2.5`, false, []string{"cy"}},
		{`attributes.level.a.b:*`, false, []string{"cy"}},
		{`attributes.level.a.b = 3`, false, nil},
		{`attributes.nick = null`, false, []string{"ada"}},
		{`attributes.nick:*`, false, nil},
		{`attributes.nick != null`, false, nil},
		{`attributes.tags:*`, false, []string{"ada"}},
		{`attributes.tags = "a"`, false, nil},
		// Missing paths match nothing, not even !=.
		{`attributes.missing = 1`, false, nil},
		{`attributes.missing != 1`, false, nil},
		{`attributes.missing != "x"`, false, nil},
		{`attributes.missing:*`, false, nil},
		{`attributes.missing.deep.path < 3`, false, nil},
		{`attributes.age.x:*`, false, nil},
		{`attributes.dept.x = "R&D"`, false, nil},
		// Conjunctions.
		{`email_verified = true AND attributes.age > 30 AND external_id:*`, false, []string{"ada"}},
		{`family_name = Lovelace AND attributes.dept != "R&D"`, false, []string{"eve"}},
		{`given_name = "Ada" AND state = DELETED`, all, []string{"fay"}},
		{`phone_verified = true AND email_verified = false AND locale = "en-GB"`, false, []string{"bob"}},
		{`external_id != "hr-2" AND given_name:* AND attributes.team:*`, false, []string{"ada", "cy", "eve"}},
	}
	for _, tt := range tests {
		q := users.ListQuery{Tenant: tenant, Filter: parseFilter(t, tt.filter), ShowDeleted: tt.showDeleted}
		c.wantNames(t, fmt.Sprintf("filter %s (show deleted %v)", tt.filter, tt.showDeleted), page(t, s, q, 2), tt.want...)
		n, exact, err := s.CountUsers(context.Background(), q, 100)
		if err != nil || n != int64(len(tt.want)) || !exact {
			t.Errorf("CountUsers(%s, show deleted %v) = %d, %v, %v; want %d, exact", tt.filter, tt.showDeleted, n, exact, err, len(tt.want))
		}
	}
}

// testSearchFold searches case- and accent-insensitively.
func testSearchFold(t *testing.T, s UserStore, tenant string) {
	c := newCast()
	zoe := userIn(tenant, 1)
	zoe.Email, zoe.DisplayName, zoe.GivenName, zoe.FamilyName = "zq1@example.org", "Zoë Ångström", "Zoë", "Ångström"
	c.add(t, s, "zoë", zoe)
	zoey := userIn(tenant, 2)
	zoey.Email, zoey.DisplayName = "zs@example.org", "Zoey Smith"
	c.add(t, s, "zoey", zoey)
	other := userIn(tenant, 3)
	other.Email, other.DisplayName = "other@example.org", "Someone Else"
	c.add(t, s, "other", other)
	c.add(t, s, "elsewhere", userIn(tenant, 4)) // User004@Example.com

	for _, tt := range []struct {
		query string
		want  []string
	}{
		{"zoe", []string{"zoë", "zoey"}}, // zoë's given name equals it: rank exact
		{"ZOË", []string{"zoë", "zoey"}},
		{"Zoe\u0308", []string{"zoë", "zoey"}}, // decomposed
		{"zoey", []string{"zoey"}},
		{"angs", []string{"zoë"}},
		{"ÅNGSTRÖM", []string{"zoë"}},
		{"ångström", []string{"zoë"}},
		{"zoë ång", []string{"zoë"}},
		{"ström", []string{"zoë"}},
		{"EXAMPLE.ORG", []string{"zoë", "zoey", "other"}},
		{"example.com", []string{"elsewhere"}},
		{"someone ELSE", []string{"other"}},
		{"zoe angstrom smith", nil},
	} {
		c.wantNames(t, "search "+tt.query, list(t, s, searchQuery(t, tenant, tt.query)), tt.want...)
	}
}

// testSearchFields searches each field that search covers: email, display
// name, given name, family name, external id; and none other.
func testSearchFields(t *testing.T, s UserStore, tenant string) {
	c := newCast()
	mk := func(name string, n int, fn func(u *users.User)) {
		u := userIn(tenant, n)
		fn(u)
		c.add(t, s, name, u)
	}
	mk("email", 1, func(u *users.User) { u.Email = "Wombat77@example.com" })
	mk("display", 2, func(u *users.User) { u.DisplayName = "Kestrel Display" })
	mk("given", 3, func(u *users.User) { u.GivenName = "Marmoset" })
	mk("family", 4, func(u *users.User) { u.FamilyName = "Quokkason" })
	mk("external", 5, func(u *users.User) { u.ExternalID = "EXT-Narwhal-9" })
	mk("unsearched", 6, func(u *users.User) {
		u.Labels = map[string]string{"animal": "pangolin"}
		u.Locale, u.TimeZone, u.PhoneNumber = "en-US", "Pacific/Galapagos", "+14155550100"
		u.Attributes = attrs(t, `{"animal": "pangolin"}`)
	})
	for _, tt := range []struct{ query, want string }{
		{"wombat", "email"},
		{"WOMBAT77@EXAMPLE", "email"},
		{"kestrel", "display"},
		{"marmo", "given"},
		{"okkas", "family"},
		{"narwhal", "external"},
		{"ext-narwhal-9", "external"},
	} {
		c.wantNames(t, "search "+tt.query, list(t, s, searchQuery(t, tenant, tt.query)), tt.want)
	}
	for _, q := range []string{"pangolin", "galapagos", "pacific", "4155550100"} {
		c.wantNames(t, "search "+q+" (not a searched field)", list(t, s, searchQuery(t, tenant, q)))
	}
}

// testSearchRank orders results: whole-field matches, then prefixes, then
// substrings, each by id.
func testSearchRank(t *testing.T, s UserStore, tenant string) {
	c := newCast()
	mk := func(name string, n int, fn func(u *users.User)) {
		u := userIn(tenant, n)
		fn(u)
		c.add(t, s, name, u)
	}
	mk("subA", 1, func(u *users.User) { u.DisplayName = "The Lynx Hotel" })
	mk("exactA", 2, func(u *users.User) { u.DisplayName = "Lynx" })
	mk("prefixA", 3, func(u *users.User) { u.Email = "lynx.p@example.com" })
	mk("subB", 4, func(u *users.User) { u.ExternalID = "id-lynx" })
	mk("exactB", 5, func(u *users.User) { u.GivenName = "LYNX" })
	mk("prefixB", 6, func(u *users.User) { u.FamilyName = "Lynxford" })
	mk("exactC", 7, func(u *users.User) { u.DisplayName, u.GivenName = "Big Lynx", "lynx" }) // the best of its fields
	mk("prefixC", 8, func(u *users.User) { u.Email, u.FamilyName = "x-lynx@example.com", "Lynxley" })
	mk("exactD", 9, func(u *users.User) { u.ExternalID = "LYNX" })
	mk("exactE", 10, func(u *users.User) { u.FamilyName = "Lÿnx" })
	mk("subC", 11, func(u *users.User) { u.Email = "bobcat-lynx-ocelot@example.com" })
	mk("none", 12, func(u *users.User) { u.DisplayName = "Lyn X" })

	q := searchQuery(t, tenant, "lynx")
	got := list(t, s, q)
	c.wantNames(t, "search lynx", got,
		"exactA", "exactB", "exactC", "exactD", "exactE",
		"prefixA", "prefixB", "prefixC",
		"subA", "subB", "subC")
	// The order is users.SearchRank's, then the ids'.
	var matched []*users.User
	for _, u := range c.byName {
		if u.ID != c.byName["none"].ID {
			matched = append(matched, u)
		}
	}
	if diff := cmp.Diff(c.names(rankOrder(q.Search, matched)), c.names(got)); diff != "" {
		t.Errorf("search lynx: not in the order of SearchRank, then id (-want +got):\n%s", diff)
	}
	for _, u := range got {
		if users.SearchRank(q.Search, users.SearchKey(u)) != map[byte]int{'e': users.RankExact, 'p': users.RankPrefix, 's': users.RankSubstring}[c.nameOf[u.ID][0]] {
			t.Errorf("user %s: SearchRank = %d, not the rank its name says", c.nameOf[u.ID], users.SearchRank(q.Search, users.SearchKey(u)))
		}
	}
	// The ids are in the order of creation.
	if !slices.IsSortedFunc(got[:5], func(a, b *users.User) int { return strings.Compare(a.ID, b.ID) }) {
		t.Errorf("exact matches not by id: %v", ids(got[:5]))
	}
	// A page of one rank's users ends within it; the next starts after.
	first := list(t, s, users.ListQuery{Tenant: tenant, Search: q.Search, Order: q.Order, Limit: 2})
	c.wantNames(t, "search lynx, limit 2", first, "exactA", "exactB")
	next := q
	next.After = &users.Cursor{Rank: users.RankExact, ID: first[1].ID}
	next.Limit = 4
	c.wantNames(t, "search lynx after exactB", list(t, s, next), "exactC", "exactD", "exactE", "prefixA")
	next.After = &users.Cursor{Rank: users.RankPrefix, ID: c.byName["prefixC"].ID}
	c.wantNames(t, "search lynx after prefixC", list(t, s, next), "subA", "subB", "subC")
	next.After = &users.Cursor{Rank: users.RankSubstring, ID: c.byName["subC"].ID}
	c.wantNames(t, "search lynx after subC", list(t, s, next))
}

// testSearchPaging pages through a search of 25 users of every rank, with
// other users around: other tenants', deleted ones, ones that do not match.
func testSearchPaging(t *testing.T, s UserStore, tenant string) {
	other := tenant + "-other"
	createTenant(t, s, other, 0)
	c := newCast()
	var live, verified, deleted []*users.User
	for i := range 25 {
		u := userIn(tenant, i)
		switch i % 3 {
		case 0:
			u.DisplayName = "Pager" // exact
		case 1:
			u.GivenName = fmt.Sprintf("Pagerduty%d", i) // prefix
		case 2:
			u.FamilyName = fmt.Sprintf("X%dpager", i) // substring
		}
		u.EmailVerified = i%2 == 0
		u = c.add(t, s, fmt.Sprintf("p%02d", i), u)
		live = append(live, u)
		if u.EmailVerified {
			verified = append(verified, u)
		}
		// Users around it: another tenant's, one that does not match.
		theirs := userIn(other, i)
		theirs.DisplayName = "Pager"
		c.add(t, s, fmt.Sprintf("other%02d", i), theirs)
		c.add(t, s, fmt.Sprintf("miss%02d", i), userIn(tenant, 100+i))
		if i%5 == 4 {
			d := userIn(tenant, 200+i)
			d.DisplayName = "Pager (left)"
			d.EmailVerified = true
			name := fmt.Sprintf("gone%02d", i)
			c.add(t, s, name, d)
			c.del(t, s, name)
			deleted = append(deleted, c.byName[name])
		}
	}
	defaultUser := NewUser(1)
	defaultUser.DisplayName = "Pager"
	c.add(t, s, "default", defaultUser)

	q := searchQuery(t, tenant, "pager")
	for _, tt := range []struct {
		what        string
		filter      string
		showDeleted bool
		want        []*users.User
	}{
		{"live", "", false, live},
		{"show deleted", "", true, slices.Concat(live, deleted)},
		{"filter", "email_verified = true", false, verified},
		{"filter, show deleted", "email_verified = true", true, slices.Concat(verified, deleted)},
		{"filter, deleted only", "state = DELETED", true, deleted},
		{"filter matching none", `external_id = "x"`, false, nil},
	} {
		q := q
		q.Filter = parseFilter(t, tt.filter)
		q.ShowDeleted = tt.showDeleted
		want := c.names(rankOrder(q.Search, tt.want))
		whole := list(t, s, q)
		if diff := cmp.Diff(want, c.names(whole), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: search pager (-want +got):\n%s", tt.what, diff)
		}
		for _, size := range []int{7, 1, 25} {
			if diff := cmp.Diff(want, c.names(searchPages(t, s, q, size)), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s: search pager in pages of %d (-want +got):\n%s", tt.what, size, diff)
			}
		}
	}
	// The other tenant's search sees its own users only.
	theirs := list(t, s, searchQuery(t, other, "pager"))
	if len(theirs) != 25 {
		t.Errorf("search pager in the other tenant: %d users, want 25", len(theirs))
	}
	for _, u := range theirs {
		if u.Tenant != other {
			t.Errorf("search pager in the other tenant returned %s of %s", c.nameOf[u.ID], u.Tenant)
		}
	}
	// A deleted tenant's users are out of reach.
	deleteTenant(t, s, other, base.Add(time.Hour))
	got, err := s.ListUsers(context.Background(), searchQuery(t, other, "pager"))
	wantNoUsers(t, "search in a deleted tenant", got, err)
}

// testSearchNoSpan checks that no match spans two fields.
func testSearchNoSpan(t *testing.T, s UserStore, tenant string) {
	c := newCast()
	u := userIn(tenant, 1)
	u.Email, u.DisplayName, u.GivenName, u.FamilyName, u.ExternalID = "span-tail@endpart.io", "Headpart Of Name", "Gamma", "Delta", "Epsilon"
	c.add(t, s, "u", u)
	for _, q := range []string{
		"endpart.ioheadpart", "endpart.io headpart", "io headpart", "part.io head", // email, display name
		"of namegamma", "name gamma", // display name, given name
		"gammadelta", "gamma delta", // given name, family name
		"deltaepsilon", "delta epsilon", // family name, external id
		"epsilonspan", // the last field, the first
	} {
		c.wantNames(t, "search "+q, list(t, s, searchQuery(t, tenant, q)))
	}
	for _, q := range []string{"part.io", "headpart", "of name", "gamma", "delta", "epsilon", "span-tail"} {
		c.wantNames(t, "search "+q, list(t, s, searchQuery(t, tenant, q)), "u")
	}
}

// testSearchLiteral searches for text holding the characters that LIKE,
// FTS5 or quoting give a meaning: each is found literally, and the users
// that the meaning would find are not.
func testSearchLiteral(t *testing.T, s UserStore, tenant string) {
	c := newCast()
	for i, d := range []struct{ name, display string }{
		{"percent", "100%_off deal"},
		{"percent decoy", "1000 bonus offer"}, // LIKE %100%_o%
		{"underscore", "snake_case_name"},
		{"underscore decoy", "snakeXcase"}, // LIKE %snake_ca%
		{"backslash", `path\to\file`},
		{"backslash decoy", "pathtop"}, // LIKE %path\to% with \ as LIKE's escape
		{"quote", `say "cheese" please`},
		{"quote decoy", "cheese only"},
		{"percents", "50%%%abc"},
		{"abc", "abc"},
		{"abc inside", "xabcx"},
		{"star", "c++ AND c# NOT java*"},
		{"star decoy", "Not JavaScript"}, // FTS5 java*
		{"caret", "caret^abcde"},
		{"caret decoy", "abcde first"}, // FTS5 ^abcde
		{"parens", "NEAR(abc def)"},
		{"colon", "title: body"},
	} {
		u := userIn(tenant, i)
		u.DisplayName = d.display
		c.add(t, s, d.name, u)
	}
	for _, tt := range []struct {
		query string
		want  []string
	}{
		{"100%_o", []string{"percent"}},
		{"100%_off", []string{"percent"}},
		{"snake_ca", []string{"underscore"}},
		{"_case_", []string{"underscore"}},
		{`path\to`, []string{"backslash"}},
		{`to\file`, []string{"backslash"}},
		{`"cheese"`, []string{"quote"}},
		{`say "cheese`, []string{"quote"}},
		{"%%%abc", []string{"percents"}},
		{"%abc", []string{"percents"}},
		{"abc", []string{"abc", "percents", "abc inside", "caret", "caret decoy", "parens"}},
		{"java*", []string{"star"}},
		{"not java*", []string{"star"}},
		{"c++ and c#", []string{"star"}},
		{"^abcde", []string{"caret"}},
		{"near(abc", []string{"parens"}},
		{"abc def)", []string{"parens"}},
		{"title:", []string{"colon"}},
		{"title: body", []string{"colon"}},
		{"%%%xyz", nil},
		{"___abc", nil},
	} {
		got := list(t, s, searchQuery(t, tenant, tt.query))
		sr := parseSearch(t, tt.query)
		var want []*users.User
		for _, n := range tt.want {
			want = append(want, c.byName[n])
		}
		c.wantNames(t, "search "+tt.query, got, c.names(rankOrder(sr, want))...)
	}
}

// testSearchChanges checks that search follows changes: updates, deletes,
// purges.
func testSearchChanges(t *testing.T, s UserStore, tenant string) {
	ctx := context.Background()
	c := newCast()
	u := userIn(tenant, 1)
	u.DisplayName = "Ocelot Person"
	u = c.add(t, s, "cat", u)
	keep := userIn(tenant, 2)
	keep.DisplayName = "Ocelot Keeper"
	c.add(t, s, "keeper", keep)
	search := func(q string, showDeleted bool) []*users.User {
		lq := searchQuery(t, tenant, q)
		lq.ShowDeleted = showDeleted
		return list(t, s, lq)
	}
	update := func(fn func(x *users.User)) {
		t.Helper()
		if _, err := s.UpdateUser(ctx, tenant, u.ID, func(x *users.User) error { fn(x); return nil }); err != nil {
			t.Fatalf("UpdateUser err = %v", err)
		}
	}
	c.wantNames(t, "search ocelot", search("ocelot", false), "cat", "keeper")
	update(func(x *users.User) { x.DisplayName = "Caracal Person" })
	c.wantNames(t, "search ocelot after the rename", search("ocelot", false), "keeper")
	c.wantNames(t, "search caracal after the rename", search("caracal", false), "cat")
	update(func(x *users.User) { x.DisplayName = "CARACAL PERSON" }) // the same folded
	c.wantNames(t, "search caracal after a change of case", search("caracal person", false), "cat")
	update(func(x *users.User) { x.ExternalID, x.GivenName, x.FamilyName = "ext-serval", "Margay", "Jaguarundi" })
	for _, q := range []string{"serval", "margay", "jaguarundi"} {
		c.wantNames(t, "search "+q+" after it was set", search(q, false), "cat")
	}
	update(func(x *users.User) { x.Profile = users.Profile{} })
	for _, q := range []string{"serval", "margay", "jaguarundi"} {
		c.wantNames(t, "search "+q+" after it was cleared", search(q, false))
	}
	update(func(x *users.User) { x.Email = "ocelot.again@example.com" })
	c.wantNames(t, "search ocelot after the change of address", search("ocelot", false), "cat", "keeper")

	// Deleted: found only when deleted users are shown.
	longAgo := base.Add(-100 * 24 * time.Hour)
	update(func(x *users.User) { x.State, x.DeleteTime, x.UpdateTime = users.StateDeleted, longAgo, longAgo })
	c.wantNames(t, "search ocelot, the user deleted", search("ocelot", false), "keeper")
	c.wantNames(t, "search ocelot, the user deleted, show deleted", search("ocelot", true), "cat", "keeper")
	// Purged: gone. The cutoff purges no user that the other tests of the
	// store deleted: they delete at the time of their users.
	if _, err := s.PurgeDeleted(ctx, base.Add(-50*24*time.Hour), 100); err != nil {
		t.Fatalf("PurgeDeleted err = %v", err)
	}
	c.wantNames(t, "search ocelot, the user purged, show deleted", search("ocelot", true), "keeper")
	again := userIn(tenant, 3)
	again.DisplayName = "Ocelot Person"
	c.add(t, s, "again", again)
	c.wantNames(t, "search ocelot person after the purge", search("ocelot person", true), "again")
}

// testSearchImported finds imported users by every field search covers.
func testSearchImported(t *testing.T, s UserStore, tenant string) {
	fs := asFullStore(t, s)
	c := newCast()
	op, chunks := importIn(tenant, tenant+"-req", 2)
	if _, err := fs.CreateImport(context.Background(), op, importKey(op, "fp"), chunks); err != nil {
		t.Fatalf("CreateImport err = %v", err)
	}
	valid := ImportedUsers(chunks[0])
	valid[0].User.Profile = users.Profile{ExternalID: "Imp-Ext-Tapir", GivenName: "Okapi", FamilyName: "Ängel"}
	valid[1].User.DisplayName = "Imported Dugong"
	importChunk(t, fs, op.ID, 0, valid, nil)
	for i, v := range valid {
		u := v.User.Clone()
		u.Tenant = tenant
		c.set(fmt.Sprintf("row%d", i), u)
	}
	for _, tt := range []struct{ query, want string }{
		{"tapir", "row0"}, {"okapi", "row0"}, {"angel", "row0"}, {"dugong", "row1"},
		{strings.ToLower(valid[1].User.Email), "row1"},
	} {
		c.wantNames(t, "search "+tt.query, list(t, s, searchQuery(t, tenant, tt.query)), tt.want)
	}
}

// testSearchTiers pages through searches in a tenant of 2,700 users,
// enough for both ways of reading a tier (usersql.SearchPage): matches so
// common that a page of them lies in the first users by id, and matches
// so rare, and so late in id order, that only the index finds them.
func testSearchTiers(t *testing.T, s UserStore, tenant string) {
	fs := asFullStore(t, s)
	c := newCast()
	op, chunks := importIn(tenant, tenant+"-req", 1000, 1000, 700)
	if _, err := fs.CreateImport(context.Background(), op, importKey(op, "fp"), chunks); err != nil {
		t.Fatalf("CreateImport err = %v", err)
	}
	var all []*users.User
	valid := make([][]users.ImportedUser, len(chunks))
	for i, ch := range chunks {
		valid[i] = ImportedUsers(ch)
		for _, v := range valid[i] {
			all = append(all, v.User)
		}
	}
	// Names by each user's place in id order.
	byID := slices.Clone(all)
	slices.SortFunc(byID, func(a, b *users.User) int { return strings.Compare(a.ID, b.ID) })
	for p, u := range byID {
		u.EmailVerified = p%5 == 0 // a filter that leaves out most candidates
		switch {
		case p%4 == 0:
			u.GivenName = fmt.Sprintf("Walkabout%d", p) // common prefix
		case p%4 == 1:
			u.FamilyName = fmt.Sprintf("X%dwalkab", p) // common substring
		case p%300 == 7:
			u.FamilyName = fmt.Sprintf("Midpoint%d", p) // a page in a few windows
		case p >= 2100 && p%50 == 2:
			u.GivenName = fmt.Sprintf("Zebrafin%d", p) // rare prefix, late
		case p >= 2100 && p%50 == 6:
			u.DisplayName = "Blue zebrafin" // rare substring, late
		case p >= 2100 && p%50 == 10:
			u.DisplayName = "ZEBRAFIN" // rare exact, late
		case p == 2655:
			u.ExternalID = "ZebraFin" // rare exact, late
		case p%97 == 3:
			u.FamilyName = "Mzebrafin" // rare substring, early
		}
	}
	for i := range chunks {
		importChunk(t, fs, op.ID, i, valid[i], nil)
	}
	for i, u := range all {
		u = u.Clone()
		u.Tenant = tenant
		c.set(fmt.Sprintf("u%04d", i), u)
	}
	for _, tt := range []struct{ query, filter string }{
		{"walkab", ""}, {"zebrafin", ""}, {"walkabout1", ""}, {"midpoint", ""}, {"zebrafin", "email_verified = true"}, {"walkab", "email_verified = true"},
	} {
		q := searchQuery(t, tenant, tt.query)
		q.Filter = parseFilter(t, tt.filter)
		var match []*users.User
		for _, u := range all {
			if strings.Contains(users.SearchKey(u), q.Search.Folded) && (tt.filter == "" || u.EmailVerified) {
				match = append(match, u)
			}
		}
		if len(match) < 5 {
			t.Fatalf("search %s, filter %q: %d matches, too few for the test", tt.query, tt.filter, len(match))
		}
		want := c.names(rankOrder(q.Search, match))
		for _, size := range []int{3, 7, 50, 1000} {
			if diff := cmp.Diff(want, c.names(searchPages(t, s, q, size)), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("search %s, filter %q, in pages of %d (-want +got):\n%s", tt.query, tt.filter, size, diff)
			}
		}
	}
}

// testSearchCount counts with filters and searches, exactly up to the
// limit and beyond it not.
func testSearchCount(t *testing.T, s UserStore, tenant string) {
	ctx := context.Background()
	other := tenant + "-other"
	createTenant(t, s, other, 0)
	c := newCast()
	for i := range 12 {
		u := userIn(tenant, i)
		u.DisplayName = fmt.Sprintf("Tallied %d", i)
		u.EmailVerified = i < 8
		c.add(t, s, fmt.Sprintf("t%d", i), u)
		theirs := userIn(other, i)
		theirs.DisplayName = "Tallied"
		theirs.EmailVerified = true
		create(t, s, theirs)
	}
	for i := range 5 {
		u := userIn(tenant, 100+i)
		u.EmailVerified = true
		c.add(t, s, fmt.Sprintf("v%d", i), u)
	}
	gone := userIn(tenant, 200)
	gone.DisplayName, gone.EmailVerified = "Tallied (gone)", true
	c.add(t, s, "gone", gone)
	c.del(t, s, "gone")

	verified := parseFilter(t, "email_verified = true")
	tallied := parseSearch(t, "tallied")
	for _, tt := range []struct {
		what      string
		q         users.ListQuery
		limit     int
		want      int64 // when exact
		wantExact bool
	}{
		{"all", users.ListQuery{}, 100, 17, true},
		{"all, show deleted", users.ListQuery{ShowDeleted: true}, 100, 18, true},
		{"filter", users.ListQuery{Filter: verified}, 100, 13, true},
		{"search", users.ListQuery{Search: tallied}, 100, 12, true},
		{"search, show deleted", users.ListQuery{Search: tallied, ShowDeleted: true}, 100, 13, true},
		{"filter and search", users.ListQuery{Filter: verified, Search: tallied}, 100, 8, true},
		{"filter and search, show deleted", users.ListQuery{Filter: verified, Search: tallied, ShowDeleted: true}, 100, 9, true},
		{"search matching none", users.ListQuery{Search: parseSearch(t, "nobody here")}, 100, 0, true},
		{"filter and search at the limit", users.ListQuery{Filter: verified, Search: tallied}, 8, 8, true},
		{"filter and search past the limit", users.ListQuery{Filter: verified, Search: tallied}, 7, 0, false},
		{"search past the limit", users.ListQuery{Search: tallied}, 5, 0, false},
		{"filter past the limit", users.ListQuery{Filter: verified}, 1, 0, false},
		{"limit 0", users.ListQuery{Search: tallied}, 0, 0, false},
		// After, Order and Limit play no part.
		{"search, after and limit", users.ListQuery{Search: tallied, Order: users.Order{Field: users.OrderRank},
			After: &users.Cursor{Rank: users.RankSubstring, ID: c.byName["t5"].ID}, Limit: 2}, 100, 12, true},
		{"filter, after", users.ListQuery{Filter: verified, Order: users.Order{Field: users.OrderEmail, Desc: true},
			After: &users.Cursor{EmailKey: "a", ID: c.byName["t1"].ID}, Limit: 1}, 100, 13, true},
	} {
		q := tt.q
		q.Tenant = tenant
		n, exact, err := s.CountUsers(ctx, q, tt.limit)
		switch {
		case err != nil:
			t.Errorf("%s: CountUsers err = %v", tt.what, err)
		case exact != tt.wantExact:
			t.Errorf("%s: CountUsers(limit %d) = %d, exact %v; want exact %v", tt.what, tt.limit, n, exact, tt.wantExact)
		case tt.wantExact && n != tt.want:
			t.Errorf("%s: CountUsers(limit %d) = %d, want %d", tt.what, tt.limit, n, tt.want)
		case !tt.wantExact && n <= int64(tt.limit):
			t.Errorf("%s: CountUsers(limit %d) = %d, not exact; want more than the limit", tt.what, tt.limit, n)
		}
	}
	// The other tenant's count is its own.
	if n, exact, err := s.CountUsers(ctx, users.ListQuery{Tenant: other, Search: tallied}, 100); err != nil || n != 12 || !exact {
		t.Errorf("CountUsers in the other tenant = %d, %v, %v; want 12, exact", n, exact, err)
	}
}
