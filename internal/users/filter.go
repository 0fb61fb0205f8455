package users

import (
	"fmt"
	"strings"
	"time"
)

// MaxFilterConditions bounds the number of comparisons in one filter.
const MaxFilterConditions = 16

// filterFields maps the names a filter may use (the API's snake_case and
// JSON lowerCamelCase forms) to fields.
var filterFields = map[string]FilterField{
	"state":        FieldState,
	"email":        FieldEmail,
	"display_name": FieldDisplayName,
	"displayName":  FieldDisplayName,
	"create_time":  FieldCreateTime,
	"createTime":   FieldCreateTime,
	"update_time":  FieldUpdateTime,
	"updateTime":   FieldUpdateTime,
}

var filterOps = map[string]Op{"=": OpEq, "!=": OpNe, "<": OpLt, "<=": OpLe, ">": OpGt, ">=": OpGe}

// ParseFilter parses the subset of AIP-160 that ListUsers supports:
//
//	filter     = comparison { "AND" comparison }
//	comparison = field op value
//	field      = state | email | display_name | create_time | update_time
//	op         = "=" | "!=" | "<" | "<=" | ">" | ">="
//	value      = "double-quoted string" | bare word
//
// state takes a state name (ACTIVE, SUSPENDED, DELETED, with or without the
// STATE_ prefix); email compares case-insensitively; state, email and
// display_name allow only = and !=; the times take RFC 3339 timestamps.
// AND is upper-case, as in AIP-160. An empty filter matches every user.
// Errors are *InvalidError values naming the field "filter".
func ParseFilter(s string) (Filter, error) {
	p := &filterParser{src: s}
	var (
		f Filter
		n int // comparisons read
	)
	p.skipSpace()
	if p.eof() {
		return nil, nil
	}
	for {
		cs, err := p.comparison()
		if err != nil {
			return nil, err
		}
		f = append(f, cs...)
		if n++; n > MaxFilterConditions {
			return nil, Invalid("filter", fmt.Sprintf("more than %d comparisons", MaxFilterConditions))
		}
		p.skipSpace()
		if p.eof() {
			return f, nil
		}
		start := p.pos
		if w := p.word(); w != "AND" {
			return nil, p.errorf(start, "expected AND, found %q", w)
		}
	}
}

type filterParser struct {
	src string
	pos int
}

func (p *filterParser) eof() bool { return p.pos >= len(p.src) }

func (p *filterParser) errorf(pos int, format string, args ...any) error {
	return Invalid("filter", fmt.Sprintf("at offset %d: %s", pos, fmt.Sprintf(format, args...)))
}

func (p *filterParser) skipSpace() {
	for !p.eof() && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t' || p.src[p.pos] == '\n' || p.src[p.pos] == '\r') {
		p.pos++
	}
}

