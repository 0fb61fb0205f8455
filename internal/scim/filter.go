package scim

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	// The SCIM filter grammar (RFC 7644 section 3.4.2.2, with its errata)
	// has value paths, URN-qualified names, JSON literals and precedence
	// rules that a hand-written parser would get subtly wrong; this
	// parser implements the ABNF as written and returns an AST that
	// compiles into both the store's conditions and a predicate. It is
	// called only after the bounds below, which it does not enforce.
	filter "github.com/scim2/filter-parser/v2"
)

// Bounds of a filter, and of the value filter of a PATCH path. They keep
// parsing and matching cheap whatever a client sends: identity providers
// send filters of one or two comparisons.
const (
	// MaxFilterBytes bounds a filter's text.
	MaxFilterBytes = 1024
	// MaxFilterTerms bounds the comparisons (attribute expressions) of a
	// filter, those inside value paths included.
	MaxFilterTerms = 32
	// MaxFilterDepth bounds the nesting of parentheses and brackets. The
	// parser recurses once per level, so deep nesting is refused before
	// it runs, never met as a stack overflow.
	MaxFilterDepth = 8
)

// parseFilter parses a filter within the bounds. Every error is a 400
// invalidFilter.
func parseFilter(s string) (filter.Expression, error) {
	s, err := checkFilterText(s)
	if err != nil {
		return nil, err
	}
	var e filter.Expression
	func() {
		// The parser is a dependency: a panic of it on some input is a
		// bad filter to the client, not a failed request.
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%v", r)
			}
		}()
		// Numbers as json.Number: the parser would turn an integer
		// beyond an int's range into a wrapped int.
		e, err = filter.ParseFilterNumber([]byte(s))
	}()
	if err != nil {
		return nil, invalidFilter("not a SCIM filter (RFC 7644 section 3.4.2.2): %s", parserMessage(err))
	}
	if n := countTerms(e); n > MaxFilterTerms {
		return nil, invalidFilter("more than %d comparisons", MaxFilterTerms)
	}
	if err := unescape(e); err != nil {
		return nil, err
	}
	return e, nil
}

// checkFilterText checks a filter's size and nesting before it is parsed,
// and returns it with the hexadecimal digits of its \u escapes in upper
// case: the parser's grammar takes only those, where JSON, whose strings
// the filter's are, takes either.
func checkFilterText(s string) (string, error) {
	if len(s) > MaxFilterBytes {
		return "", invalidFilter("longer than %d bytes", MaxFilterBytes)
	}
	if strings.TrimSpace(s) == "" {
		return "", invalidFilter("empty")
	}
	var b []byte // s with its escapes' digits in upper case, once one needs it
	depth, inString := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inString && c == '\\':
			if i+5 < len(s) && s[i+1] == 'u' {
				for j := i + 2; j < i+6; j++ {
					if 'a' <= s[j] && s[j] <= 'f' {
						if b == nil {
							b = []byte(s)
						}
						b[j] = s[j] - 'a' + 'A'
					}
				}
			}
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '(' || c == '[':
			if depth++; depth > MaxFilterDepth {
				return "", invalidFilter("nested deeper than %d levels", MaxFilterDepth)
			}
		case c == ')' || c == ']':
			depth--
		}
	}
	if b != nil {
		s = string(b)
	}
	return s, nil
}

// parserPosition finds the position in the parser's messages:
// "parse conflict [00:022]: expected …".
var parserPosition = regexp.MustCompile(`\[(\d+):(\d+)\]`)

// parserMessage turns the parser's error into a position: its messages
// name the grammar's internals (and Go's types), not the problem.
func parserMessage(err error) string {
	if m := parserPosition.FindStringSubmatch(err.Error()); m != nil {
		if col, convErr := strconv.Atoi(m[2]); convErr == nil {
			return fmt.Sprintf("syntax error at byte %d", col)
		}
	}
	return "syntax error"
}

