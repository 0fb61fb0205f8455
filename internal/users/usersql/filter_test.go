package usersql_test

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

// filterSQL returns the filter's part of ListClause: the text between the
// tenant's conditions and ORDER BY, and the args it binds (after the
// tenant's).
func filterSQL(t *testing.T, d usersql.Dialect, f users.Filter) (string, []any) {
	t.Helper()
	stmt, args, err := usersql.ListClause(d, users.ListQuery{Tenant: "t", Filter: f, ShowDeleted: true, Limit: 5})
	if err != nil {
		t.Fatalf("ListClause(%+v) err = %v", f, err)
	}
	_, rest, ok := strings.Cut(stmt, "= 'ACTIVE'")
	if !ok {
		t.Fatalf("ListClause: %s", stmt)
	}
	rest, _, _ = strings.Cut(rest, " ORDER BY ")
	return strings.TrimPrefix(rest, " AND "), args[1 : len(args)-1]
}

func TestConditionSQL(t *testing.T) {
	attr := func(op users.Op, v any, path ...string) users.Condition {
		return users.Condition{Field: users.FieldAttribute, Op: op, Value: v, Path: path}
	}
	tests := []struct {
		name     string
		c        users.Condition
		pg       string
		pgArgs   []any
		lite     string
		liteArgs []any
	}{
		{"state", users.Condition{Field: users.FieldState, Op: users.OpNe, Value: users.StateSuspended},
			"state <> $2", []any{"SUSPENDED"}, "state <> ?2", []any{"SUSPENDED"}},
		{"external id", users.Condition{Field: users.FieldExternalID, Op: users.OpEq, Value: "hr-1"},
			"external_id = $2", []any{"hr-1"}, "external_id = ?2", []any{"hr-1"}},
		{"external id not", users.Condition{Field: users.FieldExternalID, Op: users.OpNe, Value: "hr-1"},
			"(external_id IS NULL OR external_id <> $2)", []any{"hr-1"}, "(external_id IS NULL OR external_id <> ?2)", []any{"hr-1"}},
		{"external id unset", users.Condition{Field: users.FieldExternalID, Op: users.OpEq, Value: ""},
			"external_id IS NULL", []any{}, "external_id IS NULL", []any{}},
		{"external id set", users.Condition{Field: users.FieldExternalID, Op: users.OpNe, Value: ""},
			"external_id IS NOT NULL", []any{}, "external_id IS NOT NULL", []any{}},
		{"external id present", users.Condition{Field: users.FieldExternalID, Op: users.OpHas},
			"external_id IS NOT NULL", []any{}, "external_id IS NOT NULL", []any{}},
		{"given name", users.Condition{Field: users.FieldGivenName, Op: users.OpNe, Value: "Ada"},
			"given_name <> $2", []any{"Ada"}, "given_name <> ?2", []any{"Ada"}},
		{"time zone present", users.Condition{Field: users.FieldTimeZone, Op: users.OpHas},
			"time_zone <> ''", []any{}, "time_zone <> ''", []any{}},
		{"email verified", users.Condition{Field: users.FieldEmailVerified, Op: users.OpEq, Value: true},
			"email_verified = $2", []any{true}, "email_verified = ?2", []any{int64(1)}},
		{"phone verified", users.Condition{Field: users.FieldPhoneVerified, Op: users.OpNe, Value: false},
			"phone_verified <> $2", []any{false}, "phone_verified <> ?2", []any{int64(0)}},
		{"attribute present", attr(users.OpHas, nil, "team", "lead"),
			"jsonb_typeof(attributes #> $2::text[]) <> 'null'", []any{[]string{"team", "lead"}},
			"json_type(attributes, ?2) <> 'null'", []any{`$."team"."lead"`}},
		{"attribute = string", attr(users.OpEq, "R&D", "dept"),
			"attributes @> $2::jsonb", []any{`{"dept":"R\u0026D"}`},
			"(json_type(attributes, ?2) IN ('text') AND json_extract(attributes, ?2) = ?3)", []any{`$."dept"`, "R&D"}},
		{"attribute != number", attr(users.OpNe, 30.0, "a", "b"),
			"(jsonb_typeof(attributes #> $2::text[]) = 'number' AND NOT attributes @> $3::jsonb)", []any{[]string{"a", "b"}, `{"a":{"b":30}}`},
			"(json_type(attributes, ?2) IN ('integer', 'real') AND json_extract(attributes, ?2) <> ?3)", []any{`$."a"."b"`, 30.0}},
		{"attribute = bool", attr(users.OpEq, false, "x"),
			"attributes @> $2::jsonb", []any{`{"x":false}`},
			"(json_type(attributes, ?2) IN ('true', 'false') AND json_extract(attributes, ?2) = ?3)", []any{`$."x"`, int64(0)}},
		{"attribute != bool", attr(users.OpNe, true, "x"),
			"(jsonb_typeof(attributes #> $2::text[]) = 'boolean' AND NOT attributes @> $3::jsonb)", []any{[]string{"x"}, `{"x":true}`},
			"(json_type(attributes, ?2) IN ('true', 'false') AND json_extract(attributes, ?2) <> ?3)", []any{`$."x"`, int64(1)}},
		{"attribute = null", attr(users.OpEq, nil, "x"),
			"attributes @> $2::jsonb", []any{`{"x":null}`},
			"json_type(attributes, ?2) = 'null'", []any{`$."x"`}},
		{"attribute != null", attr(users.OpNe, nil, "x"),
			"jsonb_typeof(attributes #> $2::text[]) <> 'null'", []any{[]string{"x"}},
			"json_type(attributes, ?2) <> 'null'", []any{`$."x"`}},
		{"attribute < string", attr(users.OpLt, "M", "name"),
			`(jsonb_typeof(attributes #> $2::text[]) = 'string' AND (attributes #>> $2::text[]) COLLATE "C" < $3)`, []any{[]string{"name"}, "M"},
			"(json_type(attributes, ?2) IN ('text') AND json_extract(attributes, ?2) < ?3)", []any{`$."name"`, "M"}},
		{"attribute >= number", attr(users.OpGe, -1.5e300, "n"),
			"(jsonb_typeof(attributes #> $2::text[]) = 'number' AND attributes #> $2::text[] >= $3::jsonb)", []any{[]string{"n"}, "-1.5e+300"},
			"(json_type(attributes, ?2) IN ('integer', 'real') AND json_extract(attributes, ?2) >= ?3)", []any{`$."n"`, -1.5e300}},
		{"group", users.Condition{Field: users.FieldGroup, Op: users.OpEq, Value: testGroup},
			"EXISTS (SELECT 1 FROM group_members WHERE group_id = $2 AND user_id = users.id)", []any{testGroup},
			"EXISTS (SELECT 1 FROM group_members WHERE group_id = ?2 AND user_id = users.id)", []any{testGroup}},
		{"not group", users.Condition{Field: users.FieldGroup, Op: users.OpNe, Value: testGroup},
			"NOT EXISTS (SELECT 1 FROM group_members WHERE group_id = $2 AND user_id = users.id)", []any{testGroup},
			"NOT EXISTS (SELECT 1 FROM group_members WHERE group_id = ?2 AND user_id = users.id)", []any{testGroup}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, d := range []struct {
				name string
				d    usersql.Dialect
				sql  string
				args []any
			}{{"postgres", usersql.Postgres, tt.pg, tt.pgArgs}, {"sqlite", usersql.SQLite, tt.lite, tt.liteArgs}} {
				got, args := filterSQL(t, d.d, users.Filter{tt.c})
				if got != d.sql {
					t.Errorf("%s: SQL\n got %s\nwant %s", d.name, got, d.sql)
				}
				if diff := cmp.Diff(d.args, args); diff != "" {
					t.Errorf("%s: args (-want +got):\n%s", d.name, diff)
				}
			}
		})
	}
}

