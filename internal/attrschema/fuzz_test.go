package attrschema_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/usersd/usersd/internal/attrschema"
	"github.com/usersd/usersd/internal/users"
)

// fuzzSchema uses most kinds of keyword. It holds no reference, as no
// schema may: the recursive "tree" is written out four levels deep.
const fuzzSchema = `{
	"type": "object",
	"required": ["id"],
	"properties": {
		"id": {"anyOf": [{"type": "string", "pattern": "^[a-z]+$"}, {"type": "integer", "minimum": 0}]},
		"n": {"type": "number", "maximum": 12345678901234567890, "multipleOf": 0.5},
		"tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "uniqueItems": true, "maxItems": 4},
		"pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}], "items": false},
		"address": {
			"type": "object",
			"required": ["city"],
			"properties": {"zip": {"type": "string", "pattern": "^[0-9]{5}$"}, "city": {"type": "string", "minLength": 1}},
			"unevaluatedProperties": false
		},
		"kind": {"enum": ["a", "b", 1, null, {"$ref": "#"}]},
		"tree": {"type": "object", "properties": {"children": {"type": "array", "items":
			{"type": "object", "properties": {"children": {"type": "array", "items":
				{"type": "object", "properties": {"children": {"type": "array", "items":
					{"type": "object", "properties": {"children": {"type": "array", "maxItems": 0}}}
				}}}
			}}}
		}}},
		"a/b~c": {"const": {"x": [1, 2]}}
	},
	"patternProperties": {"^x-": {"type": "string"}},
	"additionalProperties": {"not": {"type": "null"}},
	"dependentRequired": {"n": ["tags"]},
	"if": {"properties": {"kind": {"const": "a"}}},
	"then": {"required": ["address"]}
}`

func FuzzValidate(f *testing.F) {
	s, err := attrschema.Compile(schemaField, []byte(fuzzSchema))
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		``, `null`, `{}`, `[]`, `7`, `{"id":"abc"}`, `{"id":-1,"n":12345678901234567890.5}`,
		`{"id":"x","tags":["a","a","bbbbbbbbbb"],"n":1}`, `{"id":1,"pair":["a",true,3]}`,
		`{"id":1,"kind":"a","address":{"zip":"1","extra":1}}`, `{"id":1,"x-a":1,"other":null}`,
		`{"id":1,"tree":{"children":[{"children":[{"children":[1]}]}]}}`, `{"id":1,"a/b~c":{"x":[1,2.0]}}`,
		`{"id":1,"tree":{"children":[{"children":[{"children":[{"children":[{}]}]}]}]}}`, `{"id":1,"kind":{"$ref":"#"}}`,
		`{"id":`, `{"id":1} x`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, attrs []byte) {
		err := s.Validate(attrsField, attrs)
		// What normalizes validates alike.
		if norm, nerr := users.NormalizeAttributes(attrsField, attrs); nerr == nil {
			if nerr := s.Validate(attrsField, norm); (nerr == nil) != (err == nil) {
				t.Fatalf("Validate(%q) = %v but Validate(%q) = %v", attrs, err, norm, nerr)
			}
		}
		if err == nil {
			return
		}
		var ie *users.InvalidError
		if !errors.As(err, &ie) {
			t.Fatalf("Validate(%q): %T %v, want an *users.InvalidError", attrs, err, err)
		}
		if n := len(ie.Violations); n == 0 || n > 20 {
			t.Fatalf("Validate(%q): %d violations", attrs, n)
		}
		for _, v := range ie.Violations {
			if !strings.HasPrefix(v.Field, attrsField) || v.Description == "" {
				t.Fatalf("Validate(%q): violation %+v", attrs, v)
			}
			if rest := v.Field[len(attrsField):]; rest != "" && rest[0] != '/' {
				t.Fatalf("Validate(%q): violation %+v: not a JSON pointer after the field", attrs, v)
			}
		}
	})
}

func FuzzCompile(f *testing.F) {
	for _, seed := range []string{
		``, `true`, `{}`, `{"type":"object"}`, fuzzSchema,
		`{"type":"object","$ref":"#"}`, `{"type":"object","$ref":"https://schemas.example/a"}`,
		`{"type":"object","$id":"https://schemas.example/","$defs":{"a":{"$id":"a","$anchor":"x"}},"$ref":"a#x"}`,
		`{"type":"object","$dynamicAnchor":"n","properties":{"c":{"$dynamicRef":"#n"}}}`,
		`{"type":"object","patternProperties":{"[":{}}}`, `{"type":"object","$schema":"http://json-schema.org/draft-07/schema#"}`,
		`{"type":"object","$recursiveRef":"#"}`, `{"type":"object","properties":{"a":{"const":{"$ref":"#"},"examples":[{"$ref":"x"}]}}}`,
		`{"type":"object","properties":{"a":{"$ref":"#/$defs/d0"}},"$defs":{"d0":{"anyOf":[{"$ref":"#/$defs/d1"},{"$ref":"#/$defs/d1"}]},"d1":{"type":"string"}}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, schema []byte) {
		s, err := attrschema.Compile(schemaField, schema)
		if err != nil {
			var ie *users.InvalidError
			if !errors.As(err, &ie) || len(ie.Violations) != 1 || ie.Violations[0].Field != schemaField || ie.Violations[0].Description == "" {
				t.Fatalf("Compile(%q): %T %v, want one violation of %s", schema, err, err, schemaField)
			}
			return
		}
		for _, attrs := range []string{`{}`, `{"a":[1,"x",{"b":null}],"c":1.5}`} {
			if err := s.Validate(attrsField, []byte(attrs)); err != nil {
				var ie *users.InvalidError
				if !errors.As(err, &ie) {
					t.Fatalf("Compile(%q).Validate(%s): %T %v", schema, attrs, err, err)
				}
			}
		}
	})
}
