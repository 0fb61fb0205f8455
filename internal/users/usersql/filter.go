package usersql

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/usersd/usersd/internal/users"
)

// The columns of the profile fields a filter compares as text; "" is unset.
var textColumns = map[users.FilterField]string{
	users.FieldGivenName:   "given_name",
	users.FieldFamilyName:  "family_name",
	users.FieldPhoneNumber: "phone_number",
	users.FieldLocale:      "locale",
	users.FieldTimeZone:    "time_zone",
}

// The columns of the boolean fields, stored as the dialect's Bool.
var boolColumns = map[users.FilterField]string{
	users.FieldEmailVerified: "email_verified",
	users.FieldPhoneVerified: "phone_verified",
}

// condition returns the SQL of one condition of a filter, a boolean
// expression on the columns of users, binding every value with bind. It
// returns an error for a condition that ParseFilter does not make.
func condition(d Dialect, c users.Condition, bind func(any) string) (string, error) {
	switch c.Field {
	case users.FieldState, users.FieldEmail, users.FieldDisplayName, users.FieldCreateTime, users.FieldUpdateTime:
		if int(c.Op) >= len(ops) {
			break
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
			return "", fmt.Errorf("usersql: value of type %T", c.Value)
		}
		return columns[c.Field] + " " + ops[c.Op] + " " + bind(v), nil

	case users.FieldExternalID:
		// NULL when unset: "" stands for NULL, as it stands for '' in
		// the other text columns.
		v, ok := c.Value.(string)
		switch {
		case c.Op == users.OpHas && c.Value == nil, c.Op == users.OpNe && ok && v == "":
			return "external_id IS NOT NULL", nil
		case !ok:
		case c.Op == users.OpEq && v == "":
			return "external_id IS NULL", nil
		case c.Op == users.OpEq:
			return "external_id = " + bind(v), nil
		case c.Op == users.OpNe:
			return "(external_id IS NULL OR external_id <> " + bind(v) + ")", nil
		}

	case users.FieldGivenName, users.FieldFamilyName, users.FieldPhoneNumber, users.FieldLocale, users.FieldTimeZone:
		col := textColumns[c.Field]
		v, ok := c.Value.(string)
		switch {
		case c.Op == users.OpHas && c.Value == nil:
			return col + " <> ''", nil
		case ok && (c.Op == users.OpEq || c.Op == users.OpNe):
			return col + " " + ops[c.Op] + " " + bind(v), nil
		}

	case users.FieldEmailVerified, users.FieldPhoneVerified:
		if v, ok := c.Value.(bool); ok && (c.Op == users.OpEq || c.Op == users.OpNe) {
			return boolColumns[c.Field] + " " + ops[c.Op] + " " + bind(d.Bool(v)), nil
		}

	case users.FieldAttribute:
		if !users.ValidFilterPath(c.Path) {
			return "", fmt.Errorf("usersql: attributes path %q", c.Path)
		}
		if !attributeOK(c) {
			break
		}
		return d.Attribute(c, bind)

	case users.FieldGroup:
		// Membership is one probe of group_members' primary key
		// (group_id, user_id) per user that the statement reads, a
		// correlated EXISTS: the statement walks its index and stops at
		// the page, however many members the group has. An uncorrelated
		// IN (SELECT user_id …) reads every member first: SQLite builds a
		// table of them (63 ms for a page of a group of 100,000, against
		// 0.7 ms), and Postgres can only run NOT IN as a subplan that
		// hashes every member (or, past work_mem, reads them again for
		// each user), where NOT EXISTS is an anti-join of probes. users.id
		// is the users table's, or that of a subquery named users
		// (SearchPage's).
		if v, ok := c.Value.(string); ok && (c.Op == users.OpEq || c.Op == users.OpNe) {
			exists := "EXISTS"
			if c.Op == users.OpNe {
				exists = "NOT EXISTS"
			}
			return exists + " (SELECT 1 FROM group_members WHERE group_id = " + bind(v) + " AND user_id = users.id)", nil
		}

	default:
		return "", fmt.Errorf("usersql: unknown field %d", c.Field)
	}
	return "", fmt.Errorf("usersql: op %d with a value of type %T on field %d", c.Op, c.Value, c.Field)
}

// attributeOK reports whether c's op and value make an attributes
// condition: any value with = and !=, a finite float64 or a string with
// < <= > >=, nil with OpHas.
func attributeOK(c users.Condition) bool {
	switch v := c.Value.(type) {
	case nil:
		return c.Op == users.OpEq || c.Op == users.OpNe || c.Op == users.OpHas
	case bool:
		return c.Op == users.OpEq || c.Op == users.OpNe
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	case string:
	default:
		return false
	}
	return c.Op >= users.OpEq && c.Op <= users.OpGe
}

// attributeDocument returns the JSON object that holds v at path, which
// contains exactly the attributes that hold v at path (Postgres's @>).
func attributeDocument(path []string, v any) (string, error) {
	var b strings.Builder
	for _, k := range path {
		b.WriteString(`{"`) // keys need no escaping: see users.ValidFilterPath
		b.WriteString(k)
		b.WriteString(`":`)
	}
	j, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	b.Write(j)
	b.WriteString(strings.Repeat("}", len(path)))
	return b.String(), nil
}

