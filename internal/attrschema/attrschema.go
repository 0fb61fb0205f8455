// Package attrschema checks users' attributes against the JSON Schema that
// their tenant sets (settings.attributes_schema).
//
// A tenant's schema is JSON Schema draft 2020-12: a schema without
// "$schema" is read as 2020-12, and a "$schema" of any other draft is
// refused. Its top level must say "type": "object", since attributes are
// an object. A schema holds no reference ("$ref", "$dynamicRef"): each
// subschema is written where it applies, so that checking a value costs
// at most one pass over the schema (with references, 1 KB of anyOf
// chains takes seconds). Compile fetches nothing, neither over the
// network nor from the file system. The draft 2020-12 meta-schemas come
// with the library, built in.
//
// "format" is an annotation only, as draft 2020-12 has it by default:
// "format": "email" asserts nothing. Content keywords (contentEncoding,
// contentMediaType) assert nothing either. "pattern" is a Go regular
// expression (RE2), whose matching time is linear.
//
// Every error is a *users.InvalidError that names the field it was given:
// a schema's problem as one violation, an instance's as one violation per
// failing leaf of the validation (the "basic" output of JSON Schema), at
// most 20, each on the field followed by the JSON pointer of the value
// that fails ("user.attributes/address/zip").
package attrschema

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"regexp/syntax"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/usersd/usersd/internal/users"
)

// MaxSchemaBytes bounds a schema's JSON text.
const MaxSchemaBytes = 32768

const (
	// maxViolations bounds the violations of one Validate.
	maxViolations = 20
	// maxDescription bounds the length of one violation's description.
	maxDescription = 300
	// location is where the compiler finds a schema being compiled, a URL
	// of a made-up scheme that no loader knows: a relative reference such
	// as "other.json" resolves to "usersd:///other.json", which is refused
	// like any other. Messages show such URLs without "usersd://", and
	// location as "".
	location   = madeScheme + "/attributes-schema.json"
	madeScheme = "usersd://"
	// draft2020 is the meta-schema of draft 2020-12.
	draft2020 = "https://json-schema.org/draft/2020-12/schema"
)

// Schema is a compiled schema. It is safe for concurrent use.
type Schema struct {
	s    *jsonschema.Schema
	size schemaSize
}

// The bounds of the work of a check. The work of validating a value is at
// most the number of the schema's values times the instance's, plus, for
// patterns, their programs' instructions times the bytes of the
// instance's strings (RE2 runs in that time). A schema is refused past
// the first two bounds; a user's attributes that would take more work
// than the last two are refused without being checked. On this project's
// 2-core machine a failing step took up to 7 µs (a passing one 1.4 µs),
// and a pattern step 31 ns, so a check takes some 35 ms at most
// (BenchmarkValidateWorstCase).
const (
	maxSchemaValues   = 1000
	maxPatternProgram = 2000 // instructions, over all the schema's patterns
	maxCheckSteps     = 5_000
	maxPatternSteps   = 1_000_000
)

// schemaSize is what bounds the work of a check against a schema.
type schemaSize struct {
	values   int // the JSON values of the schema, those of data keywords aside
	patterns int // the instructions of the programs of its patterns
}

// measure adds the size of v, at pointer ptr, to z, and returns why the
// schema is too large, or "".
func (z *schemaSize) measure(v any, ptr string) string {
	if z.values++; z.values > maxSchemaValues {
		return fmt.Sprintf("more than %d values: a check must stay cheap; split it, or check less", maxSchemaValues)
	}
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			switch k {
			case "const", "enum", "default", "examples":
				continue
			case "pattern":
				if p, ok := v[k].(string); ok {
					if problem := z.pattern(p, ptr+"/pattern"); problem != "" {
						return problem
					}
				}
			case "patternProperties":
				if ps, ok := v[k].(map[string]any); ok {
					for _, p := range slices.Sorted(maps.Keys(ps)) {
						if problem := z.pattern(p, ptr+"/patternProperties/"+escapePointer(p)); problem != "" {
							return problem
						}
					}
				}
			}
			if problem := z.measure(v[k], ptr+"/"+escapePointer(k)); problem != "" {
				return problem
			}
		}
	case []any:
		for i, sub := range v {
			if problem := z.measure(sub, fmt.Sprintf("%s/%d", ptr, i)); problem != "" {
				return problem
			}
		}
	}
	return ""
}

