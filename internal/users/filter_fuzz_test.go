package users_test

import (
	"errors"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

// placeholder matches the bind placeholders of both dialects.
var placeholder = regexp.MustCompile(`[$?]([0-9]+)`)

// FuzzParseFilter checks that ParseFilter never panics, that it fails only
// with an *InvalidError on "filter", that each filter it returns holds
// well-formed conditions that ListClause turns into SQL for both dialects,
// and that no caller text reaches the statement: the statement of a filter
// is the same when the letters of its quoted strings change.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{
		``, `state = "ACTIVE"`, `email = "a@b.c" AND create_time > "2026-01-02T03:04:05Z"`,
		`display_name != "x \" y"`, `update_time<=2026-01-02T03:04:05.999999999+05:30`, `state = "`, `AND AND`,
		`external_id = "hr-1" AND external_id != "" AND externalId:*`,
		`given_name = "Ada" AND family_name != Lovelace AND phone_number = "+1 415 555 0100" AND locale = en-us AND time_zone = Europe/Paris`,
		`email_verified = true AND phoneVerified != false`,
		`attributes.department = "R&D" AND attributes.age >= 30 AND attributes.team.lead:*`,
		`attributes.a = null AND attributes.b != null AND attributes.c = true AND attributes.d != -1.5e3`,
		`attributes.name < "M" AND attributes.name >= A AND attributes.x = 01`,
		`attributes.a.b.c.d.e.f.g.h.i = 1`, `attributes.1 = 2`, `attributes.a > true`, `attributes.a = 1e999`,
		`given_name:x`, `email_verified:*`, `attributes.x = "'; DROP TABLE users; --"`,
		`attributes.x = "\\"`, `external_id = "\")) OR 1=1 --"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := users.ParseFilter(s)
		if err != nil {
			var inv *users.InvalidError
			if !errors.As(err, &inv) || len(inv.Violations) != 1 || inv.Violations[0].Field != "filter" {
				t.Fatalf("ParseFilter(%q) err = %v, not an InvalidError on filter", s, err)
			}
			return
		}
		if len(got) > 2*users.MaxFilterConditions {
			t.Fatalf("ParseFilter(%q) = %d conditions", s, len(got))
		}
		for _, c := range got {
			checkCondition(t, s, c)
		}
		stmts := listClauses(t, s, got)

		// The same filter with other letters in its quoted strings has
		// the same statement, when it parses (a state or a time may not).
		s2 := rotateQuoted(s)
		if s2 == s {
			return
		}
		got2, err := users.ParseFilter(s2)
		if err != nil {
			return
		}
		for i, stmt := range listClauses(t, s2, got2) {
			if stmt != stmts[i] {
				t.Fatalf("the statements of\n%q and\n%q differ:\n%s\n%s", s, s2, stmts[i], stmt)
			}
		}
	})
}

// checkCondition fails t unless c is a condition ParseFilter may return.
func checkCondition(t *testing.T, s string, c users.Condition) {
	t.Helper()
	eqNe := c.Op == users.OpEq || c.Op == users.OpNe
	ok := false
	switch c.Field {
	case users.FieldState:
		_, isState := c.Value.(users.State)
		ok = isState && eqNe
	case users.FieldEmail, users.FieldDisplayName:
		_, isString := c.Value.(string)
		ok = isString && eqNe
	case users.FieldCreateTime, users.FieldUpdateTime:
		_, ok = c.Value.(time.Time)
		ok = ok && c.Op <= users.OpGe
	case users.FieldExternalID, users.FieldGivenName, users.FieldFamilyName, users.FieldPhoneNumber, users.FieldLocale, users.FieldTimeZone:
		_, isString := c.Value.(string)
		ok = isString && eqNe || c.Op == users.OpHas && c.Value == nil
	case users.FieldEmailVerified, users.FieldPhoneVerified:
		_, isBool := c.Value.(bool)
		ok = isBool && eqNe
	case users.FieldAttribute:
		ok = users.ValidFilterPath(c.Path)
		switch c.Value.(type) {
		case string, float64:
			ok = ok && c.Op <= users.OpGe
		case bool:
			ok = ok && eqNe
		case nil:
			ok = ok && (eqNe || c.Op == users.OpHas)
		default:
			ok = false
		}
	}
	if ok && c.Field != users.FieldAttribute && c.Path != nil {
		ok = false
	}
	if !ok {
		t.Fatalf("ParseFilter(%q): bad condition %+v", s, c)
	}
}

// listClauses returns the ListClause statements of filter for Postgres
// and SQLite, after checking that each binds plain values, each with one
// placeholder number.
func listClauses(t *testing.T, s string, filter users.Filter) [2]string {
	t.Helper()
	var stmts [2]string
	for i, d := range []usersql.Dialect{usersql.Postgres, usersql.SQLite} {
		stmt, args, err := usersql.ListClause(d, users.ListQuery{Tenant: "tenant", Filter: filter, Limit: 10})
		if err != nil {
			t.Fatalf("ParseFilter(%q): ListClause err = %v", s, err)
		}
		for _, a := range args {
			switch a.(type) {
			case string, int, int64, float64, bool, []string, time.Time:
			default:
				t.Fatalf("ParseFilter(%q): ListClause binds a %T", s, a)
			}
		}
		used := make([]bool, len(args)+1)
		for _, m := range placeholder.FindAllStringSubmatch(stmt, -1) {
			n, _ := strconv.Atoi(m[1])
			if n < 1 || n > len(args) {
				t.Fatalf("ParseFilter(%q): placeholder %s of %d args in %s", s, m[0], len(args), stmt)
			}
			used[n] = true
		}
		for n := 1; n <= len(args); n++ {
			if !used[n] {
				t.Fatalf("ParseFilter(%q): arg %d is bound to no placeholder in %s", s, n, stmt)
			}
		}
		stmts[i] = stmt
	}
	return stmts
}

// rotateQuoted returns s with each ASCII letter inside its double-quoted
// strings replaced by the next one (z by a): the same filter with other
// string values of the same length.
func rotateQuoted(s string) string {
	b := []byte(s)
	quoted := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			quoted = !quoted
		case !quoted:
		case c == '\\':
			i++ // the escaped byte stays
		case c == 'z':
			b[i] = 'a'
		case c == 'Z':
			b[i] = 'A'
		case 'a' <= c && c < 'z', 'A' <= c && c < 'Z':
			b[i]++
		}
	}
	return string(b)
}

func TestRotateQuoted(t *testing.T) {
	for in, want := range map[string]string{
		`a = "abz" AND b = xyz`: `a = "bca" AND b = xyz`,
		`a = "x\"y\\" AND "Z"`:  `a = "y\"z\\" AND "A"`,
		`no quotes`:             `no quotes`,
	} {
		if got := rotateQuoted(in); got != want {
			t.Errorf("rotateQuoted(%q) = %q, want %q", in, got, want)
		}
	}
}
