// Package usersql is what the SQL stores share: the WHERE, ORDER BY and
// LIMIT of a users.ListQuery, the stored forms of events and import
// failures, the deliveries of a dispatch, the webhook a write returns
// (StoredWebhook), and Wrap, the one deferred wrap of a store method's
// error. Every value of a list query travels as a bind argument; no caller
// input is ever spliced into the statement text.
//
// Both stores use the same column names: id, email_key, display_name, state,
// create_time, update_time. email_key and id must sort bytewise (Postgres
// declares email_key COLLATE "C"; ids are lower-case canonical UUIDs), so the
// stores agree on the order of every page.
package usersql

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/usersd/usersd/internal/users"
)

// Dialect is how a database spells placeholders, encodes times and
// booleans, and tests the JSON of the attributes column.
type Dialect struct {
	// Placeholder returns the n-th (1-based) bind placeholder.
	Placeholder func(n int) string
	// Time encodes a time as the database stores it.
	Time func(time.Time) any
	// Bool encodes a boolean as the database stores it.
	Bool func(bool) any
	// Attribute returns the SQL of a users.FieldAttribute condition, whose
	// Path is valid (users.ValidFilterPath) and whose op suits its value,
	// binding the path and the value with bind: no part of either is
	// spliced into the SQL.
	Attribute func(c users.Condition, bind func(any) string) (string, error)
	// Contains returns the condition that a user's search key holds text,
	// through the store's index of search keys, binding the values with
	// bind.
	Contains func(text string, bind func(any) string) string
	// SearchTier returns the FROM and the condition that read the users
	// of a search's tier (a users.Rank…) through the store's indexes,
	// binding the values with bind (see SearchPage).
	SearchTier func(s *users.Search, rank int, bind func(any) string) (from, cond string)
	// SearchCandidates, when not nil, returns a statement of the ids of
	// the first k users (in id order, after the cursor) of the tenant that
	// may be of a search's exact or prefix tier, read from indexes alone
	// (see searchCandidates).
	SearchCandidates func(s *users.Search, rank int, tenant, after string, k int, bind func(any) string) string
	// Position is the database's function that finds a string in another
	// (1-based, 0 when absent), which walks of a search use.
	Position string
	// Walks is how far a search walks a common tier before it reads the
	// tier through the index: on while the walks have found 1/Walks of
	// the page or more, Walks windows at most. It weighs what a walked
	// user costs against what a match read through the index costs.
	Walks int
	// Fence ends a subquery that the planner must run as written rather
	// than merge into the statement around it.
	Fence string
}

// Postgres is the pgx dialect: $1, $2, …, time.Time and bool values, and
// attributes as jsonb (see postgresAttribute).
var Postgres = Dialect{
	Placeholder:      func(n int) string { return "$" + strconv.Itoa(n) },
	Time:             func(t time.Time) any { return t },
	Bool:             func(b bool) any { return b },
	Attribute:        postgresAttribute,
	Contains:         postgresContains,
	SearchTier:       postgresSearchTier,
	SearchCandidates: postgresSearchCandidates,
	Position:         "strpos",
	// A walk reads the entries of an index (0.3 µs each), a match
	// through the indexes a row elsewhere (10 µs when it is not in
	// shared buffers).
	Walks: 8,
	Fence: " OFFSET 0",
}

// SQLite is the dialect of the embedded store: ?1, ?2, …, times as
// integer microseconds since the Unix epoch, booleans as 0 and 1, and
// attributes as JSON text (see sqliteAttribute).
var SQLite = Dialect{
	Placeholder: func(n int) string { return "?" + strconv.Itoa(n) },
	Time:        func(t time.Time) any { return t.UnixMicro() },
	Bool:        sqliteBool,
	Attribute:   sqliteAttribute,
	Contains:    sqliteContains,
	SearchTier:  sqliteSearchTier,
	Position:    "instr",
	// A walk reads the entries of an index (0.7 µs each), a match
	// through FTS5 a row elsewhere (15 µs).
	Walks: 7,
}

var ops = [...]string{users.OpEq: "=", users.OpNe: "<>", users.OpLt: "<", users.OpLe: "<=", users.OpGt: ">", users.OpGe: ">="}