// TestConditionBindsCallerText checks that the values and keys of a
// filter reach the statement only as bind arguments.
func TestConditionBindsCallerText(t *testing.T) {
	const evil = `x'); DROP TABLE users; --`
	f, err := users.ParseFilter(`attributes.Callerkey.Otherkey = "` + evil + `" AND attributes.Callerkey < "` + evil +
		`" AND attributes.Callerkey != "` + evil + `" AND given_name = "` + evil + `" AND external_id != "` + evil +
		`" AND attributes.Callerkey > 12345.5 AND attributes.Callerkey:*`)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []usersql.Dialect{usersql.Postgres, usersql.SQLite} {
		stmt, args, err := usersql.ListClause(d, users.ListQuery{Tenant: "t", Filter: f, Limit: 5})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"DROP", "Callerkey", "Otherkey", "12345"} {
			if strings.Contains(stmt, s) {
				t.Errorf("statement holds caller text %q: %s", s, stmt)
			}
		}
		if !slices.ContainsFunc(args, func(a any) bool { return a == evil }) {
			t.Errorf("%q is not bound: %v", evil, args)
		}
	}
}

func TestConditionErrors(t *testing.T) {
	attr := func(op users.Op, v any, path ...string) users.Condition {
		return users.Condition{Field: users.FieldAttribute, Op: op, Value: v, Path: path}
	}
	for _, c := range []users.Condition{
		{Field: users.FilterField(99), Op: users.OpEq, Value: "x"},
		{Field: users.FieldState, Op: users.OpHas},
		{Field: users.FieldEmail, Op: users.OpEq, Value: 3},
		{Field: users.FieldGivenName, Op: users.OpLt, Value: "x"},
		{Field: users.FieldGivenName, Op: users.OpEq, Value: true},
		{Field: users.FieldExternalID, Op: users.OpGt, Value: "x"},
		{Field: users.FieldEmailVerified, Op: users.OpEq, Value: "true"},
		{Field: users.FieldEmailVerified, Op: users.OpHas},
		{Field: users.FieldExternalID, Op: users.OpHas, Value: "x"},
		{Field: users.FieldLocale, Op: users.OpHas, Value: "x"},
		{Field: users.FieldGroup, Op: users.OpHas},
		{Field: users.FieldGroup, Op: users.OpLt, Value: testGroup},
		{Field: users.FieldGroup, Op: users.OpEq, Value: 3},
		attr(users.OpEq, "x"),
		attr(users.OpEq, "x", `a"b`),
		attr(users.OpEq, "x", "a", ""),
		attr(users.OpEq, "x", "1"),
		attr(users.OpEq, "x", strings.Split("a.b.c.d.e.f.g.h.i", ".")...),
		attr(users.OpGt, true, "a"),
		attr(users.OpLe, nil, "a"),
		attr(users.OpEq, math.NaN(), "a"),
		attr(users.OpLt, math.Inf(1), "a"),
		attr(users.OpEq, 3, "a"),
		attr(users.OpHas, "x", "a"),
		attr(users.Op(99), "x", "a"),
	} {
		for _, d := range []usersql.Dialect{usersql.Postgres, usersql.SQLite} {
			if stmt, _, err := usersql.ListClause(d, users.ListQuery{Tenant: "t", Filter: users.Filter{c}}); err == nil {
				t.Errorf("ListClause(%+v) = %s, want an error", c, stmt)
			}
		}
	}
}

