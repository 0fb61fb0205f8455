package users

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// MaxFilterConditions bounds the number of comparisons in one filter.
const MaxFilterConditions = 16

// MaxFilterPathKeys bounds the keys of an attributes path in a filter.
const MaxFilterPathKeys = 8

// maxFilterKeyLen bounds one key of an attributes path, in bytes.
const maxFilterKeyLen = 63

// filterFields maps the names a filter may use (the API's snake_case and
// JSON lowerCamelCase forms) to fields. attributes.<path> is not here: see
// attributePath.
var filterFields = map[string]FilterField{
	"state":          FieldState,
	"email":          FieldEmail,
	"display_name":   FieldDisplayName,
	"displayName":    FieldDisplayName,
	"create_time":    FieldCreateTime,
	"createTime":     FieldCreateTime,
	"update_time":    FieldUpdateTime,
	"updateTime":     FieldUpdateTime,
	"external_id":    FieldExternalID,
	"externalId":     FieldExternalID,
	"given_name":     FieldGivenName,
	"givenName":      FieldGivenName,
	"family_name":    FieldFamilyName,
	"familyName":     FieldFamilyName,
	"phone_number":   FieldPhoneNumber,
	"phoneNumber":    FieldPhoneNumber,
	"locale":         FieldLocale,
	"time_zone":      FieldTimeZone,
	"timeZone":       FieldTimeZone,
	"email_verified": FieldEmailVerified,
	"emailVerified":  FieldEmailVerified,
	"phone_verified": FieldPhoneVerified,
	"phoneVerified":  FieldPhoneVerified,
	"group":          FieldGroup,
}

const filterFieldNames = "state, email, display_name, create_time, update_time, external_id, given_name, " +
	"family_name, phone_number, locale, time_zone, email_verified, phone_verified, group or attributes.<key>"

var filterOps = map[string]Op{"=": OpEq, "!=": OpNe, "<": OpLt, "<=": OpLe, ">": OpGt, ">=": OpGe}

// ParseFilter parses the subset of AIP-160 that ListUsers supports:
//
//	filter     = comparison { "AND" comparison }
//	comparison = field op value | field ":" "*"
//	field      = state | email | display_name | create_time | update_time
//	           | external_id | given_name | family_name | phone_number
//	           | locale | time_zone | email_verified | phone_verified
//	           | group | "attributes." key { "." key }
//	key        = ( letter | "_" ) { letter | digit | "_" | "-" }
//	op         = "=" | "!=" | "<" | "<=" | ">" | ">="
//	value      = "double-quoted string" | bare word
//
// Each field may also be written in lowerCamelCase (displayName,
// createTime, externalId, emailVerified, …). A quoted string escapes only
// \" and \\, and may hold no control character; a bare word is a run of
// letters, digits and _ - . : + @ / (so Europe/Paris needs no quotes).
//
// state takes a state name (ACTIVE, SUSPENDED, DELETED, with or without the
// STATE_ prefix); email compares case-insensitively; the times take RFC 3339
// timestamps. state, email, display_name and the profile fields allow only =
// and !=. The optional text fields external_id, given_name, family_name,
// phone_number, locale and time_zone compare exactly, "" standing for unset
// (a phone number or locale that parses is first put in its stored form,
// E.164 or the canonical language tag); "field:*" holds when the field is
// set. email_verified and phone_verified take a bare true or false.
// group takes a group's id: group = "<id>" holds for its members, != for
// the other users.
//
// attributes.<path> tests the user's attributes, a JSON object: the path is
// 1 to MaxFilterPathKeys keys of at most 63 bytes. The value's type is its
// JSON type: a quoted string is a string; bare true and false are booleans;
// a bare JSON number (such as 30, -1.5 or 2e3) is a number; bare null is
// null; any other bare word is a string. A comparison holds only when the
// attributes hold a value at the path of the same JSON type: = and != test
// that value (so a missing key or another type matches neither); <, <=, >
// and >= compare numbers numerically and strings bytewise, and take no
// boolean or null. "!= null" and ":*" hold when the path has a value other
// than null.
//
// AND is upper-case, as in AIP-160. A filter has at most
// MaxFilterConditions comparisons. An empty filter matches every user.
// Errors are *InvalidError values naming the field "filter", with the byte
// offset of the problem.
func ParseFilter(s string) (Filter, error) { return parseFilter(&filterParser{src: s}) }

// ParseBaseFilter parses the filter of the fields users had before
// profiles (state, email, display_name, create_time, update_time), as
// ParseFilter did then: the API version that has no profile fields (v1)
// keeps its grammar and its messages.
func ParseBaseFilter(s string) (Filter, error) { return parseFilter(&filterParser{src: s, base: true}) }

// baseFieldNames are the fields of ParseBaseFilter.
const baseFieldNames = "state, email, display_name, create_time or update_time"

