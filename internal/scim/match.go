package scim

import (
	"encoding/json"
	"strings"
	"time"

	filter "github.com/scim2/filter-parser/v2"

	"github.com/usersd/usersd/internal/users"
)

// pred is a compiled filter: whether a document (a resource, or one value
// of a multi-valued attribute inside a value path) matches.
type pred func(doc map[string]any) bool

// lowerKey is the form in which strings of attributes that are not
// caseExact compare: lower case, as users.EmailKey compares addresses, so
// that the predicate and the store's case-insensitive keys agree on every
// string.
func lowerKey(s string) string { return users.EmailKey(s) }

// compiler turns a parsed filter into a pred for one resource type,
// checking every attribute, operator and value on the way: a filter that
// compiles cannot fail while it runs.
type compiler struct {
	rt *resourceType
	// membership is the attribute only the membership index answers
	// (groups of a user, members of a group): it is allowed only as a
	// top-level conjunct, which the plan takes (see plan.go), so the
	// compiler refuses it anywhere else.
	membership string
}

// target is an attribute a filter compares: a top-level attribute of the
// schema s, and the sub-attribute compared (nil for the attribute itself).
type target struct {
	s   *schema
	a   *attribute
	sub *attribute
}

// resolve finds the attribute a filter names at the top level of a
// resource: names match in any case and may carry their schema's URN.
func (c *compiler) resolve(p filter.AttributePath) (target, error) {
	a, s := c.rt.lookup(p.URI(), p.AttributeName)
	if a == nil {
		return target{}, invalidFilter("unknown attribute %q", p.String())
	}
	t := target{s: s, a: a}
	if p.SubAttribute != nil {
		if a.ignored {
			return t, nil
		}
		if t.sub = a.sub(*p.SubAttribute); t.sub == nil {
			return target{}, invalidFilter("unknown attribute %q", p.String())
		}
	}
	return t, nil
}

// expr compiles e. in is nil at the top level, and inside a value path
// (emails[type eq "work"]) the attribute whose values the filter tests.
func (c *compiler) expr(e filter.Expression, in *attribute) (pred, error) {
	switch e := e.(type) {
	case *filter.LogicalExpression:
		l, err := c.expr(e.Left, in)
		if err != nil {
			return nil, err
		}
		r, err := c.expr(e.Right, in)
		if err != nil {
			return nil, err
		}
		if strings.EqualFold(string(e.Operator), string(filter.OR)) {
			return func(d map[string]any) bool { return l(d) || r(d) }, nil
		}
		return func(d map[string]any) bool { return l(d) && r(d) }, nil
	case *filter.NotExpression:
		p, err := c.expr(e.Expression, in)
		if err != nil {
			return nil, err
		}
		return func(d map[string]any) bool { return !p(d) }, nil
	case *filter.ValuePath:
		return c.valuePath(e, in)
	case *filter.AttributeExpression:
		return c.attrExpr(e, in)
	}
	return nil, invalidFilter("unsupported expression %T", e)
}

// valuePath compiles attr[filter]: it holds when one value of the
// attribute satisfies the filter. A single-valued complex attribute is
// tested as its one value.
func (c *compiler) valuePath(e *filter.ValuePath, in *attribute) (pred, error) {
	if in != nil {
		return nil, invalidFilter("value paths do not nest")
	}
	t, err := c.resolve(e.AttributePath)
	if err != nil {
		return nil, err
	}
	if t.sub != nil || e.AttributePath.SubAttribute != nil {
		return nil, invalidFilter("%s: a value path filters an attribute's values, not a sub-attribute's", e.AttributePath.String())
	}
	if strings.EqualFold(t.a.name, c.membership) {
		return nil, membershipError(t.a.name)
	}
	if t.a.ignored {
		return never, nil
	}
	if t.a.typ != typeComplex {
		return nil, invalidFilter("%s is not complex: it has no values to filter", t.a.name)
	}
	inner, err := c.expr(e.ValueFilter, t.a)
	if err != nil {
		return nil, err
	}
	return func(d map[string]any) bool {
		for _, el := range elements(d, t) {
			if inner(el) {
				return true
			}
		}
		return false
	}, nil
}