// postgresAttribute is Postgres's Dialect.Attribute. The path is bound as
// a text[] and the values as JSON text cast to jsonb:
//
//	:*, != null:   jsonb_typeof(attributes #> $p::text[]) <> 'null'
//	= v:           attributes @> $d::jsonb       (d = {"k1":{"k2":v}})
//	!= v:          (jsonb_typeof(attributes #> $p::text[]) = 'T' AND NOT attributes @> $d::jsonb)
//	< string:      (jsonb_typeof(attributes #> $p::text[]) = 'string' AND (attributes #>> $p::text[]) COLLATE "C" < $v)
//	< number:      (jsonb_typeof(attributes #> $p::text[]) = 'number' AND attributes #> $p::text[] < $v::jsonb)
//
// where T is the JSON type of v. Containment (=) can use a GIN index on
// attributes (jsonb_path_ops). No expression casts a jsonb value to another
// type, so whatever the attributes hold and in whatever order Postgres
// evaluates the conjuncts, none raises an error: two jsonb numbers compare
// numerically, and a missing path is NULL.
//
// Postgres compares a stored number exactly (numeric) with the float64 of
// the filter, SQLite as a float64: the two agree on every stored number
// that a float64 holds exactly or that is written as the shortest decimal
// of its float64 (0.1, 30.5, integers up to 2^53), but 12345678901234567890
// = 12345678901234567890 holds on SQLite alone, both sides rounding to the
// same float64.
func postgresAttribute(c users.Condition, bind func(any) string) (string, error) {
	if c.Op == users.OpHas || c.Op == users.OpNe && c.Value == nil {
		return "jsonb_typeof(attributes #> " + bind(c.Path) + "::text[]) <> 'null'", nil
	}
	if c.Op == users.OpEq || c.Op == users.OpNe {
		doc, err := attributeDocument(c.Path, c.Value)
		if err != nil {
			return "", fmt.Errorf("usersql: %w", err)
		}
		if c.Op == users.OpEq {
			return "attributes @> " + bind(doc) + "::jsonb", nil
		}
		return "(jsonb_typeof(attributes #> " + bind(c.Path) + "::text[]) = '" + jsonType(c.Value) +
			"' AND NOT attributes @> " + bind(doc) + "::jsonb)", nil
	}
	p := bind(c.Path)
	switch v := c.Value.(type) {
	case string:
		return "(jsonb_typeof(attributes #> " + p + "::text[]) = 'string' AND (attributes #>> " + p +
			`::text[]) COLLATE "C" ` + ops[c.Op] + " " + bind(v) + ")", nil
	case float64:
		j, err := json.Marshal(v)
		if err != nil {
			return "", fmt.Errorf("usersql: %w", err)
		}
		return "(jsonb_typeof(attributes #> " + p + "::text[]) = 'number' AND attributes #> " + p +
			"::text[] " + ops[c.Op] + " " + bind(string(j)) + "::jsonb)", nil
	}
	return "", fmt.Errorf("usersql: op %d with a value of type %T", c.Op, c.Value)
}

// jsonType is jsonb_typeof of a value of an attributes condition.
func jsonType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	}
	return "null"
}

// sqliteAttribute is SQLite's Dialect.Attribute. The path is bound as a
// JSON path, $."k1"."k2", and the value as itself (a bool as 0 or 1, the
// value json_extract returns for true and false):
//
//	:*, != null:   json_type(attributes, ?p) <> 'null'
//	= null:        json_type(attributes, ?p) = 'null'
//	op v:          (json_type(attributes, ?p) IN (T) AND json_extract(attributes, ?p) op ?v)
//
// where T is 'text' for a string, 'integer', 'real' for a number and
// 'true', 'false' for a bool. Text compares with the BINARY collation,
// bytewise; an integer and a real compare numerically.
func sqliteAttribute(c users.Condition, bind func(any) string) (string, error) {
	p := bind(sqlitePath(c.Path))
	var (
		types string
		v     any
	)
	switch val := c.Value.(type) {
	case nil:
		if c.Op == users.OpEq {
			return "json_type(attributes, " + p + ") = 'null'", nil
		}
		return "json_type(attributes, " + p + ") <> 'null'", nil
	case string:
		types, v = "'text'", val
	case float64:
		types, v = "'integer', 'real'", val
	case bool:
		types, v = "'true', 'false'", sqliteBool(val)
	default:
		return "", fmt.Errorf("usersql: value of type %T", c.Value)
	}
	return "(json_type(attributes, " + p + ") IN (" + types + ") AND json_extract(attributes, " + p + ") " +
		ops[c.Op] + " " + bind(v) + ")", nil
}

// sqlitePath returns the JSON path of SQLite's JSON functions for path,
// each key quoted: $."k1"."k2".
func sqlitePath(path []string) string {
	var b strings.Builder
	b.WriteByte('$')
	for _, k := range path {
		b.WriteString(`."`) // keys need no escaping: see users.ValidFilterPath
		b.WriteString(k)
		b.WriteByte('"')
	}
	return b.String()
}

// sqliteBool is SQLite's Dialect.Bool: SQLite has no boolean type, and
// stores false and true as the integers 0 and 1.
func sqliteBool(b bool) any {
	if b {
		return int64(1)
	}
	return int64(0)
}
