package scim

import (
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	filter "github.com/scim2/filter-parser/v2"

	"github.com/usersd/usersd/internal/users"
)

// UserFilter is a compiled filter of the /Users endpoint, in two parts:
// what the users service answers from its indexes (Filter, Query, ID), and
// Match, the whole filter as a predicate over the resource.
//
// The index part is a necessary condition: every user that matches the
// filter is among those it selects, so a handler lists those (in pages)
// and keeps the ones Match accepts. When Exact is set it can skip Match,
// and take the service's pages and totalSize as they are.
type UserFilter struct {
	// Filter is the indexed part in the syntax of the users API
	// (users.ListRequest.Filter), "" when the filter has none: conditions
	// on email, external_id, state, update_time, create_time, group and
	// attributes.scim.userNameKey, joined by AND.
	Filter string
	// Conditions is Filter parsed (users.ParseFilter), for code that
	// builds a users.ListQuery itself.
	Conditions users.Filter
	// Query, when set, is a search (users.ListRequest.Query) whose results
	// hold every match: a displayName eq "…" that the search index can
	// answer.
	Query string
	// ID, when set, is the only user id that can match (the filter has id
	// eq "…"): read that user and Match it.
	ID string
	// None: no user can match (a comparison with a value no stored user
	// has); answer an empty list without reading.
	None bool
	// Exact: the users Filter selects are exactly the matches.
	Exact bool

	pred pred
}

// Match reports whether the user matches the whole filter.
func (f *UserFilter) Match(u *User) bool {
	if f.None {
		return false
	}
	return f.pred == nil || f.pred(u.toDoc())
}

// GroupFilter is a compiled filter of the /Groups endpoint, as UserFilter
// is of /Users.
type GroupFilter struct {
	// Filter is the indexed part in the syntax of users.GroupListRequest's
	// Filter: display_name (case- and accent-folded: a superset of SCIM's
	// case-insensitive equality, which Match then checks) and
	// external_id, joined by AND.
	Filter string
	// MemberID, when set, keeps the groups this user is a member of (the
	// filter has members.value eq "…"): list them with ListUserGroups.
	// Match does not test it again (the resource does not carry its
	// members), so it must be applied.
	MemberID string
	// ID, when set, is the only group id that can match.
	ID string
	// None: no group can match.
	None bool
	// Exact: the groups Filter (and MemberID) select are exactly the
	// matches.
	Exact bool

	pred pred
}

// Match reports whether the group matches the filter, members.value
// aside (see MemberID).
func (f *GroupFilter) Match(g *Group) bool {
	if f.None {
		return false
	}
	return f.pred == nil || f.pred(g.toDoc())
}

// maxIndexConditions bounds the conditions of the indexed part: the
// users API takes at most users.MaxFilterConditions, and a few narrow the
// list as well as many.
const maxIndexConditions = 8

// conditions accumulates the indexed part of a filter, as text of the
// users API's filter syntax.
type conditions struct {
	parts []string
}

func (c *conditions) full() bool { return len(c.parts) >= maxIndexConditions }

func (c *conditions) add(field, op, value string) {
	c.parts = append(c.parts, field+" "+op+" "+value)
}

func (c *conditions) String() string { return strings.Join(c.parts, " AND ") }

// quote writes s as a quoted value of the users API's filter syntax, which
// escapes only \ and ".
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// storable reports whether s can be a stored value: usersd stores no
// empty text (it is unset), no control character and no invalid UTF-8, so
// an eq with such a value matches nothing.
func storable(s string) bool {
	return s != "" && utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0
}

// timeOps are the users API's operators of SCIM's comparisons of times.
var timeOps = map[filter.CompareOperator]string{
	filter.EQ: "=", filter.GT: ">", filter.GE: ">=", filter.LT: "<", filter.LE: "<=",
}

// CompileUserFilter compiles a filter of the /Users endpoint. An empty
// filter matches every user. Errors are 400 invalidFilter.
func CompileUserFilter(s string) (*UserFilter, error) {
	f := &UserFilter{Exact: true}
	if strings.TrimSpace(s) == "" && len(s) <= MaxFilterBytes {
		return f, nil
	}
	e, err := parseFilter(s)
	if err != nil {
		return nil, err
	}
	c := &compiler{rt: userType, membership: "groups"}
	parts := conjuncts(e)
	skip := make([]bool, len(parts))
	var conds conditions
	for i, part := range parts {
		term, ok := c.simpleTerm(part)
		if !ok {
			f.Exact = false
			continue
		}
		_, whole := part.(*filter.AttributeExpression)
		exact := false
		if skip[i], exact, err = f.take(term, whole || valueEqOnly(part), &conds); err != nil {
			return nil, err
		}
		f.Exact = f.Exact && exact
	}
	if f.pred, err = c.compileTop(parts, skip); err != nil {
		return nil, err
	}
	if f.Filter = conds.String(); f.Filter != "" {
		if f.Conditions, err = users.ParseFilter(f.Filter); err != nil {
			return nil, &Error{Status: http.StatusInternalServerError, Detail: "internal error", Err: err}
		}
	}
	f.Exact = f.Exact && f.Query == "" && f.ID == "" && !f.None
	return f, nil
}