// pattern adds the size of the program of the regular expression p.
func (z *schemaSize) pattern(p, ptr string) string {
	re, err := syntax.Parse(p, syntax.Perl)
	if err != nil {
		return "" // the compiler says what is wrong with it
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return ""
	}
	if z.patterns += len(prog.Inst); z.patterns > maxPatternProgram {
		return fmt.Sprintf("the patterns compile to more than %d instructions (at %s): a check must stay cheap", maxPatternProgram, boundText(ptr, 100))
	}
	return ""
}

// instanceSize returns the JSON values of v and the bytes of its strings
// (keys included).
func instanceSize(v any) (values, text int) {
	values = 1
	switch v := v.(type) {
	case map[string]any:
		for k, sub := range v {
			n, t := instanceSize(sub)
			values, text = values+n, text+t+len(k)
		}
	case []any:
		for _, sub := range v {
			n, t := instanceSize(sub)
			values, text = values+n, text+t
		}
	case string:
		text = len(v)
	}
	return values, text
}

// Compile checks and compiles a tenant's schema. Its errors are
// *users.InvalidError values with one violation of field.
func Compile(field string, schema []byte) (*Schema, error) {
	s, problem := compile(schema)
	if problem != "" {
		return nil, users.Invalid(field, problem)
	}
	return s, nil
}

// compile returns the compiled schema, or why it cannot be compiled. A
// tenant's schema that makes the library panic is refused rather than
// failing the caller.
func compile(schema []byte) (s *Schema, problem string) {
	defer func() {
		if r := recover(); r != nil {
			s, problem = nil, oneLine(fmt.Sprintf("not a usable JSON Schema: the compiler failed: %v", r))
		}
	}()
	if len(schema) > MaxSchemaBytes {
		return nil, fmt.Sprintf("%d bytes, more than %d", len(schema), MaxSchemaBytes)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, "not valid JSON: unexpected end of input"
		}
		return nil, oneLine("not valid JSON: " + err.Error())
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, `not a JSON Schema of an object: the top level must be a JSON object with "type": "object"`
	}
	if t, ok := obj["type"].(string); !ok || t != "object" {
		return nil, `the top level must have "type": "object": attributes are an object`
	}
	if problem := draftProblem(obj, ""); problem != "" {
		return nil, problem
	}
	var sz schemaSize
	if problem := sz.measure(obj, ""); problem != "" {
		return nil, problem
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(refuseLoader{})
	if err := c.AddResource(location, doc); err != nil {
		return nil, compileProblem(err)
	}
	compiled, err := c.Compile(location)
	if err != nil {
		return nil, compileProblem(err)
	}
	return &Schema{s: compiled, size: sz}, ""
}

// compileProblem describes the compiler's error err.
func compileProblem(err error) string {
	var le *jsonschema.LoadURLError
	if errors.As(err, &le) {
		return oneLine(fmt.Sprintf("refers to %q: a schema must be self-contained; it may refer to itself only, and nothing is fetched", strings.TrimPrefix(le.URL, madeScheme)))
	}
	var se *jsonschema.SchemaValidationError
	var ve *jsonschema.ValidationError
	if errors.As(err, &se) && errors.As(se.Err, &ve) {
		// Not valid against the meta-schema: say where, and what.
		var b strings.Builder
		b.WriteString("not a valid JSON Schema: ")
		for i, l := range leavesOf(ve) {
			if i > 0 {
				b.WriteString("; ")
			}
			ptr := l.ptr
			if ptr == "" {
				ptr = "the top level"
			}
			b.WriteString("at " + ptr + ": " + l.desc)
			if b.Len() > maxDescription {
				break
			}
		}
		return oneLine(b.String())
	}
	return oneLine("not a usable JSON Schema: " + withoutLocation(err.Error()))
}

// withoutLocation returns a message of the compiler or the validator without
// the made-up URLs of the schemas it compiles.
func withoutLocation(msg string) string {
	return strings.ReplaceAll(strings.ReplaceAll(msg, location, ""), madeScheme, "")
}

// errNoFetch is what refuseLoader says of every URL.
var errNoFetch = errors.New("schemas are not fetched")

