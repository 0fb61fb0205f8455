package attrschema_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usersd/usersd/internal/attrschema"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

const (
	schemaField = "tenant.settings.attributes_schema"
	attrsField  = "user.attributes"
)

// violations returns err's violations, failing t unless err is an
// *users.InvalidError.
func violations(t *testing.T, err error) []users.FieldViolation {
	t.Helper()
	var ie *users.InvalidError
	if !errors.As(err, &ie) || !errors.Is(err, users.ErrInvalid) {
		t.Fatalf("error %T %v, want an *users.InvalidError", err, err)
	}
	return ie.Violations
}

// compileProblem returns the one violation's description of Compile's error.
func compileProblem(t *testing.T, schema string) string {
	t.Helper()
	s, err := attrschema.Compile(schemaField, []byte(schema))
	if err == nil {
		t.Fatalf("Compile(%.100s) = %v, want an error", schema, s)
	}
	vs := violations(t, err)
	if len(vs) != 1 || vs[0].Field != schemaField {
		t.Fatalf("Compile(%.100s): violations %+v, want one of %s", schema, vs, schemaField)
	}
	d := vs[0].Description
	if strings.ContainsAny(d, "\n\r\t") || len(d) > 300+len("…") {
		t.Errorf("Compile(%.100s): description of %d bytes, not one bounded line: %q", schema, len(d), d)
	}
	return d
}

func mustCompile(t *testing.T, schema string) *attrschema.Schema {
	t.Helper()
	s, err := attrschema.Compile(schemaField, []byte(schema))
	if err != nil {
		t.Fatalf("Compile(%.100s): %v", schema, err)
	}
	return s
}

func TestCompileSchema(t *testing.T) {
	for _, schema := range []string{
		`{"type":"object"}`,
		`{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"object"}`,
		`{"$schema":"https://json-schema.org/draft/2020-12/schema#","type":"object"}`,
		`{"type":"object","properties":{"a":{"type":"string"}}}`,
		// An $id and an anchor, which nothing refers to: nothing is fetched.
		`{"$id":"https://schemas.example/u","type":"object","properties":{"a":{"type":"string"},"b":{"$anchor":"b","type":"integer"}}}`,
		// $defs that nothing refers to are annotations.
		`{"type":"object","$defs":{"a":{"type":"string"}}}`,
		// A recursive structure, written out level by level (three deep).
		`{"type":"object","properties":{"name":{"type":"string"},"children":{"type":"array","items":{"type":"object","properties":{"name":{"type":"string"},"children":{"type":"array","items":{"type":"object","properties":{"name":{"type":"string"}}}}}}}}}`,
		// Unknown formats and keywords are annotations.
		`{"type":"object","properties":{"e":{"type":"string","format":"no-such-format"}},"x-ui":{"order":1}}`,
	} {
		mustCompile(t, schema)
	}
}

// refRefused is the description of a schema that holds the reference
// keyword kw at the JSON pointer ptr.
func refRefused(kw, ptr string) string {
	return fmt.Sprintf("%q at %s: references are not allowed; write the subschema where it applies, so that a check costs at most one pass over the schema", kw, ptr)
}

// TestCompileSchemaDataLikeReference checks that values of the keywords that
// hold data (const, enum, default, examples) may look like references.
func TestCompileSchemaDataLikeReference(t *testing.T) {
	s := mustCompile(t, `{"type":"object","default":{"$ref":"#"},"properties":{
		"a":{"const":{"$ref":"https://schemas.example/a.json"},"default":{"$ref":"file:///etc/passwd"},"examples":[{"$dynamicRef":"#n"}]},
		"b":{"enum":[{"$recursiveRef":"#"},{"$ref":"#/$defs/x"}]}}}`)
	if err := s.Validate(attrsField, []byte(`{"a":{"$ref":"https://schemas.example/a.json"},"b":{"$recursiveRef":"#"}}`)); err != nil {
		t.Errorf("Validate: %v", err)
	}
	want := []users.FieldViolation{{Field: "user.attributes/b", Description: "'enum' failed"}}
	if diff := cmp.Diff(want, violations(t, s.Validate(attrsField, []byte(`{"b":{"$ref":"#"}}`)))); diff != "" {
		t.Errorf("violations (-want +got):\n%s", diff)
	}
}