// A filterUser is a row of the users table of the tests below.
type filterUser struct {
	id            string
	externalID    *string
	givenName     string
	emailVerified bool
	attributes    string
}

func ptr[T any](v T) *T { return &v }

// testGroup is the group whose members are u1 and u3 in the tests below;
// otherGroup has none.
const (
	testGroup  = "0190a0a0-0000-7000-8000-000000000001"
	otherGroup = "0190a0a0-0000-7000-8000-000000000002"
)

var filterUsers = []filterUser{
	{"u1", ptr("hr-1"), "Ada", true, `{"age": 40, "dept": "R&D", "active": true, "team": {"lead": "ada", "size": 5}, "nick": null}`},
	{"u2", nil, "", false, `{"age": "40", "dept": "sales", "active": false, "team": {"lead": null}, "tags": ["a", "b"]}`},
	{"u3", ptr("hr-3"), "Cy", false, `{"age": 30.5, "dept": "Zeta", "team": "none", "big": 1e300, "ratio": 0.1}`},
	{"u4", nil, "", false, `{}`},
	{"u5", nil, "", false, `{"age": -0, "dept": "é", "active": "true", "team": {"size": "5"}}`},
	{"u6", nil, "", false, `{"age": 9007199254740993, "team": [{"lead": "ada"}], "dept": 7}`},
}