// unescape decodes the escapes of the string literals of e, which the
// parser leaves as written ("a\"b" stays a\"b). The literals are JSON
// strings, so JSON decodes them.
func unescape(e filter.Expression) error {
	switch e := e.(type) {
	case *filter.LogicalExpression:
		if err := unescape(e.Left); err != nil {
			return err
		}
		return unescape(e.Right)
	case *filter.NotExpression:
		return unescape(e.Expression)
	case *filter.ValuePath:
		return unescape(e.ValueFilter)
	case *filter.AttributeExpression:
		s, ok := e.CompareValue.(string)
		if !ok || !strings.Contains(s, `\`) {
			return nil
		}
		var v string
		if err := json.Unmarshal([]byte(`"`+s+`"`), &v); err != nil {
			return invalidFilter("%s: the string is not a JSON string", e.AttributePath.String())
		}
		e.CompareValue = v
	}
	return nil
}

// countTerms counts the attribute expressions of e. The AST's depth is at
// most the terms plus the nesting, both bounded, so the recursion is too.
func countTerms(e filter.Expression) int {
	switch e := e.(type) {
	case *filter.LogicalExpression:
		return countTerms(e.Left) + countTerms(e.Right)
	case *filter.NotExpression:
		return countTerms(e.Expression)
	case *filter.ValuePath:
		return countTerms(e.ValueFilter)
	case *filter.AttributeExpression:
		return 1
	}
	return 0
}

// conjuncts returns the operands of e's top-level "and"s, in order: the
// parts of which each must hold, which an index may answer alone.
func conjuncts(e filter.Expression) []filter.Expression {
	if l, ok := e.(*filter.LogicalExpression); ok && strings.EqualFold(string(l.Operator), string(filter.AND)) {
		return append(conjuncts(l.Left), conjuncts(l.Right)...)
	}
	return []filter.Expression{e}
}

// eqTerm is a conjunct of the form attr eq "value" (or a value path whose
// filter has value eq "…" among its conjuncts, and attr eq true).
type eqTerm struct {
	t   target
	op  filter.CompareOperator
	lit any
}

// simpleTerm returns the comparison a conjunct makes when it is one: a
// top-level comparison, or the value sub-attribute's eq inside a value
// path (emails[type eq "work" and value eq "a@example.com"] holds only
// for users whose emails value is that address).
func (c *compiler) simpleTerm(e filter.Expression) (eqTerm, bool) {
	switch e := e.(type) {
	case *filter.AttributeExpression:
		t, err := c.resolve(e.AttributePath)
		if err != nil || t.a.ignored {
			return eqTerm{}, false
		}
		if t.a.typ == typeComplex && t.sub == nil {
			if t.sub = t.a.sub("value"); t.sub == nil {
				return eqTerm{}, false
			}
		}
		return eqTerm{t: t, op: filter.CompareOperator(strings.ToLower(string(e.Operator))), lit: e.CompareValue}, true
	case *filter.ValuePath:
		t, err := c.resolve(e.AttributePath)
		if err != nil || t.sub != nil || t.a.ignored || t.a.typ != typeComplex {
			return eqTerm{}, false
		}
		for _, inner := range conjuncts(e.ValueFilter) {
			ae, ok := inner.(*filter.AttributeExpression)
			if !ok || ae.AttributePath.URIPrefix != nil || ae.AttributePath.SubAttribute != nil ||
				!strings.EqualFold(ae.AttributePath.AttributeName, "value") ||
				!strings.EqualFold(string(ae.Operator), string(filter.EQ)) {
				continue
			}
			t.sub = t.a.sub("value")
			if t.sub == nil {
				return eqTerm{}, false
			}
			return eqTerm{t: t, op: filter.EQ, lit: ae.CompareValue}, true
		}
	}
	return eqTerm{}, false
}

// valueEqOnly reports whether e is a comparison, or a value path whose
// filter is value eq "…" alone (members[value eq "…"]), which says no more
// than attr.value eq "…": an index of the values answers either whole.
func valueEqOnly(e filter.Expression) bool {
	vp, ok := e.(*filter.ValuePath)
	if !ok {
		return true
	}
	ae, ok := vp.ValueFilter.(*filter.AttributeExpression)
	return ok && strings.EqualFold(ae.AttributePath.AttributeName, "value")
}

// compileTop compiles a filter's conjuncts into one pred, leaving out the
// ones skip says the plan answers alone. A nil pred matches everything.
func (c *compiler) compileTop(parts []filter.Expression, skip []bool) (pred, error) {
	var preds []pred
	for i, part := range parts {
		if skip[i] {
			continue
		}
		p, err := c.expr(part, nil)
		if err != nil {
			return nil, err
		}
		preds = append(preds, p)
	}
	switch len(preds) {
	case 0:
		return nil, nil
	case 1:
		return preds[0], nil
	}
	return func(d map[string]any) bool {
		for _, p := range preds {
			if !p(d) {
				return false
			}
		}
		return true
	}, nil
}