func TestCompileSchemaRefused(t *testing.T) {
	big := `{"type":"object","description":"` + strings.Repeat("x", attrschema.MaxSchemaBytes) + `"}`
	for _, tt := range []struct {
		name, schema, want string
	}{
		// Every reference is refused, wherever it leads: to another
		// document, which would be fetched, or into the schema itself.
		{"remote ref", `{"type":"object","properties":{"a":{"$ref":"https://schemas.example/a.json"}}}`,
			refRefused("$ref", "/properties/a/$ref")},
		{"file ref", `{"type":"object","$ref":"file:///etc/passwd"}`, refRefused("$ref", "/$ref")},
		{"path ref", `{"type":"object","$ref":"/etc/passwd"}`, refRefused("$ref", "/$ref")},
		{"relative ref", `{"type":"object","$ref":"other.json#/a"}`, refRefused("$ref", "/$ref")},
		{"ref relative to $id", `{"$id":"https://schemas.example/u/","type":"object","$ref":"other.json"}`, refRefused("$ref", "/$ref")},
		{"dynamic ref", `{"type":"object","$dynamicRef":"https://schemas.example/x#a"}`, refRefused("$dynamicRef", "/$dynamicRef")},
		{"unknown meta-schema ref", `{"type":"object","$ref":"https://json-schema.org/no-such-schema"}`, refRefused("$ref", "/$ref")},
		{"built-in meta-schema ref", `{"type":"object","properties":{"s":{"$ref":"https://json-schema.org/draft/2020-12/schema"}}}`,
			refRefused("$ref", "/properties/s/$ref")},
		{"local ref", `{"type":"object","properties":{"a":{"$ref":"#/$defs/a"}},"$defs":{"a":{"type":"string"}}}`,
			refRefused("$ref", "/properties/a/$ref")},
		{"ref to itself", `{"type":"object","properties":{"children":{"type":"array","items":{"$ref":"#"}}}}`,
			refRefused("$ref", "/properties/children/items/$ref")},
		{"ref to its own $id and anchor", `{"$id":"https://schemas.example/u","type":"object","properties":{"a":{"$ref":"https://schemas.example/u#/$defs/a"},"b":{"$ref":"#b"}},"$defs":{"a":{"type":"string"},"b":{"$anchor":"b","type":"integer"}}}`,
			refRefused("$ref", "/properties/a/$ref")},
		{"local dynamic ref", `{"type":"object","$dynamicAnchor":"n","properties":{"c":{"$dynamicRef":"#n"}}}`,
			refRefused("$dynamicRef", "/properties/c/$dynamicRef")},
		{"recursive ref", `{"type":"object","properties":{"c":{"items":{"$recursiveRef":"#"}}}}`,
			refRefused("$recursiveRef", "/properties/c/items/$recursiveRef")},
		{"ref in an array of subschemas", `{"type":"object","properties":{"t":{"prefixItems":[{},{"not":{"$ref":"#"}}]}}}`,
			refRefused("$ref", "/properties/t/prefixItems/1/not/$ref")},
		{"ref in unused $defs", `{"type":"object","$defs":{"a":{"allOf":[{"$ref":"#"}]}}}`,
			refRefused("$ref", "/$defs/a/allOf/0/$ref")},
		{"ref not a string", `{"type":"object","$ref":7}`, refRefused("$ref", "/$ref")},
		{"pointer escapes", `{"type":"object","properties":{"a/b~c":{"$ref":"#"}}}`,
			refRefused("$ref", "/properties/a~1b~0c/$ref")},
		{"long pointer", `{"type":"object","properties":{"` + strings.Repeat("p", 200) + `":{"$ref":"#"}}}`,
			refRefused("$ref", "/properties/"+strings.Repeat("p", 100-len("/properties/"))+"…")},
		{"missing pointer", `{"type":"object","$ref":"#/$defs/nope"}`, refRefused("$ref", "/$ref")},
		{"draft-07", `{"$schema":"http://json-schema.org/draft-07/schema#","type":"object"}`,
			`"$schema" is "http://json-schema.org/draft-07/schema#": only JSON Schema draft 2020-12 ("https://json-schema.org/draft/2020-12/schema") is supported`},
		{"draft 2019-09", `{"$schema":"https://json-schema.org/draft/2019-09/schema","type":"object"}`,
			`"$schema" is "https://json-schema.org/draft/2019-09/schema": only JSON Schema draft 2020-12 ("https://json-schema.org/draft/2020-12/schema") is supported`},
		{"latest", `{"$schema":"https://json-schema.org/schema","type":"object"}`,
			`"$schema" is "https://json-schema.org/schema": only JSON Schema draft 2020-12 ("https://json-schema.org/draft/2020-12/schema") is supported`},
		{"custom meta-schema", `{"$schema":"https://schemas.example/meta","type":"object"}`,
			`"$schema" is "https://schemas.example/meta": only JSON Schema draft 2020-12 ("https://json-schema.org/draft/2020-12/schema") is supported`},
		{"$schema not a string", `{"$schema":7,"type":"object"}`,
			`"$schema" is 7: only JSON Schema draft 2020-12 ("https://json-schema.org/draft/2020-12/schema") is supported`},
		{"embedded draft-04", `{"type":"object","$defs":{"old":{"$id":"https://schemas.example/old","$schema":"http://json-schema.org/draft-04/schema#"}}}`,
			`"$schema" at /$defs/old is "http://json-schema.org/draft-04/schema#": only JSON Schema draft 2020-12 ("https://json-schema.org/draft/2020-12/schema") is supported`},
		{"no type", `{"properties":{}}`, `the top level must have "type": "object": attributes are an object`},
		{"type array", `{"type":"array"}`, `the top level must have "type": "object": attributes are an object`},
		{"type list", `{"type":["object","null"]}`, `the top level must have "type": "object": attributes are an object`},
		{"boolean schema", `true`, `not a JSON Schema of an object: the top level must be a JSON object with "type": "object"`},
		{"array", `[]`, `not a JSON Schema of an object: the top level must be a JSON object with "type": "object"`},
		{"too big", big, fmt.Sprintf("%d bytes, more than %d", len(big), attrschema.MaxSchemaBytes)},
		{"invalid JSON", `{"type":"object",}`, `not valid JSON: invalid character '}' looking for beginning of object key string`},
		{"empty", ``, `not valid JSON: unexpected end of input`},
		{"truncated", `{"type":"obj`, `not valid JSON: unexpected end of input`},
		{"trailing data", `{"type":"object"} {}`, `not valid JSON: invalid character after top-level value`},
		{"not valid against the meta-schema", `{"type":"object","properties":{"a":{"minLength":-1}}}`,
			`not a valid JSON Schema: at /properties/a/minLength: minimum: got -1, want 0`},
		{"invalid regex", `{"type":"object","patternProperties":{"(?<=x)":{}}}`,
			"not a valid JSON Schema: at the top level: '(?<=x)' is not valid regex: error parsing regexp: invalid named capture: `(?<=x)`"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := compileProblem(t, tt.schema); got != tt.want {
				t.Errorf("Compile(%.100s): description\n%q, want\n%q", tt.schema, got, tt.want)
			}
		})
	}
}