// filterCases are filters and the users of filterUsers they match, the same
// on both databases.
var filterCases = []struct {
	filter string
	want   []string
}{
	{`attributes.age > 30`, []string{"u1", "u3", "u6"}},
	{`attributes.age = 40`, []string{"u1"}},
	{`attributes.age = 40.0`, []string{"u1"}},
	{`attributes.age != 40`, []string{"u3", "u5", "u6"}},
	{`attributes.age = "40"`, []string{"u2"}},
	{`attributes.age != "40"`, nil},
	{`attributes.age >= "4"`, []string{"u2"}},
	{`attributes.age < 0`, nil},
	{`attributes.age <= 0`, []string{"u5"}},
	{`attributes.age = 0`, []string{"u5"}},
	{`attributes.age >= 9007199254740992`, []string{"u6"}},
	{`attributes.age:*`, []string{"u1", "u2", "u3", "u5", "u6"}},
	{`attributes.dept >= "S"`, []string{"u2", "u3", "u5"}},
	{`attributes.dept < "a"`, []string{"u1", "u3"}},
	{`attributes.dept = "R&D"`, []string{"u1"}},
	{`attributes.dept = 7`, []string{"u6"}},
	{`attributes.dept = "'; DROP TABLE users; --"`, nil},
	{`attributes.active = true`, []string{"u1"}},
	{`attributes.active != true`, []string{"u2"}},
	{`attributes.active = false`, []string{"u2"}},
	{`attributes.active = "true"`, []string{"u5"}},
	{`attributes.team.lead = ada`, []string{"u1"}},
	{`attributes.team.lead:*`, []string{"u1"}},
	{`attributes.team.lead = null`, []string{"u2"}},
	{`attributes.team.lead != null`, []string{"u1"}},
	{`attributes.team.lead != "bob"`, []string{"u1"}},
	{`attributes.nick = null`, []string{"u1"}},
	{`attributes.nick:*`, nil},
	{`attributes.team.size > 4`, []string{"u1"}},
	{`attributes.team.size = "5"`, []string{"u5"}},
	{`attributes.team:*`, []string{"u1", "u2", "u3", "u5", "u6"}},
	{`attributes.team = "none"`, []string{"u3"}},
	{`attributes.tags = "a"`, nil},
	{`attributes.tags:*`, []string{"u2"}},
	{`attributes.big > 1e299`, []string{"u3"}},
	{`attributes.ratio = 0.1`, []string{"u3"}},
	{`attributes.ratio >= 0.1`, []string{"u3"}},
	{`attributes.ratio > 0.1`, nil},
	{`attributes.ratio < 0.10000000000000002`, []string{"u3"}},
	{`attributes.missing.deep.path = 1`, nil},
	{`attributes.age.x:*`, nil},
	{`external_id = "hr-1"`, []string{"u1"}},
	{`external_id != "hr-1"`, []string{"u2", "u3", "u4", "u5", "u6"}},
	{`external_id = ""`, []string{"u2", "u4", "u5", "u6"}},
	{`external_id != ""`, []string{"u1", "u3"}},
	{`external_id:*`, []string{"u1", "u3"}},
	{`given_name:*`, []string{"u1", "u3"}},
	{`given_name = ""`, []string{"u2", "u4", "u5", "u6"}},
	{`given_name != "Ada"`, []string{"u2", "u3", "u4", "u5", "u6"}},
	{`email_verified = true`, []string{"u1"}},
	{`email_verified != true`, []string{"u2", "u3", "u4", "u5", "u6"}},
	{`emailVerified = false AND attributes.age > 0 AND external_id:*`, []string{"u3"}},
	{`group = "` + testGroup + `"`, []string{"u1", "u3"}},
	{`group != "` + testGroup + `"`, []string{"u2", "u4", "u5", "u6"}},
	{`group = "` + otherGroup + `"`, nil},
	{`group != "` + otherGroup + `"`, []string{"u1", "u2", "u3", "u4", "u5", "u6"}},
	{`group = "` + testGroup + `" AND given_name = "Cy"`, []string{"u3"}},
}