func never(map[string]any) bool { return false }

func membershipError(name string) error {
	return invalidFilter("%s can be filtered only as %s.value eq \"<id>\", joined to the rest with and", name, name)
}

// attrExpr compiles one comparison.
func (c *compiler) attrExpr(e *filter.AttributeExpression, in *attribute) (pred, error) {
	var (
		def    *attribute // the attribute whose values are compared
		values func(map[string]any) []any
		name   = e.AttributePath.String()
	)
	if in != nil {
		p := e.AttributePath
		if p.URIPrefix != nil || p.SubAttribute != nil {
			return nil, invalidFilter("%s: inside a value path, name a sub-attribute of %s alone", name, in.name)
		}
		def = in.sub(p.AttributeName)
		if def == nil {
			return nil, invalidFilter("%s has no sub-attribute %q", in.name, p.AttributeName)
		}
		key := def.name
		values = func(el map[string]any) []any {
			if v, ok := el[key]; ok {
				return []any{v}
			}
			return nil
		}
	} else {
		t, err := c.resolve(e.AttributePath)
		if err != nil {
			return nil, err
		}
		if strings.EqualFold(t.a.name, c.membership) {
			return nil, membershipError(t.a.name)
		}
		if t.a.ignored {
			// Kept nowhere, so never assigned, whatever its type: ne
			// and eq null hold, and nothing else does, as for any
			// unassigned attribute.
			op := filter.CompareOperator(strings.ToLower(string(e.Operator)))
			holds := op == filter.NE && e.CompareValue != nil || op == filter.EQ && e.CompareValue == nil
			return func(map[string]any) bool { return holds }, nil
		}
		if t.a.typ == typeComplex && t.sub == nil {
			if e.Operator == filter.PR {
				return func(d map[string]any) bool { return len(elements(d, t)) > 0 }, nil
			}
			// "emails eq …" compares the value sub-attribute, as RFC
			// 7644 section 3.4.2.2 reads a complex attribute without
			// one.
			if t.sub = t.a.sub("value"); t.sub == nil {
				return nil, invalidFilter("%s is complex: compare one of its sub-attributes", name)
			}
		}
		def, values = t.a, topValues(t)
		if t.sub != nil {
			def = t.sub
		}
	}

	op := filter.CompareOperator(strings.ToLower(string(e.Operator)))
	present := func(d map[string]any) bool { return len(values(d)) > 0 }
	switch {
	case op == filter.PR:
		return present, nil
	case e.CompareValue == nil:
		switch op {
		case filter.EQ:
			return func(d map[string]any) bool { return !present(d) }, nil
		case filter.NE:
			return present, nil
		}
		return nil, invalidFilter("%s %s null: null compares only with eq and ne", name, op)
	}
	match, err := comparison(def, name, op, e.CompareValue)
	if err != nil {
		return nil, err
	}
	anyMatch := func(d map[string]any) bool {
		for _, v := range values(d) {
			if match(v) {
				return true
			}
		}
		return false
	}
	if op == filter.NE {
		// ne holds when no value is equal: an unassigned attribute is
		// not equal to anything.
		return func(d map[string]any) bool { return !anyMatch(d) }, nil
	}
	return anyMatch, nil
}

