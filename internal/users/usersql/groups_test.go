package usersql_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

// TestGroupListClause: the WHERE, ORDER BY and LIMIT of every order, with
// and without a cursor, every value bound: none of the caller's text is in
// the statement.
func TestGroupListClause(t *testing.T) {
	const (
		hostile = `x' OR 1=1; --`
		id      = "0190a0b0-0000-7000-8000-000000000001"
		live    = "(SELECT tenants.state FROM tenants WHERE tenants.id = ?1) = 'ACTIVE'"
	)
	for _, tt := range []struct {
		q        users.GroupQuery
		want     string
		wantArgs []any
	}{
		{users.GroupQuery{}, "ORDER BY id LIMIT ?2", []any{50}},
		{users.GroupQuery{After: id}, "AND id > ?2 ORDER BY id LIMIT ?3", []any{id, 50}},
		{users.GroupQuery{Desc: true, After: id}, "AND id < ?2 ORDER BY id DESC LIMIT ?3", []any{id, 50}},
		{users.GroupQuery{ByName: true}, "ORDER BY name_key, id LIMIT ?2", []any{50}},
		{users.GroupQuery{ByName: true, After: id, AfterNameKey: hostile},
			"AND (name_key, id) > (?2, ?3) ORDER BY name_key, id LIMIT ?4", []any{hostile, id, 50}},
		{users.GroupQuery{ByName: true, Desc: true, After: id, AfterNameKey: ""},
			"AND (name_key, id) < (?2, ?3) ORDER BY name_key DESC, id DESC LIMIT ?4", []any{"", id, 50}},
		// With a NameKey, the cursor of that name bounds the id alone; of
		// another name, the row value.
		{users.GroupQuery{NameKey: hostile, ByName: true, Desc: true, After: id, AfterNameKey: hostile},
			"AND name_key = ?2 AND id < ?3 ORDER BY name_key DESC, id DESC LIMIT ?4", []any{hostile, id, 50}},
		{users.GroupQuery{NameKey: hostile, ByName: true, After: id, AfterNameKey: "a"},
			"AND name_key = ?2 AND (name_key, id) > (?3, ?4) ORDER BY name_key, id LIMIT ?5", []any{hostile, "a", id, 50}},
		{users.GroupQuery{ExternalID: hostile, Contains: hostile, ByName: true, Desc: true},
			"AND external_id = ?2 AND instr(name_key, ?3) > 0 ORDER BY name_key DESC, id DESC LIMIT ?4", []any{hostile, hostile, 50}},
	} {
		tt.q.Tenant, tt.q.Limit = "acme", 50
		got, args := usersql.GroupListClause(usersql.SQLite, tt.q)
		want := "WHERE tenant_id = ?1 AND " + live + " " + tt.want
		if got != want {
			t.Errorf("GroupListClause(%+v) =\n%s\nwant\n%s", tt.q, got, want)
		}
		if diff := cmp.Diff(append([]any{"acme"}, tt.wantArgs...), args); diff != "" {
			t.Errorf("GroupListClause(%+v) args (-want +got):\n%s", tt.q, diff)
		}
		if strings.Contains(got, "OR 1=1") {
			t.Errorf("GroupListClause(%+v) spliced a value: %s", tt.q, got)
		}
	}
	// Postgres: the same clause, with its placeholders and function.
	got, _ := usersql.GroupListClause(usersql.Postgres, users.GroupQuery{Tenant: "acme", Contains: "x", ByName: true, After: id, Limit: 5})
	if want := "WHERE tenant_id = $1 AND (SELECT tenants.state FROM tenants WHERE tenants.id = $1) = 'ACTIVE' AND strpos(name_key, $2) > 0 AND (name_key, id) > ($3, $4) ORDER BY name_key, id LIMIT $5"; got != want {
		t.Errorf("GroupListClause(Postgres) =\n%s\nwant\n%s", got, want)
	}
	if got := usersql.GroupListOrder(users.GroupQuery{ByName: true, Desc: true}, "g"); got != "g.name_key DESC, g.id DESC" {
		t.Errorf("GroupListOrder(name desc, g) = %q", got)
	}
}
