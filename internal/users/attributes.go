package users

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Bounds on a user's attributes, the JSON object of data that its tenant
// defines. The API contract states the same bounds.
const (
	// MaxAttributesBytes bounds the compact (normalized) encoding.
	MaxAttributesBytes = 16384
	// MaxAttributesDepth bounds the nesting of objects and arrays; the
	// attributes object itself is level 1.
	MaxAttributesDepth = 16
	// MaxAttributeKeyLen bounds every key of every object, in bytes.
	MaxAttributeKeyLen = 256
)

// Bounds on what NormalizeAttributes accepts of a number, so that a store
// whose JSON keeps numbers as Postgres numeric (jsonb) can keep every
// accepted one: Postgres refuses exponents beyond ±1000 in older versions
// and scales beyond 16383 digits after the point in every version.
const (
	maxNumberExponent = 1000
	maxNumberScale    = 16383
)

// NormalizeAttributes checks raw, a user's attributes as a client sent
// them, and returns their canonical encoding: compact JSON with the keys of
// every object sorted, as encoding/json marshals a map[string]any (which
// escapes <, > and & as \u003c, \u003e and \u0026), with the text of every
// number kept exactly as sent (12345678901234567890 is not rounded, 1.0
// stays 1.0). Normalizing the result again returns it unchanged.
//
// Empty input, input of only white space, and null mean no attributes: the
// result is nil. Anything else must be a single JSON object of valid UTF-8,
// at most MaxAttributesBytes long once normalized, nested at most
// MaxAttributesDepth levels deep, whose keys are 1 to MaxAttributeKeyLen
// bytes of text without control characters (textProblem), unique within
// their object, and whose strings contain neither U+0000 nor an unpaired
// UTF-16 surrogate escape: Postgres jsonb cannot store either. Otherwise
// the error is an *InvalidError naming field, whose description says what
// is wrong and, as a JSON pointer, where.
func NormalizeAttributes(field string, raw []byte) ([]byte, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return nil, nil
	}
	if !utf8.Valid(raw) {
		return nil, Invalid(field, fmt.Sprintf("not valid UTF-8 (at byte %d)", invalidUTF8At(raw)))
	}
	if out, ok := normalizeAttributesFast(raw); ok {
		return out, nil
	}
	return normalizeAttributesSlow(field, raw)
}

// normalizeAttributesSlow is NormalizeAttributes past its first checks,
// on every input: the general path, which names each problem.
func normalizeAttributesSlow(field string, raw []byte) ([]byte, error) {
	n := attrNormalizer{raw: raw, dec: json.NewDecoder(bytes.NewReader(raw))}
	n.dec.UseNumber()
	root, problem := n.parse()
	if problem != "" {
		return nil, Invalid(field, problem)
	}
	out, err := json.Marshal(root)
	if err != nil {
		// Every value comes from the decoder, so this is a bug.
		return nil, fmt.Errorf("users: encoding attributes: %w", err)
	}
	if len(out) > MaxAttributesBytes {
		return nil, Invalid(field, attrTooLarge)
	}
	if string(out) == "{}" {
		return nil, nil // an empty object is no attributes
	}
	return out, nil
}

var attrTooLarge = fmt.Sprintf("more than %d bytes as compact JSON", MaxAttributesBytes)

// attrFrame is an object or an array that attrNormalizer is inside.
type attrFrame struct {
	obj map[string]any // nil for an array
	arr []any
	// key is the key whose value comes next (objects), or "" when a key
	// comes next; haveKey tells the two apart, since keys are never empty.
	key     string
	haveKey bool
	// name is the frame's last token in a JSON pointer: its key in its
	// parent or its index there.
	name string
}

// attrNormalizer reads attributes token by token, so that it stops at the
// first problem, before the input's depth or size cost anything.
type attrNormalizer struct {
	raw   []byte
	dec   *json.Decoder
	stack []attrFrame
	// size is a lower bound of the compact encoding's length so far: each
	// byte of a (valid UTF-8) string becomes at least one byte.
	size int
	// prev is the input offset where the last token read began at the
	// earliest (the end of the one before).
	prev int64
}