func isWordByte(c byte) bool {
	return c == '_' || c == '-' || c == '.' || c == ':' || c == '+' || c == '@' ||
		'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// word reads a run of word bytes after optional space.
func (p *filterParser) word() string {
	p.skipSpace()
	start := p.pos
	for !p.eof() && isWordByte(p.src[p.pos]) {
		p.pos++
	}
	return p.src[start:p.pos]
}

func (p *filterParser) op() (Op, error) {
	p.skipSpace()
	start := p.pos
	for !p.eof() && strings.IndexByte("=!<>", p.src[p.pos]) >= 0 {
		p.pos++
	}
	op, ok := filterOps[p.src[start:p.pos]]
	if !ok {
		if start == p.pos {
			return 0, p.errorf(start, "expected a comparison operator")
		}
		return 0, p.errorf(start, "unknown operator %q", p.src[start:p.pos])
	}
	return op, nil
}

// value reads a quoted string (with \" and \\ escapes) or a bare word.
func (p *filterParser) value() (string, error) {
	p.skipSpace()
	start := p.pos
	if p.eof() {
		return "", p.errorf(start, "expected a value")
	}
	if p.src[p.pos] != '"' {
		w := p.word()
		if w == "" {
			return "", p.errorf(start, "expected a value")
		}
		return w, nil
	}
	p.pos++
	var b strings.Builder
	for !p.eof() {
		c := p.src[p.pos]
		p.pos++
		switch c {
		case '"':
			// A value is compared with stored text, which holds no
			// control characters; Postgres refuses a NUL or invalid
			// UTF-8 in a parameter outright.
			if problem := textProblem(b.String()); problem != "" {
				return "", p.errorf(start, "value: %s", problem)
			}
			return b.String(), nil
		case '\\':
			if p.eof() || (p.src[p.pos] != '"' && p.src[p.pos] != '\\') {
				return "", p.errorf(p.pos-1, `only \" and \\ escapes are allowed`)
			}
			b.WriteByte(p.src[p.pos])
			p.pos++
		default:
			b.WriteByte(c)
		}
	}
	return "", p.errorf(start, "unterminated string")
}

func (p *filterParser) comparison() ([]Condition, error) {
	p.skipSpace()
	start := p.pos
	name := p.word()
	field, ok := filterFields[name]
	if !ok {
		if name == "" {
			return nil, p.errorf(start, "expected a field name")
		}
		return nil, p.errorf(start, "unknown field %q (want state, email, display_name, create_time or update_time)", name)
	}
	opPos := p.pos
	op, err := p.op()
	if err != nil {
		return nil, err
	}
	valPos := p.pos
	raw, err := p.value()
	if err != nil {
		return nil, err
	}
	c := Condition{Field: field, Op: op}
	switch field {
	case FieldState, FieldEmail, FieldDisplayName:
		if op != OpEq && op != OpNe {
			return nil, p.errorf(opPos, "%s allows only = and !=", name)
		}
	}
	switch field {
	case FieldState:
		st, ok := ParseState(raw)
		if !ok {
			return nil, p.errorf(valPos, "unknown state %q (want ACTIVE, SUSPENDED or DELETED)", raw)
		}
		c.Value = st
	case FieldEmail:
		c.Value = EmailKey(raw)
	case FieldDisplayName:
		c.Value = raw
	default:
		ts, err := time.Parse(time.RFC3339Nano, raw)
		if err != nil {
			return nil, p.errorf(valPos, "%s needs an RFC 3339 timestamp such as \"2026-01-02T15:04:05Z\", got %q", name, raw)
		}
		return timeConditions(field, op, ts), nil
	}
	return []Condition{c}, nil
}

// timeConditions compares a field kept at microsecond precision with a time
// that may be finer, exactly: for t a whole number of microseconds and f the
// whole microseconds of v, t < v and t <= v are t <= f when v has a
// fraction; t > v and t >= v are t > f; t = v never holds; t != v always
// does.
func timeConditions(field FilterField, op Op, v time.Time) []Condition {
	f := Truncate(v)
	if f.Equal(v) {
		return []Condition{{Field: field, Op: op, Value: f}}
	}
	switch op {
	case OpLt, OpLe:
		return []Condition{{Field: field, Op: OpLe, Value: f}}
	case OpGt, OpGe:
		return []Condition{{Field: field, Op: OpGt, Value: f}}
	case OpEq: // t < f and t > f: matches nothing
		return []Condition{{Field: field, Op: OpLt, Value: f}, {Field: field, Op: OpGt, Value: f}}
	}
	return nil // OpNe: every stored time differs
}

// ParseOrderBy parses ListUsers' order_by: "create_time" (the default) or
// "email", optionally followed by "asc" or "desc". Errors are *InvalidError
// values naming the field "order_by".
func ParseOrderBy(s string) (Order, error) {
	words := strings.Fields(s)
	var o Order
	if len(words) == 0 {
		return o, nil
	}
	switch words[0] {
	case "create_time", "createTime":
		o.Field = OrderCreateTime
	case "email":
		o.Field = OrderEmail
	default:
		return o, Invalid("order_by", fmt.Sprintf("cannot order by %q (want create_time or email)", words[0]))
	}
	if len(words) > 2 {
		return o, Invalid("order_by", "one field and an optional direction expected")
	}
	if len(words) == 2 {
		switch strings.ToLower(words[1]) {
		case "asc":
		case "desc":
			o.Desc = true
		default:
			return o, Invalid("order_by", fmt.Sprintf("direction %q is neither asc nor desc", words[1]))
		}
	}
	return o, nil
}
