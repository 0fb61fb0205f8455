package grpcserver

import (
	"bytes"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/structpb"
)

// The fast path of attributesStruct. Every v2 user with attributes is
// converted, an export a million times; protojson.Unmarshal reads a
// Struct through reflection, token by token, at several microseconds for
// a few keys. structReader reads the stored JSON (compact, its keys in
// order, its strings escaped as encoding/json escapes them) byte by byte
// into the same Struct, with fewer allocations: the keys and the strings
// without escapes share one copy of the text, and the Values are
// allocated several at a time. It gives up on anything it is not sure of
// (a number strconv cannot read as a float64, a duplicate key, an
// unpaired surrogate escape, text that is not UTF-8, input that is not
// JSON), and protojson decides, as before: the two agree on every input
// the fast path takes (FuzzAttributesStruct checks it).

// structReader reads one JSON document.
type structReader struct {
	in []byte
	// text is in as a string, converted once: the keys and the strings
	// without escapes are parts of it.
	text string
	pos  int
	// values holds the Values to come, allocated a few at a time.
	values []structpb.Value
	// depth is how many objects and arrays the reader is in.
	depth int
}

// maxStructDepth bounds the nesting the fast path reads: attributes are
// at most users.MaxAttributesDepth deep; deeper JSON is protojson's, with
// its own bound.
const maxStructDepth = 64

// attributesStructFast returns the JSON object a as a Struct, or false
// when protojson must read it.
func attributesStructFast(a []byte) (*structpb.Struct, bool) {
	if !utf8.Valid(a) {
		return nil, false // protojson refuses it
	}
	// As many Values as members, give or take a colon in a string; the
	// elements of arrays come later, a few at a time.
	r := structReader{in: a, text: string(a), values: make([]structpb.Value, 0, bytes.Count(a, []byte{':'}))}
	r.space()
	st, ok := r.object()
	if !ok {
		return nil, false
	}
	r.space()
	return st, r.pos == len(r.in)
}