// take adds what the index answers of one conjunct of a users filter. It
// reports whether Match may leave the conjunct out (the index answers it,
// and the resource cannot: a user's groups), and whether the index answers
// it exactly. whole: the term is the whole conjunct, not one comparison of
// a value path's filter among others.
func (f *UserFilter) take(term eqTerm, whole bool, conds *conditions) (skip, exact bool, err error) {
	name, sub := term.t.a.name, ""
	if term.t.sub != nil {
		sub = term.t.sub.name
	}
	_, isString := term.lit.(string)
	membership := name == "groups" && sub == "value" && whole && isString && term.op == filter.EQ
	switch {
	case membership && len(conds.parts) >= users.MaxFilterConditions:
		// Only the index answers these, and the users API takes so
		// many conditions.
		return false, false, invalidFilter("more than %d conditions on groups and the indexed attributes", users.MaxFilterConditions)
	case !membership && conds.full():
		return false, false, nil
	}
	skip, exact = f.takeTerm(term, name, sub, whole, conds)
	return skip, exact, nil
}

// takeTerm is take for a term that fits in conds.
func (f *UserFilter) takeTerm(term eqTerm, name, sub string, whole bool, conds *conditions) (skip, exact bool) {
	str, isString := term.lit.(string)
	if b, isBool := term.lit.(bool); isBool && name == "active" && term.op == filter.EQ {
		state := "SUSPENDED"
		if b {
			state = "ACTIVE"
		}
		conds.add("state", "=", state)
		return false, true
	}
	if !isString {
		return false, false
	}
	if name == "meta" && (sub == "lastModified" || sub == "created") {
		op, ok := timeOps[term.op]
		if _, err := time.Parse(time.RFC3339Nano, str); !ok || err != nil {
			return false, false
		}
		field := "update_time"
		if sub == "created" {
			field = "create_time"
		}
		conds.add(field, op, quote(str))
		return false, true
	}
	if term.op != filter.EQ {
		return false, false
	}
	if !storable(str) {
		f.None = true
		return name == "groups" && sub == "value" && whole, true
	}
	switch {
	case name == "groups" && sub == "value" && whole:
		id, ok := userID(str)
		if !ok {
			f.None = true
			return true, true
		}
		conds.add("group", "=", quote(id))
		return true, true
	case name == "userName":
		if isAddress(str) {
			// A userName that is an address is the user's email; a
			// user whose email it is may have another userName kept in
			// its attributes, which Match sees.
			conds.add("email", "=", quote(str))
			return false, false
		}
		conds.add("attributes."+attrKey+"."+attrUserNameKey, "=", quote(lowerKey(str)))
		return false, true
	case name == "externalId":
		conds.add("external_id", "=", quote(str))
		return false, true
	case name == "emails" && sub == "value":
		conds.add("email", "=", quote(str))
		return false, whole
	case name == "displayName":
		if f.Query == "" {
			if _, err := users.ParseSearch(str); err == nil {
				f.Query = str
			}
		}
		return false, false
	case name == "id":
		if _, ok := userID(str); !ok || (f.ID != "" && f.ID != str) {
			f.None = true
		}
		f.ID = str
		return false, false
	}
	return false, false
}

// CompileGroupFilter compiles a filter of the /Groups endpoint. An empty
// filter matches every group. Errors are 400 invalidFilter.
func CompileGroupFilter(s string) (*GroupFilter, error) {
	f := &GroupFilter{Exact: true}
	if strings.TrimSpace(s) == "" && len(s) <= MaxFilterBytes {
		return f, nil
	}
	e, err := parseFilter(s)
	if err != nil {
		return nil, err
	}
	c := &compiler{rt: groupType, membership: "members"}
	parts := conjuncts(e)
	skip := make([]bool, len(parts))
	var (
		conds   conditions
		nameSet bool
		extID   string
	)
	for i, part := range parts {
		term, ok := c.simpleTerm(part)
		if !ok {
			f.Exact = false
			continue
		}
		_, whole := part.(*filter.AttributeExpression)
		whole = whole || valueEqOnly(part)
		str, isString := term.lit.(string)
		name := term.t.a.name
		if !isString || term.op != filter.EQ {
			f.Exact = false
			continue
		}
		exact := false
		switch {
		case name == "members" && term.t.sub != nil && term.t.sub.name == "value" && whole:
			skip[i], exact = true, true
			id, ok := userID(str)
			if !ok {
				f.None = true
				break
			}
			if f.MemberID != "" && f.MemberID != id {
				return nil, invalidFilter("a filter may name one member (members.value eq) at most")
			}
			f.MemberID = id
		case !storable(str):
			f.None, exact = true, true
		case name == "displayName" && !nameSet:
			nameSet = true
			conds.add("display_name", "=", quote(str))
		case name == "externalId":
			exact = true
			switch extID {
			case "":
				extID = str
				conds.add("external_id", "=", quote(str))
			case str:
			default:
				// The users API takes external_id once, and a group
				// has one: two values match nothing.
				f.None = true
			}
		case name == "id":
			if _, ok := userID(str); !ok || (f.ID != "" && f.ID != str) {
				f.None = true
			}
			f.ID = str
		}
		f.Exact = f.Exact && exact
	}
	if f.pred, err = c.compileTop(parts, skip); err != nil {
		return nil, err
	}
	if f.Filter = conds.String(); f.Filter != "" {
		if _, _, err := users.ParseGroupFilter(f.Filter); err != nil {
			return nil, &Error{Status: http.StatusInternalServerError, Detail: "internal error", Err: err}
		}
	}
	f.Exact = f.Exact && f.ID == "" && !f.None
	return f, nil
}