func TestCompileSchemaLongProblem(t *testing.T) {
	var props []string
	for i := range 50 {
		props = append(props, fmt.Sprintf(`"p%d":{"type":"nonsense\n%d"}`, i, i))
	}
	d := compileProblem(t, `{"type":"object","properties":{`+strings.Join(props, ",")+`}}`)
	if !strings.HasPrefix(d, "not a valid JSON Schema: at /properties/p0/type: ") || !strings.HasSuffix(d, "…") {
		t.Errorf("description %q", d)
	}
}

// TestCompileSchemaFetchesNothing checks that references that the library's
// default loader would follow are refused, as every reference is, without a
// request or a read.
func TestCompileSchemaFetchesNothing(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "application/schema+json")
		fmt.Fprint(w, `{"type":"string"}`)
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "a.json")
	if err := os.WriteFile(file, []byte(`{"type":"string"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{srv.URL + "/a.json", "file://" + file, file} {
		for _, kw := range []string{"$ref", "$dynamicRef"} {
			d := compileProblem(t, `{"type":"object","properties":{"a":{"`+kw+`":"`+ref+`"}}}`)
			if want := refRefused(kw, "/properties/a/"+kw); d != want {
				t.Errorf("%s %s: %q, want %q", kw, ref, d, want)
			}
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests to the schema server", n)
	}
}

// TestCompileRefusesExponentialReferences checks that a schema whose
// validation takes time exponential in its size is refused: each of 18
// levels is an anyOf of two references to the next, so that a value that
// fails is checked against the last level 2^18 times (with references
// allowed, this 1.2 KB schema took seconds to check one value).
func TestCompileRefusesExponentialReferences(t *testing.T) {
	var defs []string
	for i := range 18 {
		defs = append(defs, fmt.Sprintf(`"d%d":{"anyOf":[{"$ref":"#/$defs/d%d"},{"$ref":"#/$defs/d%d"}]}`, i, i+1, i+1))
	}
	defs = append(defs, `"d18":{"type":"string","pattern":"^a+$"}`)
	schema := `{"type":"object","properties":{"a":{"$ref":"#/$defs/d0"}},"$defs":{` + strings.Join(defs, ",") + `}}`
	want := refRefused("$ref", "/$defs/d0/anyOf/0/$ref")
	if d := compileProblem(t, schema); d != want {
		t.Errorf("description %q, want %q", d, want)
	}
	_, err := attrschema.NewCache(1).Get(schemaField, []byte(schema))
	if vs := violations(t, err); len(vs) != 1 || vs[0].Description != want {
		t.Errorf("Cache.Get: %v, want %q", err, want)
	}
}

const addressSchema = `{
	"type": "object",
	"required": ["name"],
	"additionalProperties": false,
	"properties": {
		"name": {"type": "string", "minLength": 1},
		"email": {"type": "string", "format": "email"},
		"address": {
			"type": "object",
			"required": ["city"],
			"properties": {
				"zip": {"type": "string", "pattern": "^[0-9]{5}$"},
				"city": {"type": "string"}
			}
		},
		"tags": {"type": "array", "items": {"type": "string", "maxLength": 3}},
		"a/b~c": {"type": "integer"}
	}
}`

func TestSchemaValidate(t *testing.T) {
	s := mustCompile(t, addressSchema)
	for _, tt := range []struct {
		name  string
		attrs string
		want  []users.FieldViolation
	}{
		{"valid", `{"name":"Ada","address":{"zip":"12345","city":"London"},"tags":["a"]}`, nil},
		{"format is an annotation", `{"name":"Ada","email":"not an address"}`, nil},
		{"nested", `{"name":"Ada","address":{"zip":"1234x","city":"London"}}`, []users.FieldViolation{
			{Field: "user.attributes/address/zip", Description: "'1234x' does not match pattern '^[0-9]{5}$'"},
		}},
		{"array index", `{"name":"Ada","tags":["ok","long",7]}`, []users.FieldViolation{
			{Field: "user.attributes/tags/1", Description: "maxLength: got 4, want 3"},
			{Field: "user.attributes/tags/2", Description: "got number, want string"},
		}},
		{"missing property", `{"name":"Ada","address":{"zip":"12345"}}`, []users.FieldViolation{
			{Field: "user.attributes/address", Description: "missing property 'city'"},
		}},
		{"at the root", `{"nickname":"A"}`, []users.FieldViolation{
			{Field: "user.attributes", Description: "additional properties 'nickname' not allowed"},
			{Field: "user.attributes", Description: "missing property 'name'"},
		}},
		{"pointer escapes", `{"name":"Ada","a/b~c":"x"}`, []users.FieldViolation{
			{Field: "user.attributes/a~1b~0c", Description: "got string, want integer"},
		}},
		{"one line", `{"name":"Ada","address":{"zip":"1\n2","city":"x"}}`, []users.FieldViolation{
			{Field: "user.attributes/address/zip", Description: `'1\n2' does not match pattern '^[0-9]{5}$'`},
		}},
		{"not an object", `[1]`, []users.FieldViolation{
			{Field: "user.attributes", Description: "got array, want object"},
		}},
		{"none", ``, []users.FieldViolation{
			{Field: "user.attributes", Description: "missing property 'name'"},
		}},
		{"null", `null`, []users.FieldViolation{
			{Field: "user.attributes", Description: "missing property 'name'"},
		}},
		{"not JSON", `{"name":`, []users.FieldViolation{
			{Field: "user.attributes", Description: "not valid JSON: unexpected end of input"},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Validate(attrsField, []byte(tt.attrs))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate(%s): %v", tt.attrs, err)
				}
				return
			}
			if diff := cmp.Diff(tt.want, violations(t, err)); diff != "" {
				t.Errorf("Validate(%s) violations (-want +got):\n%s", tt.attrs, diff)
			}
		})
	}
	if err := s.Validate(attrsField, nil); err == nil {
		t.Error("Validate(nil) = nil, want name missing")
	}
	if err := mustCompile(t, `{"type":"object"}`).Validate(attrsField, nil); err != nil {
		t.Errorf("Validate(nil) against {}: %v", err)
	}
}

func TestSchemaValidateAnyOf(t *testing.T) {
	s := mustCompile(t, `{"type":"object","properties":{"id":{"anyOf":[{"type":"string"},{"type":"integer"}]}}}`)
	want := []users.FieldViolation{
		{Field: "user.attributes/id", Description: "got boolean, want integer"},
		{Field: "user.attributes/id", Description: "got boolean, want string"},
	}
	if diff := cmp.Diff(want, violations(t, s.Validate(attrsField, []byte(`{"id":true}`)))); diff != "" {
		t.Errorf("violations (-want +got):\n%s", diff)
	}
}

func TestSchemaValidateCap(t *testing.T) {
	var props, attrs []string
	for i := range 30 {
		props = append(props, fmt.Sprintf(`"p%02d":{"type":"string"}`, i))
		attrs = append(attrs, fmt.Sprintf(`"p%02d":%d`, i, i))
	}
	s := mustCompile(t, `{"type":"object","properties":{`+strings.Join(props, ",")+`}}`)
	for range 5 { // the same 20 every time, in the same order
		vs := violations(t, s.Validate(attrsField, []byte(`{`+strings.Join(attrs, ",")+`}`)))
		if len(vs) != 20 {
			t.Fatalf("%d violations, want 20", len(vs))
		}
		for i, v := range vs {
			if want := fmt.Sprintf("user.attributes/p%02d", i); v.Field != want || v.Description != "got number, want string" {
				t.Fatalf("violation %d: %+v, want on %s", i, v, want)
			}
		}
	}
}

func TestSchemaValidateBigNumbers(t *testing.T) {
	s := mustCompile(t, `{"type":"object","properties":{
		"max": {"maximum": 12345678901234567890},
		"const": {"const": 12345678901234567890123},
		"int": {"type": "integer"},
		"step": {"multipleOf": 0.01}
	}}`)
	for _, attrs := range []string{
		`{"max":12345678901234567890}`,
		`{"max":12345678901234567889.999999}`,
		`{"const":12345678901234567890123}`,
		`{"const":12345678901234567890123.0}`,
		`{"int":123456789012345678901234567890}`,
		`{"int":1.0}`,
		`{"step":0.07}`,
		`{"step":19.99}`,
	} {
		if err := s.Validate(attrsField, []byte(attrs)); err != nil {
			t.Errorf("Validate(%s): %v", attrs, err)
		}
	}
	for attrs, want := range map[string]users.FieldViolation{
		// As float64, each of these equals what the schema allows.
		`{"max":12345678901234567891}`:       {Field: "user.attributes/max", Description: "maximum: got 12345678901234567891, want 12345678901234567890"},
		`{"step":0.001}`:                     {Field: "user.attributes/step", Description: "multipleOf: got 0.001, want 0.01"},
		`{"const":12345678901234567890124}`:  {Field: "user.attributes/const", Description: "value must be 12345678901234567890123"},
		`{"int":12345678901234567890.00001}`: {Field: "user.attributes/int", Description: "got number, want integer"},
	} {
		vs := violations(t, s.Validate(attrsField, []byte(attrs)))
		if len(vs) != 1 || vs[0] != want {
			t.Errorf("Validate(%s): %+v, want %+v", attrs, vs, want)
		}
	}
}

// TestValidateNormalized validates what users.NormalizeAttributes returns,
// as the service does.
func TestSchemaValidateNormalized(t *testing.T) {
	s := mustCompile(t, addressSchema)
	attrs, err := users.NormalizeAttributes(attrsField, []byte(` { "tags" : [ "abcd" ] , "name" : "<Ada>" } `))
	if err != nil {
		t.Fatal(err)
	}
	want := []users.FieldViolation{{Field: "user.attributes/tags/0", Description: "maxLength: got 4, want 3"}}
	if diff := cmp.Diff(want, violations(t, s.Validate(attrsField, attrs))); diff != "" {
		t.Errorf("violations (-want +got):\n%s", diff)
	}
}

func TestSchemaDigest(t *testing.T) {
	schema := []byte(`{"type":"object"}`)
	sum := sha256.Sum256(schema)
	if got, want := attrschema.Digest(schema), hex.EncodeToString(sum[:16]); got != want || len(got) != 32 {
		t.Errorf("Digest = %q, want %q", got, want)
	}
	if attrschema.Digest([]byte(`{"type": "object"}`)) == attrschema.Digest(schema) {
		t.Error("two texts have one digest")
	}
}

func TestSchemaCache(t *testing.T) {
	c := attrschema.NewCache(2)
	a, b, bad := []byte(`{"type":"object"}`), []byte(`{"type":"object","required":["x"]}`), []byte(`{"type":"string"}`)
	s1, err := c.Get(schemaField, a)
	if err != nil {
		t.Fatal(err)
	}
	if s2, _ := c.Get(schemaField, append([]byte(nil), a...)); s2 != s1 {
		t.Error("the same schema compiled twice")
	}
	if s3, _ := c.Get(schemaField, b); s3 == s1 || s3 == nil {
		t.Error("two schemas share a compilation")
	}
	// Errors are cached, and name each caller's field.
	for _, field := range []string{schemaField, "settings.attributes_schema"} {
		_, err := c.Get(field, bad)
		if vs := violations(t, err); len(vs) != 1 || vs[0].Field != field {
			t.Errorf("Get(%s, bad): %v", field, err)
		}
	}
	// Only two fit: a was the least recently used, so it is compiled anew.
	if s4, _ := c.Get(schemaField, a); s4 == s1 {
		t.Error("a survived two more recent schemas in a cache of 2")
	}
	big := make([]byte, attrschema.MaxSchemaBytes+1)
	if _, err := c.Get(schemaField, big); err == nil {
		t.Error("Get(too big) = nil error")
	}
	if _, err := attrschema.NewCache(0).Get(schemaField, a); err != nil {
		t.Errorf("NewCache(0): %v", err)
	}
}

func TestSchemaCacheConcurrent(t *testing.T) {
	c := attrschema.NewCache(3)
	schemas := make([][]byte, 5)
	for i := range schemas {
		schemas[i] = fmt.Appendf(nil, `{"type":"object","properties":{"n":{"maximum":%d}}}`, i)
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				k := (g + i) % len(schemas)
				s, err := c.Get(schemaField, schemas[k])
				if err != nil {
					t.Error(err)
					return
				}
				if err := s.Validate(attrsField, fmt.Appendf(nil, `{"n":%d}`, k)); err != nil {
					t.Error(err)
					return
				}
				if err := s.Validate(attrsField, fmt.Appendf(nil, `{"n":%d}`, k+1)); err == nil {
					t.Errorf("schema %d allowed %d", k, k+1)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkCompile(b *testing.B) {
	for b.Loop() {
		if _, err := attrschema.Compile(schemaField, []byte(addressSchema)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCacheGet(b *testing.B) {
	c := attrschema.NewCache(16)
	schema := []byte(addressSchema)
	for b.Loop() {
		if _, err := c.Get(schemaField, schema); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidate(b *testing.B) {
	s, err := attrschema.Compile(schemaField, []byte(addressSchema))
	if err != nil {
		b.Fatal(err)
	}
	attrs := []byte(`{"name":"Ada","address":{"zip":"12345","city":"London"},"tags":["a","b","c"]}`)
	for b.Loop() {
		if err := s.Validate(attrsField, attrs); err != nil {
			b.Fatal(err)
		}
	}
}

// worstCase is a schema and normalized attributes within the bounds of
// Compile and Validate, built to make Validate work as long as it can.
type worstCase struct{ name, schema, attrs string }

// worstCases are the most expensive schemas and attributes within the
// bounds that we know of. Without references, each subschema applies at
// most once to each value, but that still makes the work of a check the
// product of the schema's size and the attributes', and that of a pattern
// the product of its length and the string's:
//
//   - patterns: one string of 16 KB, and an allOf of 184 patterns (all that
//     fit), each \pL{1000} sixteen times, which compiles to 16,000
//     instructions that an unanchored match (RE2, without a DFA in Go)
//     keeps alive at nearly each of the string's bytes: seconds a pattern.
//   - fan-out: an array of 8,188 numbers whose every element is checked
//     against an allOf of 10,903 {} (all that fit): 89 million applications
//     of a subschema, all of them passing.
//   - failing fan-out: the same with 5,451 false instead: 44.6 million
//     failures, each a leaf of the error tree, which is built in full (about
//     400 bytes a leaf, 17 GB) and whose every leaf is described before the
//     20 reported are chosen.
func worstCases() []worstCase {
	// The largest schema and attributes that Compile and Validate's
	// bounds let through, for each kind of work.
	str := `{"s":"` + strings.Repeat("a", 490) + `"}` // 491 bytes of text, × 1,988 instructions
	nums := `{"a":[0,0,0]}`                           // 5 values, × 995 schema values
	pattern := `[a-z]{495}0`                          // 497 instructions; never matches letters alone
	return []worstCase{
		{"patterns", `{"type":"object","properties":{"s":{"allOf":[` +
			strings.Repeat(`{"pattern":"`+pattern+`"},`, 3) + `{"pattern":"` + pattern + `"}]}}}`, str},
		{"fan-out", `{"type":"object","properties":{"a":{"items":{"allOf":[` + strings.TrimSuffix(strings.Repeat("{},", 990), ",") + `]}}}}`, nums},
		{"failing fan-out", `{"type":"object","properties":{"a":{"items":{"allOf":[` + strings.TrimSuffix(strings.Repeat("false,", 990), ",") + `]}}}}`, nums},
	}
}

// TestWorstCasesAtTheBounds checks that the worst cases compile and are
// checked (not refused as too large to check), with attributes as the
// service validates them (normalized), and that a little more of either
// is refused. TestValidateWorstCaseBounded times their checks.
func TestWorstCasesAtTheBounds(t *testing.T) {
	for _, wc := range worstCases() {
		norm, err := users.NormalizeAttributes(attrsField, []byte(wc.attrs))
		if err != nil || string(norm) != wc.attrs {
			t.Errorf("%s: attributes not normalized: %v", wc.name, err)
		}
		s, err := attrschema.Compile("schema", []byte(wc.schema))
		if err != nil {
			t.Fatalf("%s: %v", wc.name, err)
		}
		if err := s.Validate(attrsField, []byte(wc.attrs)); err != nil && strings.Contains(err.Error(), "too large to check") {
			t.Errorf("%s: refused as too large: %v", wc.name, err)
		}
		more := strings.Replace(wc.attrs, `"a`, `"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa`, 1)
		if strings.Contains(wc.attrs, "[") {
			more = strings.Replace(wc.attrs, "[", "[0,0,0,", 1)
		}
		if err := s.Validate(attrsField, []byte(more)); err == nil || !strings.Contains(err.Error(), "too large to check") {
			t.Errorf("%s: a little more is not refused as too large to check: %v", wc.name, err)
		}
	}
}

// worstCaseEnv names the worst case that the process running
// TestValidateWorstCaseBounded as a child compiles and validates.
const worstCaseEnv = "ATTRSCHEMA_TEST_WORST_CASE"

// worstCaseBound is how long Validate may take of a worst case.
//
// It is a bound, not a timing that a busy machine can make flaky: the
// work of a check is bounded (Compile's and Validate's bounds on the
// values and patterns of schemas and attributes), and the worst cases
// measured by BenchmarkValidateWorstCase are far below it (see
// docs/api.md); the bound is 10 times the slowest, up to 100 ms.
const worstCaseBound = 100 * time.Millisecond

// TestValidateWorstCaseBounded checks that Validate of each worst case
// returns within worstCaseBound. Each runs in a child process, killed when
// Validate takes seconds, so that neither its time nor its memory outlives
// the check.
func TestValidateWorstCaseBounded(t *testing.T) {
	if name := os.Getenv(worstCaseEnv); name != "" {
		worstCaseChild(t, name)
		return
	}
	if userstest.RaceEnabled {
		t.Skip("times Validate, which the race detector slows fivefold and more; BenchmarkValidateWorstCase measures it")
	}
	const (
		// compileDeadline bounds the child's start and compilation:
		// compiling the patterns took 9 s (far more with -race).
		compileDeadline = 3 * time.Minute
		// validateDeadline is when the child is killed, once compiled.
		validateDeadline = 50 * worstCaseBound
	)
	for _, wc := range worstCases() {
		t.Run(wc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestValidateWorstCaseBounded$", "-test.count=1")
			cmd.Env = append(os.Environ(), worstCaseEnv+"="+wc.name)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := make(chan string)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					lines <- sc.Text()
				}
			}()
			defer func() {
				cmd.Process.Kill() // the child that this test started
				for range lines {
				}
				cmd.Wait()
			}()
			timeout := time.After(compileDeadline)
			var log []string // what the child said
			compiled := false
			for {
				var line string
				select {
				case <-timeout:
					if compiled {
						t.Fatalf("Validate did not return within %v (the child was killed), want within %v", validateDeadline, worstCaseBound)
					}
					t.Fatalf("the child did not compile within %v (it was killed): it said %q", compileDeadline, log)
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("the child ended without validating: it said %q", log)
					}
					line = l
				}
				log = append(log, line)
				if rest, ok := strings.CutPrefix(line, "compiled in "); ok {
					t.Logf("Compile took %s", rest)
					compiled = true
					timeout = time.After(validateDeadline)
				} else if rest, ok := strings.CutPrefix(line, "validated in "); ok {
					d, err := time.ParseDuration(rest)
					if err != nil {
						t.Fatal(err)
					}
					if d > worstCaseBound {
						t.Errorf("Validate took %v, want at most %v", d, worstCaseBound)
					}
					return
				}
			}
		})
	}
}

// worstCaseChild is TestValidateWorstCaseBounded in the child process: it
// compiles and validates the worst case name, saying how long each took.
func worstCaseChild(t *testing.T, name string) {
	for _, wc := range worstCases() {
		if wc.name != name {
			continue
		}
		start := time.Now()
		s, err := attrschema.Compile(schemaField, []byte(wc.schema))
		if err != nil {
			fmt.Printf("compile: %v\n", err)
			t.Fatal(err)
		}
		fmt.Printf("compiled in %v\n", time.Since(start))
		start = time.Now()
		_ = s.Validate(attrsField, []byte(wc.attrs))
		fmt.Printf("validated in %v\n", time.Since(start))
		return
	}
	t.Fatalf("no worst case %q", name)
}

// BenchmarkValidateWorstCase measures Validate of the worst cases that
// the bounds let through.
func BenchmarkValidateWorstCase(b *testing.B) {
	for _, wc := range worstCases() {
		b.Run(wc.name, func(b *testing.B) {
			s, err := attrschema.Compile(schemaField, []byte(wc.schema))
			if err != nil {
				b.Fatal(err)
			}
			attrs := []byte(wc.attrs)
			for b.Loop() {
				_ = s.Validate(attrsField, attrs)
			}
		})
	}
}