var columns = [...]string{
	users.FieldState:       "state",
	users.FieldEmail:       "email_key",
	users.FieldDisplayName: "display_name",
	users.FieldCreateTime:  "create_time",
	users.FieldUpdateTime:  "update_time",
}

// LiveTenant is the condition that the tenant whose id is bound to the
// placeholder p exists and is not deleted: the users of a deleted tenant
// are out of reach. It is a scalar subquery on the tenant's primary key,
// which both databases run once per statement; SQLite runs an EXISTS
// again for every row (a BatchGetUsers of 100 took half as long again).
func LiveTenant(p string) string {
	return "(SELECT tenants.state FROM tenants WHERE tenants.id = " + p + ") = 'ACTIVE'"
}

// ListClause returns "WHERE … ORDER BY … LIMIT …" for q, to follow
// "SELECT <columns> FROM users ", and the arguments it binds. The users
// are q.Tenant's, none while the tenant is deleted; the indexes of the
// stores lead with the tenant. A search (q.Search) is read by
// SearchPage, in several statements, not by one of these.
func ListClause(d Dialect, q users.ListQuery) (string, []any, error) {
	if q.Search != nil || q.Order.Field == users.OrderRank {
		return "", nil, fmt.Errorf("usersql: a search is read by SearchPage")
	}
	var b strings.Builder
	args, bind := binder(d)
	if err := where(&b, d, q, true, bind); err != nil {
		return "", nil, err
	}

	key, dir, cmp := "create_time", "ASC", ">"
	if q.Order.Field == users.OrderEmail {
		key = "email_key"
	}
	if q.Order.Desc {
		dir, cmp = "DESC", "<"
	}
	if a := q.After; a != nil {
		var kv any = d.Time(a.CreateTime)
		if q.Order.Field == users.OrderEmail {
			kv = a.EmailKey
		}
		fmt.Fprintf(&b, " AND (%s, id) %s (%s, %s)", key, cmp, bind(kv), bind(a.ID))
	}
	fmt.Fprintf(&b, " ORDER BY %s %s, id %s LIMIT %s", key, dir, dir, bind(q.Limit))
	return b.String(), *args, nil
}

// WhereClause returns " WHERE …" for the users that match q (q.After,
// q.Order and q.Limit aside), and the arguments it binds.
func WhereClause(d Dialect, q users.ListQuery) (string, []any, error) {
	var b strings.Builder
	args, bind := binder(d)
	err := where(&b, d, q, true, bind)
	return b.String(), *args, err
}

// binder returns the arguments of a statement and the function that
// binds one more, returning its placeholder.
func binder(d Dialect) (*[]any, func(any) string) {
	args := new([]any)
	return args, func(v any) string {
		*args = append(*args, v)
		return d.Placeholder(len(*args))
	}
}

// CountStatement returns a statement that counts the users that match q,
// up to limit+1, and the arguments it binds.
func CountStatement(d Dialect, q users.ListQuery, limit int) (string, []any, error) {
	w, args, err := WhereClause(d, q)
	if err != nil {
		return "", nil, err
	}
	args = append(args, limit+1)
	return "SELECT count(*) FROM (SELECT 1 FROM users" + w + " LIMIT " + d.Placeholder(len(args)) + ") AS m", args, nil
}

// where writes " WHERE …" for q to b, binding the values with bind; the
// condition of q.Search too when search is set (a search's tiers have
// their own).
func where(b *strings.Builder, d Dialect, q users.ListQuery, search bool, bind func(any) string) error {
	t := bind(q.Tenant)
	fmt.Fprintf(b, " WHERE tenant_id = %s AND %s", t, LiveTenant(t))
	if !q.ShowDeleted {
		fmt.Fprintf(b, " AND state <> %s", bind(users.StateDeleted.String()))
	}
	for _, c := range q.Filter {
		cond, err := condition(d, c, bind)
		if err != nil {
			return err
		}
		fmt.Fprintf(b, " AND %s", cond)
	}
	if s := q.Search; s != nil && search {
		fmt.Fprintf(b, " AND %s", d.Contains(s.Folded, bind))
	}
	return nil
}