// space skips JSON white space.
func (r *structReader) space() {
	for r.pos < len(r.in) {
		switch r.in[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// next skips white space and reports whether the next byte is b, which it
// then skips.
func (r *structReader) next(b byte) bool {
	r.space()
	if r.pos < len(r.in) && r.in[r.pos] == b {
		r.pos++
		return true
	}
	return false
}

// object reads the object at r.pos.
func (r *structReader) object() (*structpb.Struct, bool) {
	if !r.next('{') || r.depth == maxStructDepth {
		return nil, false
	}
	r.depth++
	defer func() { r.depth-- }()
	st := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	if r.next('}') {
		return st, true
	}
	for {
		r.space()
		key, ok := r.str()
		if !ok || !r.next(':') {
			return nil, false
		}
		if _, dup := st.Fields[key]; dup {
			return nil, false // protojson refuses it
		}
		v, ok := r.readValue()
		if !ok {
			return nil, false
		}
		st.Fields[key] = v
		if r.next('}') {
			return st, true
		}
		if !r.next(',') {
			return nil, false
		}
	}
}

// readValue reads the value at r.pos (after white space).
func (r *structReader) readValue() (*structpb.Value, bool) {
	r.space()
	if r.pos == len(r.in) {
		return nil, false
	}
	v := r.newValue()
	switch b := r.in[r.pos]; {
	case b == '{':
		st, ok := r.object()
		v.Kind = &structpb.Value_StructValue{StructValue: st}
		return v, ok
	case b == '[':
		list, ok := r.list()
		v.Kind = &structpb.Value_ListValue{ListValue: list}
		return v, ok
	case b == '"':
		s, ok := r.str()
		v.Kind = &structpb.Value_StringValue{StringValue: s}
		return v, ok
	case b == '-' || '0' <= b && b <= '9':
		f, ok := r.number()
		v.Kind = &structpb.Value_NumberValue{NumberValue: f}
		return v, ok
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if end := r.pos + len(lit); end <= len(r.in) && string(r.in[r.pos:end]) == lit {
			r.pos = end
			if lit == "null" {
				v.Kind = &structpb.Value_NullValue{}
			} else {
				v.Kind = &structpb.Value_BoolValue{BoolValue: lit == "true"}
			}
			return v, true
		}
	}
	return nil, false
}

// list reads the array at r.pos.
func (r *structReader) list() (*structpb.ListValue, bool) {
	if r.depth == maxStructDepth {
		return nil, false
	}
	r.depth++
	defer func() { r.depth-- }()
	r.pos++
	list := &structpb.ListValue{}
	if r.next(']') {
		return list, true
	}
	for {
		v, ok := r.readValue()
		if !ok {
			return nil, false
		}
		list.Values = append(list.Values, v)
		if r.next(']') {
			return list, true
		}
		if !r.next(',') {
			return nil, false
		}
	}
}

// newValue returns a new Value, of no kind yet. The Values of a document
// come from a few allocations of several each.
func (r *structReader) newValue() *structpb.Value {
	if len(r.values) == cap(r.values) {
		r.values = make([]structpb.Value, 0, 8)
	}
	r.values = r.values[:len(r.values)+1]
	return &r.values[len(r.values)-1]
}

// number reads the number at r.pos, which must have JSON's form, as a
// float64.
func (r *structReader) number() (float64, bool) {
	start, i := r.pos, r.pos
	digits := func() int {
		n := 0
		for i < len(r.in) && '0' <= r.in[i] && r.in[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if r.in[i] == '-' {
		i++
	}
	if n := digits(); n == 0 || n > 1 && r.in[i-n] == '0' {
		return 0, false
	}
	if i < len(r.in) && r.in[i] == '.' {
		i++
		if digits() == 0 {
			return 0, false
		}
	}
	if i < len(r.in) && (r.in[i] == 'e' || r.in[i] == 'E') {
		i++
		if i < len(r.in) && (r.in[i] == '+' || r.in[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0, false
		}
	}
	f, err := strconv.ParseFloat(r.text[start:i], 64)
	if err != nil {
		return 0, false // beyond a float64: protojson refuses it too
	}
	r.pos = i
	return f, true
}

// str reads the string at r.pos, decoding its escapes.
func (r *structReader) str() (string, bool) {
	if r.pos == len(r.in) || r.in[r.pos] != '"' {
		return "", false
	}
	start := r.pos + 1
	i := start
	for ; i < len(r.in); i++ {
		if b := r.in[i]; b > '\\' || b >= 0x20 && b != '"' && b != '\\' {
			continue
		}
		switch r.in[i] {
		case '"':
			r.pos = i + 1
			return r.text[start:i], true // the input is UTF-8
		case '\\':
			return r.escaped(start, i)
		}
		return "", false // a control character
	}
	return "", false
}

// escaped reads the rest of the string that starts at start and has its
// first escape at i.
func (r *structReader) escaped(start, i int) (string, bool) {
	buf := make([]byte, 0, i-start+16)
	buf = append(buf, r.in[start:i]...)
	for i < len(r.in) {
		b := r.in[i]
		switch {
		case b == '"':
			r.pos = i + 1
			return string(buf), true // UTF-8: the input's, and the escapes' runes
		case b < 0x20:
			return "", false
		case b != '\\':
			buf = append(buf, b)
			i++
			continue
		}
		if i+1 == len(r.in) {
			return "", false
		}
		switch e := r.in[i+1]; e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			c, ok := r.hex4(i + 2)
			if !ok {
				return "", false
			}
			i += 6
			if utf16.IsSurrogate(c) {
				// Only a pair: protojson's decoding of a lone half is its
				// own.
				c2, ok := r.hex4(i + 2)
				if !ok || r.in[i] != '\\' || r.in[i+1] != 'u' {
					return "", false
				}
				if c = utf16.DecodeRune(c, c2); c == utf8.RuneError {
					return "", false
				}
				i += 6
			}
			buf = utf8.AppendRune(buf, c)
			continue
		default:
			return "", false
		}
		i += 2
	}
	return "", false
}

// hex4 reads the four hex digits at at.
func (r *structReader) hex4(at int) (rune, bool) {
	if at+4 > len(r.in) {
		return 0, false
	}
	var c rune
	for _, h := range r.in[at : at+4] {
		switch {
		case '0' <= h && h <= '9':
			h -= '0'
		case 'a' <= h && h <= 'f':
			h -= 'a' - 10
		case 'A' <= h && h <= 'F':
			h -= 'A' - 10
		default:
			return 0, false
		}
		c = c<<4 | rune(h)
	}
	return c, true
}