func parseFilter(p *filterParser) (Filter, error) {
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
	// base: the grammar of ParseBaseFilter.
	base bool
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
	return c == '_' || c == '-' || c == '.' || c == ':' || c == '+' || c == '@' || c == '/' ||
		'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// isNameByte reports whether c may be part of a field name: a word byte
// other than the : of "field:*" and the + @ / of values.
func isNameByte(c byte) bool {
	return c != ':' && c != '+' && c != '@' && c != '/' && isWordByte(c)
}

// word reads a run of word bytes after optional space.
func (p *filterParser) word() string {
	p.skipSpace()
	start := p.pos
	for !p.eof() && isWordByte(p.src[p.pos]) && !(p.base && p.src[p.pos] == '/') {
		p.pos++
	}
	return p.src[start:p.pos]
}

// name reads a field name after optional space.
func (p *filterParser) name() string {
	p.skipSpace()
	start := p.pos
	for !p.eof() && isNameByte(p.src[p.pos]) {
		p.pos++
	}
	return p.src[start:p.pos]
}

// op reads a comparison operator, or ":*" as OpHas.
func (p *filterParser) op() (Op, error) {
	p.skipSpace()
	start := p.pos
	if !p.base && !p.eof() && p.src[p.pos] == ':' {
		p.pos++
		p.skipSpace()
		if p.eof() || p.src[p.pos] != '*' {
			return 0, p.errorf(start, `":" must be followed by "*": only the presence test field:* is supported`)
		}
		p.pos++
		return OpHas, nil
	}
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

// value reads a quoted string (with \" and \\ escapes) or a bare word, and
// reports which it read.
func (p *filterParser) value() (v string, quoted bool, err error) {
	p.skipSpace()
	start := p.pos
	if p.eof() {
		return "", false, p.errorf(start, "expected a value")
	}
	if p.src[p.pos] != '"' {
		w := p.word()
		if w == "" {
			return "", false, p.errorf(start, "expected a value")
		}
		return w, false, nil
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
				return "", false, p.errorf(start, "value: %s", problem)
			}
			return b.String(), true, nil
		case '\\':
			if p.eof() || (p.src[p.pos] != '"' && p.src[p.pos] != '\\') {
				return "", false, p.errorf(p.pos-1, `only \" and \\ escapes are allowed`)
			}
			b.WriteByte(p.src[p.pos])
			p.pos++
		default:
			b.WriteByte(c)
		}
	}
	return "", false, p.errorf(start, "unterminated string")
}

func (p *filterParser) comparison() ([]Condition, error) {
	p.skipSpace()
	start := p.pos
	var name string
	if p.base {
		name = p.word()
	} else {
		name = p.name()
	}
	field, ok := filterFields[name]
	var path []string
	switch {
	case p.base && (!ok || field > FieldUpdateTime):
		if name == "" {
			return nil, p.errorf(start, "expected a field name")
		}
		return nil, p.errorf(start, "unknown field %q (want %s)", name, baseFieldNames)
	case ok:
	case name == "attributes" || strings.HasPrefix(name, "attributes."):
		var err error
		if path, err = p.attributePath(start, name); err != nil {
			return nil, err
		}
		field = FieldAttribute
	case name == "":
		return nil, p.errorf(start, "expected a field name")
	default:
		return nil, p.errorf(start, "unknown field %q (want %s)", name, filterFieldNames)
	}
	opPos := p.pos
	op, err := p.op()
	if err != nil {
		return nil, err
	}
	if op == OpHas {
		switch field {
		case FieldExternalID, FieldGivenName, FieldFamilyName, FieldPhoneNumber, FieldLocale, FieldTimeZone, FieldAttribute:
			return []Condition{{Field: field, Op: OpHas, Path: path}}, nil
		}
		return nil, p.errorf(opPos, "%s always has a value: field:* applies to external_id, given_name, family_name, "+
			"phone_number, locale, time_zone and attributes.<key>", name)
	}
	valPos := p.pos
	raw, quoted, err := p.value()
	if err != nil {
		return nil, err
	}
	c := Condition{Field: field, Op: op}
	switch field {
	case FieldCreateTime, FieldUpdateTime, FieldAttribute:
	default:
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
	case FieldDisplayName, FieldExternalID, FieldGivenName, FieldFamilyName, FieldTimeZone:
		c.Value = raw
	case FieldPhoneNumber:
		// The stores keep E.164: "+1 415 555 0100" finds "+14155550100".
		// A value that is no phone number stays as it is, and matches no
		// stored one.
		c.Value = raw
		if e164, problem := normalizePhone(raw); raw != "" && problem == "" {
			c.Value = e164
		}
	case FieldLocale:
		c.Value = raw
		if tag, problem := normalizeLocale(raw); raw != "" && problem == "" {
			c.Value = tag
		}
	case FieldGroup:
		id, ok := canonicalID(raw)
		if !ok {
			return nil, p.errorf(valPos, "group takes a group's id (a UUID), got %q", raw)
		}
		c.Value = id
	case FieldEmailVerified, FieldPhoneVerified:
		switch {
		case !quoted && raw == "true":
			c.Value = true
		case !quoted && raw == "false":
			c.Value = false
		default:
			return nil, p.errorf(valPos, "%s takes a bare true or false, got %q", name, raw)
		}
	case FieldAttribute:
		c.Path = path
		c.Value, err = attributeValue(raw, quoted)
		if err != nil {
			return nil, p.errorf(valPos, "%s: %v", name, err)
		}
		switch c.Value.(type) {
		case string, float64:
		default:
			if op != OpEq && op != OpNe {
				return nil, p.errorf(opPos, "%s: < <= > >= compare numbers and strings, not %s", name, raw)
			}
		}
	default:
		ts, err := time.Parse(time.RFC3339Nano, raw)
		if err != nil {
			return nil, p.errorf(valPos, "%s needs an RFC 3339 timestamp such as \"2026-01-02T15:04:05Z\", got %q", name, raw)
		}
		return timeConditions(field, op, ts), nil
	}
	return []Condition{c}, nil
}