// refuseLoader is the compiler's loader: it loads nothing. The compiler asks
// it for every document but the schema being compiled (added as a
// resource) and the meta-schemas (built into the library).
type refuseLoader struct{}

func (refuseLoader) Load(string) (any, error) { return nil, errNoFetch }

// draftProblem says why the schema or subschema obj, at pointer ptr, is
// not draft 2020-12, or holds a reference, or returns "". The compiler honours "$schema" only at
// the top and beside "$id", but a "$schema" of another draft is refused
// anywhere, lest a tenant believe it applies. The values of the keywords
// that hold data rather than schemas are not looked into.
func draftProblem(v any, ptr string) string {
	switch v := v.(type) {
	case map[string]any:
		if sv, ok := v["$schema"]; ok {
			if s, ok := sv.(string); !ok || (s != draft2020 && s != draft2020+"#") {
				where := ""
				if ptr != "" {
					where = " at " + boundText(ptr, 100)
				}
				return oneLine(fmt.Sprintf("%q%s is %s: only JSON Schema draft 2020-12 (%q) is supported", "$schema", where, boundText(fmt.Sprint(displayJSON(sv)), 100), draft2020))
			}
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			switch k {
			case "const", "enum", "default", "examples":
				continue
			case "$ref", "$dynamicRef", "$recursiveRef":
				// A reference lets a schema apply a subschema many
				// times at one value: a chain of anyOf of two
				// references doubles the work at each link, and 1 KB
				// of them takes seconds. Without references, a
				// validation visits each subschema once per value.
				return oneLine(fmt.Sprintf("%q at %s: references are not allowed; write the subschema where it applies, so that a check costs at most one pass over the schema",
					k, boundText(ptr+"/"+escapePointer(k), 100)))
			}
			if problem := draftProblem(v[k], ptr+"/"+escapePointer(k)); problem != "" {
				return problem
			}
		}
	case []any:
		for i, sub := range v {
			if problem := draftProblem(sub, fmt.Sprintf("%s/%d", ptr, i)); problem != "" {
				return problem
			}
		}
	}
	return ""
}

// displayJSON is v as a message shows it: strings quoted.
func displayJSON(v any) any {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return v
}

// Validate checks attrs, a user's normalized attributes (nil for none,
// which is {}), against s. It returns nil or a *users.InvalidError with a
// violation for each failing leaf of the validation, at most 20, whose
// field is field followed by the JSON pointer of the failing value: field
// itself for the whole object (a required property that is missing fails
// its object), field + "/address/zip" for a property, field + "/tags/0" for
// an element of an array. Numbers are compared exactly, however many their
// digits.
func (s *Schema) Validate(field string, attrs []byte) error {
	var v any = map[string]any{}
	if trimmed := bytes.TrimSpace(attrs); len(trimmed) > 0 && string(trimmed) != "null" {
		var err error
		if v, err = jsonschema.UnmarshalJSON(bytes.NewReader(attrs)); err != nil {
			if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
				return users.Invalid(field, "not valid JSON: unexpected end of input")
			}
			return users.Invalid(field, oneLine("not valid JSON: "+err.Error()))
		}
	}
	values, text := instanceSize(v)
	if values*s.size.values > maxCheckSteps || text*s.size.patterns > maxPatternSteps {
		return users.Invalid(field, fmt.Sprintf("too large to check against the tenant's schema: %d values and %d bytes of text, for a schema of %d values and %d pattern instructions",
			values, text, s.size.values, s.size.patterns))
	}
	err := s.s.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return users.Invalid(field, oneLine(err.Error()))
	}
	ls := leavesOf(ve)
	if len(ls) == 0 { // a failure without a leaf: there is none
		return users.Invalid(field, oneLine(ve.Error()))
	}
	vs := make([]users.FieldViolation, 0, min(len(ls), maxViolations))
	for _, l := range ls[:min(len(ls), maxViolations)] {
		vs = append(vs, users.FieldViolation{Field: field + l.ptr, Description: l.desc})
	}
	return &users.InvalidError{Violations: vs}
}

// leaf is a failing leaf of a validation: the JSON pointer of the value
// that fails, and why.
type leaf struct{ ptr, desc string }

