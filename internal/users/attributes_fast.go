package users

import (
	"bytes"
	"slices"
	"sync"
	"unicode/utf8"
)

// The fast path of NormalizeAttributes. Every read of a user from
// Postgres normalizes its attributes again (jsonb respells them: its own
// key order, a space after each colon and comma), an export a million
// times; the general path, token by token through encoding/json into maps
// and out again, costs several microseconds for a few keys. The fast path
// reads the input once, byte by byte, and writes the canonical encoding as
// it goes, reordering an object's members only when they are out of
// order. It takes the input that needs no decoding, which is what the
// stores hand back: its strings have no escapes. On anything else (an
// escape, a problem of any kind, even one it could name) it gives up, and
// the general path decides: so it never accepts what the general path
// refuses, and what it returns is byte for byte what that path returns
// (FuzzNormalizeAttributesFast checks both).

// attrCanon is the state of the fast path over one input.
type attrCanon struct {
	in  []byte
	pos int
	out []byte
	// members are the members of the objects being read, the innermost
	// object's last.
	members []attrMember
	// tmp holds an object's members while they are put in order.
	tmp []byte
}

// attrCanons keeps the fast path's states, for their members and tmp.
var attrCanons = sync.Pool{New: func() any { return new(attrCanon) }}

// attrMember is a member of an object: its key, as the input has it
// (which, without escapes, is the key), and where its "key":value is in
// out.
type attrMember struct {
	key        []byte
	start, end int
}

// normalizeAttributesFast returns the canonical encoding of raw (valid
// UTF-8, neither empty nor null), nil for an empty object, and true; or
// false when the general path must decide.
func normalizeAttributesFast(raw []byte) ([]byte, bool) {
	c := attrCanons.Get().(*attrCanon)
	defer func() {
		clear(c.members[:cap(c.members)]) // no keys of raw kept
		c.in, c.out, c.members, c.tmp = nil, nil, c.members[:0], c.tmp[:0]
		attrCanons.Put(c)
	}()
	c.in, c.pos, c.out = raw, 0, make([]byte, 0, len(raw)+16)
	c.space()
	if c.pos == len(c.in) || c.in[c.pos] != '{' || !c.object(1) {
		return nil, false
	}
	c.space()
	if c.pos != len(c.in) || len(c.out) > MaxAttributesBytes {
		return nil, false
	}
	if len(c.out) == 2 {
		return nil, true // {}: no attributes
	}
	return c.out, true
}