func (n *attrNormalizer) parse() (root map[string]any, problem string) {
	tok, problem := n.token()
	if problem != "" {
		return nil, problem
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, "not a JSON object but " + jsonKind(tok)
	}
	root = map[string]any{}
	n.stack = append(n.stack, attrFrame{obj: root})
	n.size = 2
	for len(n.stack) > 0 {
		tok, problem := n.token()
		if problem != "" {
			return nil, problem
		}
		top := &n.stack[len(n.stack)-1]
		if top.obj != nil && !top.haveKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				n.pop()
				continue
			}
			key := tok.(string) // the decoder allows only a string here
			if problem := n.keyProblem(top, key); problem != "" {
				return nil, problem
			}
			if len(top.obj) > 0 {
				n.size++ // ","
			}
			n.size += len(key) + 3 // quotes and ":"
			top.key, top.haveKey = key, true
			continue
		}
		if d, ok := tok.(json.Delim); ok && d == ']' {
			n.pop()
			continue
		}
		if top.obj == nil && len(top.arr) > 0 {
			n.size++ // "," between array elements
		}
		switch t := tok.(type) {
		case json.Delim: // '{' or '[': the closing ones are handled above
			if len(n.stack) >= MaxAttributesDepth {
				return nil, fmt.Sprintf("nested more than %d levels deep at %s", MaxAttributesDepth, n.pointer(n.childName(top)))
			}
			n.size += 2
			child := attrFrame{name: n.childName(top)}
			if t == '{' {
				child.obj = map[string]any{}
				n.add(top, child.obj)
			} else {
				// An array is added to its parent when it closes (pop),
				// since appending to it changes its slice.
				child.arr = []any{}
			}
			n.stack = append(n.stack, child) // top is stale from here
		case string:
			if strings.IndexByte(t, 0) >= 0 {
				return nil, fmt.Sprintf("string at %s contains U+0000, which cannot be stored", n.pointer(n.childName(top)))
			}
			if strings.ContainsRune(t, utf8.RuneError) && lonelySurrogate(n.raw[n.prev:n.dec.InputOffset()]) {
				return nil, fmt.Sprintf("string at %s has an unpaired UTF-16 surrogate escape (\\uD800 to \\uDFFF)", n.pointer(n.childName(top)))
			}
			n.size += len(t) + 2
			n.add(top, t)
		case json.Number:
			if problem := numberProblem(string(t)); problem != "" {
				return nil, fmt.Sprintf("number at %s: %s", n.pointer(n.childName(top)), problem)
			}
			t = json.Number(plainNumber(string(t)))
			n.size += len(t)
			n.add(top, t)
		case bool:
			n.size += 5
			if t {
				n.size--
			}
			n.add(top, t)
		case nil:
			n.size += 4
			n.add(top, nil)
		}
		if n.size > MaxAttributesBytes {
			return nil, attrTooLarge
		}
	}
	// The object is complete: nothing may follow but white space.
	end := n.dec.InputOffset()
	if _, err := n.dec.Token(); err != io.EOF {
		rest := n.raw[end:]
		at := end + int64(len(rest)-len(bytes.TrimLeft(rest, " \t\r\n")))
		return nil, fmt.Sprintf("data after the JSON object (at byte %d)", at)
	}
	return root, ""
}

// token returns the decoder's next token, or a problem for a syntax error.
func (n *attrNormalizer) token() (json.Token, string) {
	n.prev = n.dec.InputOffset()
	tok, err := n.dec.Token()
	if err != nil {
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			return nil, fmt.Sprintf("not valid JSON: %v (near byte %d)", se, se.Offset)
		case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
			return nil, "not valid JSON: unexpected end of input"
		default:
			return nil, "not valid JSON: " + err.Error()
		}
	}
	return tok, ""
}

// add stores v in frame f: under its pending key, or at the end of its
// array.
func (n *attrNormalizer) add(f *attrFrame, v any) {
	if f.obj != nil {
		f.obj[f.key] = v
		f.key, f.haveKey = "", false
		return
	}
	f.arr = append(f.arr, v)
}

// pop ends the innermost object or array.
func (n *attrNormalizer) pop() {
	f := n.stack[len(n.stack)-1]
	n.stack = n.stack[:len(n.stack)-1]
	if f.arr != nil && len(n.stack) > 0 {
		n.add(&n.stack[len(n.stack)-1], f.arr)
	}
}

// childName is the pointer token of the value that comes next in f.
func (n *attrNormalizer) childName(f *attrFrame) string {
	if f.obj != nil {
		return f.key
	}
	return strconv.Itoa(len(f.arr))
}

func (n *attrNormalizer) keyProblem(f *attrFrame, key string) string {
	switch {
	case key == "":
		return "empty key in the object at " + n.pointer()
	case len(key) > MaxAttributeKeyLen:
		return fmt.Sprintf("key %s in the object at %s: longer than %d bytes", quoteBounded(key), n.pointer(), MaxAttributeKeyLen)
	}
	if problem := textProblem(key); problem != "" {
		return fmt.Sprintf("key %s in the object at %s: %s", quoteBounded(key), n.pointer(), problem)
	}
	if strings.ContainsRune(key, utf8.RuneError) && lonelySurrogate(n.raw[n.prev:n.dec.InputOffset()]) {
		return fmt.Sprintf("key %s in the object at %s: has an unpaired UTF-16 surrogate escape (\\uD800 to \\uDFFF)", quoteBounded(key), n.pointer())
	}
	if _, dup := f.obj[key]; dup {
		return fmt.Sprintf("duplicate key %s in the object at %s", quoteBounded(key), n.pointer())
	}
	return ""
}