// runFilterCases lists filterUsers with each of filterCases through query,
// which runs a statement and returns the ids it selects.
func runFilterCases(t *testing.T, d usersql.Dialect, query func(stmt string, args []any) ([]string, error)) {
	t.Helper()
	for _, tt := range filterCases {
		f, err := users.ParseFilter(tt.filter)
		if err != nil {
			t.Fatalf("ParseFilter(%q) err = %v", tt.filter, err)
		}
		clause, args, err := usersql.ListClause(d, users.ListQuery{Tenant: "t", Filter: f, Limit: 100})
		if err != nil {
			t.Fatalf("ListClause(%q) err = %v", tt.filter, err)
		}
		got, err := query("SELECT id FROM users"+clause, args)
		if err != nil {
			t.Errorf("%q: %v", tt.filter, err)
			continue
		}
		slices.Sort(got)
		if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%q (-want +got):\n%s", tt.filter, diff)
		}
	}
}

func TestFilterSQLite(t *testing.T) {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // one connection: one in-memory database
	for _, s := range []string{
		`CREATE TABLE tenants (id TEXT PRIMARY KEY, state TEXT NOT NULL)`,
		`INSERT INTO tenants VALUES ('t', 'ACTIVE')`,
		`CREATE TABLE users (
			id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, email_key TEXT NOT NULL, display_name TEXT NOT NULL,
			state TEXT NOT NULL, create_time INTEGER NOT NULL, update_time INTEGER NOT NULL,
			external_id TEXT, given_name TEXT NOT NULL, family_name TEXT NOT NULL DEFAULT '',
			phone_number TEXT NOT NULL DEFAULT '', locale TEXT NOT NULL DEFAULT '', time_zone TEXT NOT NULL DEFAULT '',
			email_verified INTEGER NOT NULL, phone_verified INTEGER NOT NULL DEFAULT 0,
			attributes TEXT NOT NULL DEFAULT '{}')`,
		`CREATE TABLE group_members (group_id TEXT NOT NULL, user_id TEXT NOT NULL, PRIMARY KEY (group_id, user_id)) WITHOUT ROWID`,
		`INSERT INTO group_members VALUES ('` + testGroup + `', 'u1'), ('` + testGroup + `', 'u3')`,
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	for i, u := range filterUsers {
		if _, err := db.Exec(`INSERT INTO users (id, tenant_id, email_key, display_name, state, create_time, update_time,
			external_id, given_name, email_verified, attributes) VALUES (?1, 't', ?1, ?1, 'ACTIVE', ?2, ?2, ?3, ?4, ?5, ?6)`,
			u.id, i, u.externalID, u.givenName, u.emailVerified, u.attributes); err != nil {
			t.Fatal(err)
		}
	}
	runFilterCases(t, usersql.SQLite, func(stmt string, args []any) ([]string, error) {
		rows, err := db.Query(stmt, args...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return nil, err
			}
			ids = append(ids, id)
		}
		return ids, rows.Err()
	})
}

