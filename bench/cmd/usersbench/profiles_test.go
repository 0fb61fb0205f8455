package main

import (
	"fmt"
	"math/rand/v2"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/usersd/usersd/internal/users"
)

// TestProfileStatements pins the bare statements to what
// internal/users/usersql.ListClause, WhereClause and the stores'
// LookupUser built when they were copied (a search's are SearchPage's own) (the queries "Ång" and
// attributes.department = "sales", tenant t1). When the stores change,
// change both; the figure also checks, sample by sample, that usersd and
// the bare statement return the same users.
func TestProfileStatements(t *testing.T) {
	const cols = "SELECT " + profileColumns + " FROM users "
	for _, tc := range []struct {
		name      string
		got       statement
		sql       string
		args      string
		count     string
		countArgs string
	}{
		{
			name: "postgres search", got: searchStatement("postgres", "t1", "Ång"),
			args:      `[]`,
			count:     `SELECT count(*) FROM users WHERE tenant_id = $1 AND (SELECT tenants.state FROM tenants WHERE tenants.id = $1) = 'ACTIVE' AND state <> $2 AND search_key LIKE $3`,
			countArgs: `["t1" "DELETED" "%ang%"]`,
		},
		{
			name: "postgres attribute", got: attributeStatement("postgres", "t1", "sales"),
			sql:       cols + ` WHERE tenant_id = $1 AND (SELECT tenants.state FROM tenants WHERE tenants.id = $1) = 'ACTIVE' AND state <> $2 AND attributes @> $3::jsonb ORDER BY create_time ASC, id ASC LIMIT $4`,
			args:      `["t1" "DELETED" "{\"department\":\"sales\"}" '3']`,
			count:     `SELECT count(*) FROM users WHERE tenant_id = $1 AND (SELECT tenants.state FROM tenants WHERE tenants.id = $1) = 'ACTIVE' AND state <> $2 AND attributes @> $3::jsonb`,
			countArgs: `["t1" "DELETED" "{\"department\":\"sales\"}"]`,
		},
		{
			name: "postgres first page", got: firstPageStatement("postgres", "t1"),
			sql:  cols + ` WHERE tenant_id = $1 AND (SELECT tenants.state FROM tenants WHERE tenants.id = $1) = 'ACTIVE' AND state <> $2 ORDER BY create_time ASC, id ASC LIMIT $3`,
			args: `["t1" "DELETED" '3']`,
		},
		{
			name: "postgres lookup", got: lookupStatement("postgres", "t1", "emp-0000001"),
			sql:  cols + `WHERE tenant_id = $1 AND external_id = $2 AND state <> 'DELETED' AND (SELECT tenants.state FROM tenants WHERE tenants.id = $1) = 'ACTIVE'`,
			args: `["t1" "emp-0000001"]`,
		},
		{
			name: "sqlite search", got: searchStatement("sqlite", "t1", "Ång"),
			args:      `[]`,
			count:     `SELECT count(*) FROM users WHERE tenant_id = ?1 AND (SELECT tenants.state FROM tenants WHERE tenants.id = ?1) = 'ACTIVE' AND state <> ?2 AND rowid IN (SELECT rowid FROM users_search WHERE users_search MATCH ?3)`,
			countArgs: `["t1" "DELETED" "\"ang\""]`,
		},
		{
			name: "sqlite attribute", got: attributeStatement("sqlite", "t1", "sales"),
			sql:       cols + ` WHERE tenant_id = ?1 AND (SELECT tenants.state FROM tenants WHERE tenants.id = ?1) = 'ACTIVE' AND state <> ?2 AND (json_type(attributes, ?3) IN ('text') AND json_extract(attributes, ?3) = ?4) ORDER BY create_time ASC, id ASC LIMIT ?5`,
			args:      `["t1" "DELETED" "$.\"department\"" "sales" '3']`,
			count:     `SELECT count(*) FROM users WHERE tenant_id = ?1 AND (SELECT tenants.state FROM tenants WHERE tenants.id = ?1) = 'ACTIVE' AND state <> ?2 AND (json_type(attributes, ?3) IN ('text') AND json_extract(attributes, ?3) = ?4)`,
			countArgs: `["t1" "DELETED" "$.\"department\"" "sales"]`,
		},
		{
			name: "sqlite first page", got: firstPageStatement("sqlite", "t1"),
			sql:  cols + ` WHERE tenant_id = ?1 AND (SELECT tenants.state FROM tenants WHERE tenants.id = ?1) = 'ACTIVE' AND state <> ?2 ORDER BY create_time ASC, id ASC LIMIT ?3`,
			args: `["t1" "DELETED" '3']`,
		},
		{
			name: "sqlite lookup", got: lookupStatement("sqlite", "t1", "emp-0000001"),
			sql:  cols + `WHERE tenant_id = ?1 AND external_id = ?2 AND state <> 'DELETED' AND (SELECT tenants.state FROM tenants WHERE tenants.id = ?1) = 'ACTIVE'`,
			args: `["t1" "emp-0000001"]`,
		},
	} {
		if strings.HasSuffix(tc.name, "search") {
			// usersql.SearchPage makes the statements.
			if q := tc.got.search; q == nil || q.Tenant != "t1" || q.Search.Folded != "ang" || q.Limit != 51 {
				t.Errorf("%s: search %+v, want tenant t1, query ang, limit 51", tc.name, q)
			}
		}
		if tc.got.sql != tc.sql {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, tc.got.sql, tc.sql)
		}
		// %q of []any spells the int 51 as '3'.
		if got := fmt.Sprintf("%q", tc.got.args); got != tc.args {
			t.Errorf("%s: args %s, want %s", tc.name, got, tc.args)
		}
		if tc.got.count != tc.count {
			t.Errorf("%s: count\n got %s\nwant %s", tc.name, tc.got.count, tc.count)
		}
		if tc.count != "" {
			if got := fmt.Sprintf("%q", tc.got.cargs); got != tc.countArgs {
				t.Errorf("%s: count args %s, want %s", tc.name, got, tc.countArgs)
			}
		}
	}
}