// space skips JSON white space.
func (c *attrCanon) space() {
	for c.pos < len(c.in) {
		switch c.in[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

// value reads the value at c.pos, at the given depth (the attributes
// object is at 1), and writes its canonical encoding.
func (c *attrCanon) value(depth int) bool {
	if c.pos == len(c.in) {
		return false
	}
	switch b := c.in[c.pos]; {
	case b == '{':
		return c.object(depth)
	case b == '[':
		return c.array(depth)
	case b == '"':
		s, plain, ok := c.str()
		if ok {
			c.out = appendCanonString(c.out, s, plain)
		}
		return ok
	case b == '-' || '0' <= b && b <= '9':
		return c.number()
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if end := c.pos + len(lit); end <= len(c.in) && string(c.in[c.pos:end]) == lit {
			c.pos = end
			c.out = append(c.out, lit...)
			return true
		}
	}
	return false
}

// object reads the object at c.pos and writes it with its members in the
// order of their keys.
func (c *attrCanon) object(depth int) bool {
	if depth > MaxAttributesDepth {
		return false
	}
	open := len(c.out)
	c.out = append(c.out, '{')
	c.pos++
	c.space()
	if c.pos < len(c.in) && c.in[c.pos] == '}' {
		c.pos++
		c.out = append(c.out, '}')
		return true
	}
	// A failure fails the whole input: only a success needs to leave
	// c.members as it found them.
	first := len(c.members)
	inOrder := true
	for {
		if c.pos == len(c.in) || c.in[c.pos] != '"' {
			return false
		}
		key, plain, ok := c.str()
		if !ok || !plainKey(key) {
			return false
		}
		if n := len(c.members); n > first {
			switch cmp := bytes.Compare(c.members[n-1].key, key); {
			case cmp == 0:
				return false // a duplicate
			case cmp > 0:
				inOrder = false
			}
			c.out = append(c.out, ',')
		}
		start := len(c.out)
		c.out = append(appendCanonString(c.out, key, plain), ':')
		c.space()
		if c.pos == len(c.in) || c.in[c.pos] != ':' {
			return false
		}
		c.pos++
		c.space()
		if !c.value(depth + 1) {
			return false
		}
		c.members = append(c.members, attrMember{key: key, start: start, end: len(c.out)})
		if len(c.out) > MaxAttributesBytes {
			return false
		}
		c.space()
		if c.pos == len(c.in) {
			return false
		}
		c.pos++
		if b := c.in[c.pos-1]; b == '}' {
			break
		} else if b != ',' {
			return false
		}
		c.space()
	}
	if !inOrder {
		ms := c.members[first:]
		slices.SortFunc(ms, func(a, b attrMember) int { return bytes.Compare(a.key, b.key) })
		for i := 1; i < len(ms); i++ {
			if bytes.Equal(ms[i-1].key, ms[i].key) {
				return false // a duplicate
			}
		}
		c.tmp = append(c.tmp[:0], c.out[open+1:]...)
		c.out = c.out[:open+1]
		for i, m := range ms {
			if i > 0 {
				c.out = append(c.out, ',')
			}
			c.out = append(c.out, c.tmp[m.start-open-1:m.end-open-1]...)
		}
	}
	c.members = c.members[:first]
	c.out = append(c.out, '}')
	return true
}

// array reads the array at c.pos.
func (c *attrCanon) array(depth int) bool {
	if depth > MaxAttributesDepth {
		return false
	}
	c.out = append(c.out, '[')
	c.pos++
	c.space()
	if c.pos < len(c.in) && c.in[c.pos] == ']' {
		c.pos++
		c.out = append(c.out, ']')
		return true
	}
	for {
		if !c.value(depth + 1) {
			return false
		}
		if len(c.out) > MaxAttributesBytes {
			return false
		}
		c.space()
		if c.pos == len(c.in) {
			return false
		}
		c.pos++
		switch c.in[c.pos-1] {
		case ']':
			c.out = append(c.out, ']')
			return true
		case ',':
			c.out = append(c.out, ',')
			c.space()
		default:
			return false
		}
	}
}

// The classes of the bytes of a string's text, for str.
const (
	// byteEnd is ", \ and the control characters: the end of the string,
	// or what the general path reads.
	byteEnd = 1 + iota
	// byteEscaped is <, > and &, and the first byte of U+2028 and U+2029:
	// the canonical form escapes them.
	byteEscaped
)

// strBytes is the class of each byte, 0 for the others.
var strBytes = func() (t [256]byte) {
	for b := range 0x20 {
		t[b] = byteEnd
	}
	t['"'], t['\\'] = byteEnd, byteEnd
	t['<'], t['>'], t['&'], t[0xE2] = byteEscaped, byteEscaped, byteEscaped, byteEscaped
	return t
}()

// str reads the string at c.pos (its opening quote) and returns its
// content, and whether it is plain: written as it is in the canonical
// form. False for a string with an escape, a control character or no
// end.
func (c *attrCanon) str() (s []byte, plain, ok bool) {
	start := c.pos + 1
	plain = true
	for i := start; i < len(c.in); i++ {
		switch strBytes[c.in[i]] {
		case byteEscaped:
			plain = false
		case byteEnd:
			if c.in[i] != '"' {
				return nil, false, false
			}
			c.pos = i + 1
			return c.in[start:i], plain, true
		}
	}
	return nil, false, false
}

// number reads the number at c.pos, as JSON has them, and writes it as
// plainNumber does; false for one beyond the bounds of numberProblem.
func (c *attrCanon) number() bool {
	start, i := c.pos, c.pos
	digits := func() int {
		n := 0
		for i < len(c.in) && '0' <= c.in[i] && c.in[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if c.in[i] == '-' {
		i++
	}
	switch n := digits(); {
	case n == 0:
		return false
	case n > 1 && c.in[i-n] == '0':
		return false // a leading zero
	}
	integer := true
	if i < len(c.in) && c.in[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
		integer = false
	}
	if i < len(c.in) && (c.in[i] == 'e' || c.in[i] == 'E') {
		i++
		if i < len(c.in) && (c.in[i] == '+' || c.in[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
		integer = false
	}
	c.pos = i
	num := c.in[start:i]
	if integer && string(num) != "-0" && len(num) <= 16 {
		c.out = append(c.out, num...) // plain already, and a double
		return true
	}
	s := string(num)
	if numberProblem(s) != "" {
		return false
	}
	c.out = append(c.out, plainNumber(s)...)
	return true
}

// plainKey reports whether key, without escapes, is a key that
// keyProblem accepts: 1 to MaxAttributeKeyLen bytes of text
// (textProblem).
func plainKey(key []byte) bool {
	if len(key) == 0 || len(key) > MaxAttributeKeyLen {
		return false
	}
	for _, b := range key {
		if b < 0x20 || b >= 0x7f {
			return textProblem(string(key)) == ""
		}
	}
	return true
}

// appendCanonString appends s (valid UTF-8 without control characters)
// as encoding/json writes a string: quoted, with <, > and & escaped as
// \u003c, \u003e and \u0026, U+2028 and U+2029 as \u2028 and \u2029, and
// " and \ (which the fast path never has) escaped. plain says s has
// none of them.
func appendCanonString(dst, s []byte, plain bool) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	if plain {
		return append(append(dst, s...), '"')
	}
	start := 0
	for i := 0; i < len(s); i++ {
		switch b := s[i]; b {
		case '<', '>', '&':
			dst = append(append(dst, s[start:i]...), '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			start = i + 1
		case '"', '\\':
			dst = append(append(dst, s[start:i]...), '\\', b)
			start = i + 1
		case 0xE2:
			// U+2028 and U+2029 are E2 80 A8 and E2 80 A9.
			if r, size := utf8.DecodeRune(s[i:]); r == '\u2028' || r == '\u2029' {
				dst = append(append(dst, s[start:i]...), '\\', 'u', '2', '0', '2', hex[r&0xF])
				i += size - 1
				start = i + 1
			}
		}
	}
	return append(append(dst, s[start:]...), '"')
}