// pointer returns the JSON pointer (RFC 6901) of the innermost frame, or
// of its child named by the optional last token; the root is "/" here,
// for the sake of a readable message, where RFC 6901 has "".
func (n *attrNormalizer) pointer(last ...string) string {
	var b strings.Builder
	for _, f := range n.stack[1:] {
		b.WriteByte('/')
		b.WriteString(escapePointerToken(f.name))
	}
	for _, t := range last {
		b.WriteByte('/')
		b.WriteString(escapePointerToken(t))
	}
	if b.Len() == 0 {
		return "/"
	}
	return boundText(b.String(), 200)
}

func escapePointerToken(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// quoteBounded quotes s for a message, cut to a readable length.
func quoteBounded(s string) string {
	return strconv.Quote(boundText(s, 64))
}

// boundText returns s, or its first bytes up to max (at a character's
// start) followed by "…".
func boundText(s string, max int) string {
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// jsonKind names the JSON type of a first token that is not '{'.
func jsonKind(tok json.Token) string {
	switch tok.(type) {
	case json.Delim: // '['; a closing one is a syntax error
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return "null"
}

// lonelySurrogate reports whether the first JSON string in seg (the input
// from the end of the token before a string to the string's end) has a
// \u escape of a UTF-16 surrogate that is not part of a pair, which the
// decoder silently turns into U+FFFD.
func lonelySurrogate(seg []byte) bool {
	i := bytes.IndexByte(seg, '"')
	if i < 0 {
		return false
	}
	hex4 := func(at int) (rune, bool) {
		if at+6 > len(seg) || seg[at] != '\\' || seg[at+1] != 'u' {
			return 0, false
		}
		v, err := strconv.ParseUint(string(seg[at+2:at+6]), 16, 32)
		return rune(v), err == nil
	}
	for i++; i < len(seg); i++ {
		switch seg[i] {
		case '"':
			return false
		case '\\':
			r, ok := hex4(i)
			if !ok {
				i++ // a one-character escape
				continue
			}
			switch {
			case 0xD800 <= r && r < 0xDC00:
				if r2, ok := hex4(i + 6); ok && 0xDC00 <= r2 && r2 < 0xE000 {
					i += 11
					continue
				}
				return true
			case 0xDC00 <= r && r < 0xE000:
				return true
			}
			i += 5
		}
	}
	return false
}

// numberProblem says why the JSON number s cannot be stored as Postgres
// numeric, or returns "".
func numberProblem(s string) string {
	mant, exp, hasExp := strings.Cut(strings.ToLower(s), "e")
	e := 0
	if hasExp {
		v, err := strconv.Atoi(exp)
		if err != nil || v > maxNumberExponent || v < -maxNumberExponent {
			return fmt.Sprintf("exponent %s is beyond ±%d", boundText(exp, 24), maxNumberExponent)
		}
		e = v
	}
	_, frac, _ := strings.Cut(mant, ".")
	if scale := len(frac) - e; scale > maxNumberScale {
		return fmt.Sprintf("%d digits after the decimal point, more than %d", scale, maxNumberScale)
	}
	// The v2 API carries attributes as a google.protobuf.Struct, whose
	// numbers are doubles: one beyond them could be stored but not read.
	if f, err := strconv.ParseFloat(s, 64); err != nil && math.IsInf(f, 0) {
		return fmt.Sprintf("beyond ±%.2g, the range of a double", math.MaxFloat64)
	}
	return ""
}

// plainNumber returns the valid JSON number s as Postgres prints a
// numeric: without an exponent, with as many digits after the point as s
// has once its exponent is applied (1e2 is 100, 2.5e-3 is 0.0025, 1.50 is
// 1.50), and no sign for zero. Both stores then keep the same text: jsonb
// keeps numbers as numeric and prints them so.
func plainNumber(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	mant, exp, hasExp := strings.Cut(strings.ToLower(s), "e")
	e := 0
	if hasExp {
		e, _ = strconv.Atoi(exp) // bounded by numberProblem
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	if !hasExp && !(neg && strings.Trim(intPart+frac, "0") == "") {
		return cmpNeg(neg) + s // already plain: JSON has no leading zeros
	}
	digits := intPart + frac
	point := len(intPart) + e // the point's place in digits
	switch {
	case point < 0:
		digits = strings.Repeat("0", -point) + digits
		point = 0
	case point > len(digits):
		digits += strings.Repeat("0", point-len(digits))
	}
	whole := strings.TrimLeft(digits[:point], "0")
	if whole == "" {
		whole = "0"
	}
	out := whole
	if f := digits[point:]; f != "" {
		out += "." + f
	}
	if neg && strings.Trim(digits, "0") != "" {
		out = "-" + out
	}
	return out
}

// cmpNeg is "-" for a negative number.
func cmpNeg(neg bool) string {
	if neg {
		return "-"
	}
	return ""
}

// invalidUTF8At returns the offset of the first byte of b that is not
// valid UTF-8.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(b)
}