// TestFilterPostgres runs filterCases on temporary tables of the server
// that USERSD_TEST_POSTGRES_URL names, and skips without it (fails with
// CI=true, as the stores' tests do).
func TestFilterPostgres(t *testing.T) {
	url := os.Getenv("USERSD_TEST_POSTGRES_URL")
	if url == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("USERSD_TEST_POSTGRES_URL is not set; CI must run the Postgres tests")
		}
		t.Skip("set USERSD_TEST_POSTGRES_URL to run the Postgres tests")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// Temporary tables shadow the tables of the same names, if any, and
	// go with the connection.
	for _, s := range []string{
		`CREATE TEMPORARY TABLE tenants (id TEXT PRIMARY KEY, state TEXT NOT NULL)`,
		`INSERT INTO tenants VALUES ('t', 'ACTIVE')`,
		`CREATE TEMPORARY TABLE users (
			id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, email_key TEXT COLLATE "C" NOT NULL, display_name TEXT NOT NULL,
			state TEXT NOT NULL, create_time TIMESTAMPTZ NOT NULL, update_time TIMESTAMPTZ NOT NULL,
			external_id TEXT, given_name TEXT NOT NULL, family_name TEXT NOT NULL DEFAULT '',
			phone_number TEXT NOT NULL DEFAULT '', locale TEXT NOT NULL DEFAULT '', time_zone TEXT NOT NULL DEFAULT '',
			email_verified BOOLEAN NOT NULL, phone_verified BOOLEAN NOT NULL DEFAULT false,
			attributes JSONB NOT NULL DEFAULT '{}')`,
		`CREATE INDEX ON users USING GIN (attributes jsonb_path_ops)`,
		`CREATE TEMPORARY TABLE group_members (group_id uuid NOT NULL, user_id TEXT NOT NULL, PRIMARY KEY (group_id, user_id))`,
		`INSERT INTO group_members VALUES ('` + testGroup + `', 'u1'), ('` + testGroup + `', 'u3')`,
	} {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, u := range filterUsers {
		if _, err := conn.Exec(ctx, `INSERT INTO users (id, tenant_id, email_key, display_name, state, create_time, update_time,
			external_id, given_name, email_verified, attributes) VALUES ($1, 't', $1, $1, 'ACTIVE', $2, $2, $3, $4, $5, $6::jsonb)`,
			u.id, base.Add(time.Duration(i)*time.Second), u.externalID, u.givenName, u.emailVerified, u.attributes); err != nil {
			t.Fatal(err)
		}
	}
	run := func(stmt string, args []any) ([]string, error) {
		rows, err := conn.Query(ctx, stmt, args...)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, pgx.RowTo[string])
	}
	t.Run("sequential scan", func(t *testing.T) { runFilterCases(t, usersql.Postgres, run) })
	t.Run("simple protocol", func(t *testing.T) {
		runFilterCases(t, usersql.Postgres, func(stmt string, args []any) ([]string, error) {
			return run(stmt, append([]any{pgx.QueryExecModeSimpleProtocol}, args...))
		})
	})
	// With sequential scans off the planner takes the GIN index where it
	// can; the results must not change. (The cost of a disabled scan
	// would start the JIT compiler.)
	if _, err := conn.Exec(ctx, "SET enable_seqscan = off; SET jit = off"); err != nil {
		t.Fatal(err)
	}
	t.Run("index", func(t *testing.T) { runFilterCases(t, usersql.Postgres, run) })
	plan, err := run("EXPLAIN SELECT id FROM users WHERE attributes @> $1::jsonb", []any{`{"dept":"R&D"}`})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fmt.Sprint(plan), "Bitmap Index Scan") {
		t.Errorf("containment does not use the GIN index:\n%s", strings.Join(plan, "\n"))
	}
}
