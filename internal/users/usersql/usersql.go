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

// Dialect is how a database spells placeholders and encodes times.
type Dialect struct {
	// Placeholder returns the n-th (1-based) bind placeholder.
	Placeholder func(n int) string
	// Time encodes a time as the database stores it.
	Time func(time.Time) any
}

// Postgres is the pgx dialect: $1, $2, … and time.Time values.
var Postgres = Dialect{
	Placeholder: func(n int) string { return "$" + strconv.Itoa(n) },
	Time:        func(t time.Time) any { return t },
}

// SQLite is the dialect of the embedded store: ?1, ?2, … and times as
// integer microseconds since the Unix epoch.
var SQLite = Dialect{
	Placeholder: func(n int) string { return "?" + strconv.Itoa(n) },
	Time:        func(t time.Time) any { return t.UnixMicro() },
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
// stores lead with the tenant.
func ListClause(d Dialect, q users.ListQuery) (string, []any, error) {
	var (
		b    strings.Builder
		args []any
		and  = " AND "
	)
	bind := func(v any) string {
		args = append(args, v)
		return d.Placeholder(len(args))
	}
	t := bind(q.Tenant)
	fmt.Fprintf(&b, " WHERE tenant_id = %s AND %s", t, LiveTenant(t))
	if !q.ShowDeleted {
		fmt.Fprintf(&b, "%sstate <> %s", and, bind(users.StateDeleted.String()))
		and = " AND "
	}
	for _, c := range q.Filter {
		if int(c.Field) >= len(columns) || int(c.Op) >= len(ops) {
			return "", nil, fmt.Errorf("usersql: unknown field %d or op %d", c.Field, c.Op)
		}
		var v any
		switch val := c.Value.(type) {
		case users.State:
			v = val.String()
		case string:
			v = val
		case time.Time:
			v = d.Time(val)
		default:
			return "", nil, fmt.Errorf("usersql: value of type %T", c.Value)
		}
		fmt.Fprintf(&b, "%s%s %s %s", and, columns[c.Field], ops[c.Op], bind(v))
		and = " AND "
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
		fmt.Fprintf(&b, "%s(%s, id) %s (%s, %s)", and, key, cmp, bind(kv), bind(a.ID))
	}
	fmt.Fprintf(&b, " ORDER BY %s %s, id %s LIMIT %s", key, dir, dir, bind(q.Limit))
	return b.String(), args, nil
}
