package usersql

import (
	"context"
	"fmt"
	"strings"

	"github.com/usersd/usersd/internal/users"
)

// GroupColumns are the columns of a group (the groups table) that both
// stores read, in the order their scans take them. name_key is written,
// never read: it is display_name folded (users.GroupNameKey).
const GroupColumns = "tenant_id, id, display_name, external_id, description, member_count, create_time, update_time, revision"

// GroupListClause returns "WHERE … ORDER BY … LIMIT …" for q, to follow
// "SELECT <columns> FROM groups ", and the arguments it binds. The groups
// are q.Tenant's, none while the tenant is deleted, in q's order after its
// cursor, each page a range of an index in its order or backwards (q.Desc),
// with no sort: in id order of groups_tenant_id, or, with q.NameKey, of
// groups_tenant_name_key_id (the groups of one name_key lie there in id
// order); in name order (q.ByName: name_key, then id) of
// groups_tenant_name_key_id, the cursor a row value (name_key, id), or the
// id alone with q.NameKey. Every
// value is bound; Contains is a substring of name_key found with the
// dialect's Position.
func GroupListClause(d Dialect, q users.GroupQuery) (string, []any) {
	var b strings.Builder
	args, bind := binder(d)
	t := bind(q.Tenant)
	fmt.Fprintf(&b, "WHERE tenant_id = %s AND %s", t, LiveTenant(t))
	if q.NameKey != "" {
		fmt.Fprintf(&b, " AND name_key = %s", bind(q.NameKey))
	}
	if q.ExternalID != "" {
		fmt.Fprintf(&b, " AND external_id = %s", bind(q.ExternalID))
	}
	if q.Contains != "" {
		fmt.Fprintf(&b, " AND %s(name_key, %s) > 0", d.Position, bind(q.Contains))
	}
	cmp := ">"
	if q.Desc {
		cmp = "<"
	}
	if q.After != "" {
		switch {
		case !q.ByName, q.NameKey != "" && q.AfterNameKey == q.NameKey:
			// In name order with a NameKey, every group has that
			// name_key: the cursor bounds the id within the name's range
			// of the index (a row value after an equality on name_key
			// bounds nothing there, on SQLite).
			fmt.Fprintf(&b, " AND id %s %s", cmp, bind(q.After))
		default:
			fmt.Fprintf(&b, " AND (name_key, id) %s (%s, %s)", cmp, bind(q.AfterNameKey), bind(q.After))
		}
	}
	fmt.Fprintf(&b, " ORDER BY %s LIMIT %s", GroupListOrder(q, ""), bind(q.Limit))
	return b.String(), *args
}

// GroupListOrder returns the ORDER BY list of q's order, its columns
// qualified by table when it is not "": "id", "id DESC", "name_key, id"
// or "name_key DESC, id DESC".
func GroupListOrder(q users.GroupQuery, table string) string {
	if table != "" {
		table += "."
	}
	dir := ""
	if q.Desc {
		dir = " DESC"
	}
	if q.ByName {
		return table + "name_key" + dir + ", " + table + "id" + dir
	}
	return table + "id" + dir
}

// StoredGroup returns g, changed to read as a store returns it: times in
// UTC at microsecond precision.
func StoredGroup(g *users.Group) *users.Group {
	g.CreateTime, g.UpdateTime = users.Truncate(g.CreateTime), users.Truncate(g.UpdateTime)
	return g
}

// UniqueIDs returns ids without repeats, each where it first appears:
// AddGroupMembers and RemoveGroupMembers count an id named twice once.
// ids itself is returned when it has no repeats.
func UniqueIDs(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0:0]
	for i, id := range ids {
		if seen[id] {
			if out == nil {
				out = append(make([]string, 0, len(ids)), ids[:i]...)
			}
			continue
		}
		seen[id] = true
		if out != nil {
			out = append(out, id)
		}
	}
	if out == nil {
		return ids
	}
	return out
}

// The descriptions of MemberViolations.
const (
	noSuchMember   = "no such user in the tenant"
	deletedMember  = "the user is deleted: deleted users cannot be members"
	memberIDsField = "user_ids[%d]"
)

// MemberViolations returns the error of an AddGroupMembers whose ids name
// users that cannot be members: an *users.InvalidError with a violation on
// "user_ids[i]" for each such i (every place an id appears), in order, or
// nil when every user can be. state returns the state of the tenant's user
// with the id, and false when the tenant has no such user.
func MemberViolations(ids []string, state func(id string) (users.State, bool)) error {
	var vs []users.FieldViolation
	for i, id := range ids {
		switch st, ok := state(id); {
		case !ok:
			vs = append(vs, users.FieldViolation{Field: fmt.Sprintf(memberIDsField, i), Description: noSuchMember})
		case st == users.StateDeleted:
			vs = append(vs, users.FieldViolation{Field: fmt.Sprintf(memberIDsField, i), Description: deletedMember})
		}
	}
	if len(vs) == 0 {
		return nil
	}
	return &users.InvalidError{Violations: vs}
}

// MemberEvents returns the events of typ (users.EventGroupMemberAdded or
// users.EventGroupMemberRemoved) of the tenant's group and those of the
// users with the ids for which changed holds, in the order of ids.
func MemberEvents(ctx context.Context, typ users.EventType, tenant, groupID string, ids []string, changed func(id string) bool) []users.Event {
	var evs []users.Event
	for _, id := range ids {
		if changed(id) {
			evs = append(evs, users.MemberEvent(ctx, typ, tenant, groupID, id))
		}
	}
	return evs
}