// comparison returns the test of one value against the literal, by the
// attribute's type (RFC 7644 section 3.4.2.2): strings compare as the
// attribute's caseExact says, dateTimes chronologically, booleans only for
// equality. ne is compiled as eq, which the caller negates.
func comparison(def *attribute, name string, op filter.CompareOperator, lit any) (func(any) bool, error) {
	switch def.typ {
	case typeBoolean:
		b, ok := lit.(bool)
		if !ok {
			return nil, invalidFilter("%s is a boolean: compare it with true or false, not %s", name, literalKind(lit))
		}
		if op != filter.EQ && op != filter.NE {
			return nil, invalidFilter("%s is a boolean: it compares only with eq and ne, not %s", name, op)
		}
		return func(v any) bool { x, ok := v.(bool); return ok && x == b }, nil

	case typeDateTime:
		s, ok := lit.(string)
		if !ok {
			return nil, invalidFilter("%s is a dateTime: compare it with an RFC 3339 string, not %s", name, literalKind(lit))
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return nil, invalidFilter("%s is a dateTime: %q is not an RFC 3339 date and time", name, s)
		}
		var cmp func(c int) bool
		switch op {
		case filter.EQ, filter.NE:
			cmp = func(c int) bool { return c == 0 }
		case filter.GT:
			cmp = func(c int) bool { return c > 0 }
		case filter.GE:
			cmp = func(c int) bool { return c >= 0 }
		case filter.LT:
			cmp = func(c int) bool { return c < 0 }
		case filter.LE:
			cmp = func(c int) bool { return c <= 0 }
		default:
			return nil, invalidFilter("%s is a dateTime: it compares with eq, ne, gt, ge, lt and le, not %s", name, op)
		}
		return func(v any) bool {
			s, ok := v.(string)
			if !ok {
				return false
			}
			vt, err := time.Parse(time.RFC3339Nano, s)
			return err == nil && cmp(vt.Compare(t))
		}, nil

	case typeComplex:
		return nil, invalidFilter("%s is complex: compare one of its sub-attributes", name)
	}

	s, ok := lit.(string)
	if !ok {
		return nil, invalidFilter("%s is a string: compare it with a string, not %s", name, literalKind(lit))
	}
	norm := func(x string) string { return x }
	if !def.caseExact {
		norm = lowerKey
	}
	s = norm(s)
	var test func(v string) bool
	switch op {
	case filter.EQ, filter.NE:
		test = func(v string) bool { return v == s }
	case filter.CO:
		test = func(v string) bool { return strings.Contains(v, s) }
	case filter.SW:
		test = func(v string) bool { return strings.HasPrefix(v, s) }
	case filter.EW:
		test = func(v string) bool { return strings.HasSuffix(v, s) }
	case filter.GT:
		test = func(v string) bool { return v > s }
	case filter.GE:
		test = func(v string) bool { return v >= s }
	case filter.LT:
		test = func(v string) bool { return v < s }
	case filter.LE:
		test = func(v string) bool { return v <= s }
	default:
		return nil, invalidFilter("unknown operator %q", op)
	}
	return func(v any) bool {
		x, ok := v.(string)
		return ok && test(norm(x))
	}, nil
}

// literalKind names the JSON type of a filter's literal, for messages.
func literalKind(v any) string {
	switch v.(type) {
	case json.Number, int, float64:
		return "a number"
	}
	return jsonKind(v)
}

// elements returns the values of a complex attribute: each value of a
// multi-valued one, the one value of a single-valued one.
func elements(d map[string]any, t target) []map[string]any {
	c := container(d, t.s, false)
	if c == nil {
		return nil
	}
	switch v := c[t.a.name].(type) {
	case map[string]any:
		return []map[string]any{v}
	case []any:
		out := make([]map[string]any, 0, len(v))
		for _, e := range v {
			if m, ok := e.(map[string]any); ok {
				out = append(out, m)
			}
		}
		return out
	}
	return nil
}

// topValues returns the getter of the values a top-level comparison tests:
// the attribute's value, or its sub-attribute's in each of its values.
func topValues(t target) func(map[string]any) []any {
	if t.sub == nil {
		return func(d map[string]any) []any {
			c := container(d, t.s, false)
			if c == nil {
				return nil
			}
			if v, ok := c[t.a.name]; ok {
				return []any{v}
			}
			return nil
		}
	}
	key := t.sub.name
	return func(d map[string]any) []any {
		var out []any
		for _, el := range elements(d, t) {
			if v, ok := el[key]; ok {
				out = append(out, v)
			}
		}
		return out
	}
}