// leavesOf returns the leaves of a ValidationError tree, each once, sorted
// by pointer and then description, since the tree's order follows maps'.
func leavesOf(e *jsonschema.ValidationError) []leaf {
	var ls []leaf
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		for _, c := range e.Causes {
			walk(c)
		}
		if len(e.Causes) > 0 {
			return
		}
		var b strings.Builder
		for _, tok := range e.InstanceLocation {
			b.WriteByte('/')
			b.WriteString(escapePointer(tok))
		}
		ls = append(ls, leaf{ptr: b.String(), desc: oneLine(withoutLocation(describe(e)))})
	}
	walk(e)
	slices.SortFunc(ls, func(a, b leaf) int {
		return cmp.Or(strings.Compare(a.ptr, b.ptr), strings.Compare(a.desc, b.desc))
	})
	return slices.Compact(ls)
}

// describe returns the message of the leaf e: the library's, but for
// numbers, which it shows as float64 (and in English, "1.2×10¹⁹"), where
// they are shown exactly as compared.
func describe(e *jsonschema.ValidationError) string {
	switch k := e.ErrorKind.(type) {
	case *kind.Minimum:
		return "minimum: got " + exact(k.Got) + ", want " + exact(k.Want)
	case *kind.Maximum:
		return "maximum: got " + exact(k.Got) + ", want " + exact(k.Want)
	case *kind.ExclusiveMinimum:
		return "exclusiveMinimum: got " + exact(k.Got) + ", want " + exact(k.Want)
	case *kind.ExclusiveMaximum:
		return "exclusiveMaximum: got " + exact(k.Got) + ", want " + exact(k.Want)
	case *kind.MultipleOf:
		return "multipleOf: got " + exact(k.Got) + ", want " + exact(k.Want)
	}
	// A leaf's basic output is the one unit, whose error is the leaf's.
	if out := e.BasicOutput(); out.Error != nil {
		return out.Error.String()
	}
	return "validation failed"
}

// exact returns r in decimal, exactly when its decimal expansion ends (as
// that of every JSON number does).
func exact(r *big.Rat) string {
	if r == nil {
		return "?"
	}
	if r.IsInt() {
		return r.Num().String()
	}
	n, ok := r.FloatPrec()
	if !ok {
		n = 20
	}
	return r.FloatString(n)
}

// escapePointer escapes a JSON pointer's token (RFC 6901).
func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// oneLine makes s a description: one line, each run of white space or
// control characters one space, at most maxDescription bytes.
func oneLine(s string) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToValidUTF8(s, string(utf8.RuneError)) {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return boundText(b.String(), maxDescription)
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

// Digest returns a short digest of a schema's text (hex of the first 16
// bytes of its SHA-256), fit to name the schema's version.
func Digest(schema []byte) string {
	sum := sha256.Sum256(schema)
	return hex.EncodeToString(sum[:16])
}

// Cache compiles schemas once each, keeping the most recently used. It is
// safe for concurrent use.
type Cache struct {
	mu  sync.Mutex
	lru *simplelru.LRU[[sha256.Size]byte, *cached]
}

// cached is a schema compiled, or being compiled, or why it cannot be.
type cached struct {
	once    sync.Once
	schema  *Schema
	problem string
}

// NewCache returns a cache of up to size compiled schemas (at least 1).
func NewCache(size int) *Cache {
	l, err := simplelru.NewLRU[[sha256.Size]byte, *cached](max(size, 1), nil)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return &Cache{lru: l}
}

// Get returns schema compiled, as Compile does, compiling it only when it is
// not in the cache: schemas are the same when their texts are. Schemas that
// do not compile are cached too; their error names field.
func (c *Cache) Get(field string, schema []byte) (*Schema, error) {
	if len(schema) > MaxSchemaBytes {
		return Compile(field, schema)
	}
	key := sha256.Sum256(schema)
	c.mu.Lock()
	e, ok := c.lru.Get(key)
	if !ok {
		e = &cached{}
		c.lru.Add(key, e)
	}
	c.mu.Unlock()
	// Callers that want the same schema meanwhile wait for its compilation.
	e.once.Do(func() { e.schema, e.problem = compile(schema) })
	if e.schema == nil && e.problem == "" { // compile did not return
		return nil, errors.New("attrschema: schema compilation failed")
	}
	if e.problem != "" {
		return nil, users.Invalid(field, e.problem)
	}
	return e.schema, nil
}