// attributePath returns the keys of name, "attributes.<key>{.<key>}",
// read at offset start.
func (p *filterParser) attributePath(start int, name string) ([]string, error) {
	rest, ok := strings.CutPrefix(name, "attributes.")
	if !ok {
		return nil, p.errorf(start, "attributes needs a path, such as attributes.department")
	}
	pos := start + len("attributes.")
	path := make([]string, 0, strings.Count(rest, ".")+1)
	for key := range strings.SplitSeq(rest, ".") {
		if len(path) == MaxFilterPathKeys {
			return nil, p.errorf(start, "attributes path deeper than %d keys", MaxFilterPathKeys)
		}
		if !isAttributeKey(key) {
			return nil, p.errorf(pos, "attributes key %q: 1 to %d of A-Z a-z 0-9 _ -, starting with a letter or _", key, maxFilterKeyLen)
		}
		path = append(path, key)
		pos += len(key) + 1
	}
	return path, nil
}

// ValidFilterPath reports whether path is the path of a FieldAttribute
// condition: 1 to MaxFilterPathKeys keys, each [A-Za-z_][A-Za-z0-9_-]{0,62}.
func ValidFilterPath(path []string) bool {
	if len(path) == 0 || len(path) > MaxFilterPathKeys {
		return false
	}
	for _, k := range path {
		if !isAttributeKey(k) {
			return false
		}
	}
	return true
}

// isAttributeKey reports whether k is a key a filter's attributes path may
// hold: [A-Za-z_][A-Za-z0-9_-]{0,62}. A key never starts with a digit, so
// that no database reads it as an array index, and holds nothing a JSON
// path would have to escape.
func isAttributeKey(k string) bool {
	if k == "" || len(k) > maxFilterKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && (c == '-' || '0' <= c && c <= '9'):
		default:
			return false
		}
	}
	return true
}

// attributeValue returns the JSON value of an attributes comparison: a
// quoted string is a string; bare true, false and null are a bool and nil;
// a bare word in the syntax of a JSON number is a float64, refused when it
// is out of range; any other bare word is a string.
func attributeValue(raw string, quoted bool) (any, error) {
	if quoted {
		return raw, nil
	}
	switch raw {
	case "true":
		return true, nil
	case "false":
		return false, nil
	case "null":
		return nil, nil
	}
	if !isJSONNumber(raw) {
		return raw, nil
	}
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, fmt.Errorf("number %s is out of range", raw)
	}
	return f, nil
}

// isJSONNumber reports whether s has the syntax of a JSON number:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(s string) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
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
	field, desc, err := parseOrder(s, map[string]OrderField{"create_time": OrderCreateTime, "createTime": OrderCreateTime, "email": OrderEmail},
		"cannot order by %q (want create_time or email)")
	return Order{Field: field, Desc: desc}, err
}

// parseOrder reads an order_by: one of fields (the zero F when s is
// blank), optionally followed by "asc" or "desc" in any case. unknown is
// the message of a field not in fields, with a %q for it. Errors are
// *InvalidError values naming the field "order_by".
func parseOrder[F any](s string, fields map[string]F, unknown string) (field F, desc bool, err error) {
	words := strings.Fields(s)
	if len(words) == 0 {
		return field, false, nil
	}
	field, ok := fields[words[0]]
	switch {
	case !ok:
		return field, false, Invalid("order_by", fmt.Sprintf(unknown, words[0]))
	case len(words) > 2:
		return field, false, Invalid("order_by", "one field and an optional direction expected")
	case len(words) == 2:
		switch strings.ToLower(words[1]) {
		case "asc":
		case "desc":
			desc = true
		default:
			return field, false, Invalid("order_by", fmt.Sprintf("direction %q is neither asc nor desc", words[1]))
		}
	}
	return field, desc, nil
}