func TestProfileNames(t *testing.T) {
	l := profileNames()
	if len(l.given) != givenNames || len(l.family) != familyNames {
		t.Fatalf("%d given and %d family names, want %d and %d", len(l.given), len(l.family), givenNames, familyNames)
	}
	for _, names := range [][]part{l.given, l.family} {
		diacritics := 0
		for _, n := range names {
			if strings.ToLower(n.s) != users.Fold(n.s) {
				diacritics++
			}
			for _, c := range n.a {
				if c > unicode.MaxASCII || !unicode.IsLetter(c) {
					t.Fatalf("name %q: ASCII form %q", n.s, n.a)
				}
			}
		}
		// Some names have diacritics, most do not.
		if f := float64(diacritics) / float64(len(names)); f < 0.1 || f > 0.5 {
			t.Errorf("%.0f%% of the names have diacritics", f*100)
		}
	}
	// The draw is long-tailed but not degenerate.
	counts := map[string]int{}
	const n = 20_000
	for i := range n {
		counts[profileUserAt(i).FamilyName]++
	}
	most := 0
	for _, c := range counts {
		most = max(most, c)
	}
	if len(counts) < familyNames/2 || most > n/50 {
		t.Errorf("%d family names in %d users, the most common %d times", len(counts), n, most)
	}
}

func TestProfileUser(t *testing.T) {
	a, b := profileUserAt(123_456), profileUserAt(123_456)
	if a != b {
		t.Fatalf("profileUserAt is not deterministic: %+v, %+v", a, b)
	}
	if a.ExternalID != "emp-0123456" || a.DisplayName != a.GivenName+" "+a.FamilyName {
		t.Errorf("user %+v", a)
	}
	for i := range 2000 {
		u := profileUserAt(i)
		if _, err := mail.ParseAddress(u.Email); err != nil || strings.ContainsFunc(u.Email, func(r rune) bool { return r > unicode.MaxASCII }) {
			t.Fatalf("user %d: address %q (%v)", i, u.Email, err)
		}
		if !strings.Contains(u.Email, fmt.Sprint(i)+"@") {
			t.Fatalf("user %d: address %q without its number", i, u.Email)
		}
		if l := u.Attributes.Level; l < 1 || l > 10 || !slices.Contains(departments, u.Attributes.Department) {
			t.Fatalf("user %d: attributes %+v", i, u.Attributes)
		}
	}
}

// TestProfileValues checks the values the reads draw: searches of three
// and four letters, in a name.
func TestProfileValues(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, read := range profileReads {
		for range 200 {
			v := read.value(r, 100_000)
			switch read.kind {
			case "prefix", "substring":
				want := map[string]int{"prefix": 3, "substring": 4}[read.kind]
				if utf8.RuneCountInString(v) != want || strings.ContainsFunc(v, func(r rune) bool { return !unicode.IsLetter(r) }) {
					t.Fatalf("%s: value %q", read.kind, v)
				}
			case "lookup":
				if !strings.HasPrefix(v, "emp-") || len(v) != 11 {
					t.Fatalf("lookup: value %q", v)
				}
			}
		}
	}
}
