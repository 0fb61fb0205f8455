package users_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/usersd/usersd/internal/users"
)

func FuzzNormalizeAttributes(f *testing.F) {
	for _, seed := range []string{
		``, `null`, `{}`, `[]`, `"x"`, `{"a":1}`, `{"b":[1,{"c":null}],"a":"<&>"}`,
		`{"n":12345678901234567890,"f":1.50e+10,"z":-0}`,
		`{"a":"\ud83d\ude00","b":"\ud800","c":"\u0000"}`,
		`{"a":1,"a":2}`, `{"":1}`, `{"a":{"b":{"c":{"d":[[[[[[[[[[[[[[]]]]]]]]]]]]]]}}}}`,
		"{\"a\":\"\xff\"}", `{} x`, `{"k\n":1}`, `{"n":1e1001}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, err := users.NormalizeAttributes(attrField, raw)
		if err != nil {
			var ie *users.InvalidError
			if !errors.As(err, &ie) || len(ie.Violations) == 0 {
				t.Fatalf("NormalizeAttributes(%q): %T %v, want an *InvalidError", raw, err, err)
			}
			for _, v := range ie.Violations {
				if v.Field != attrField || v.Description == "" {
					t.Fatalf("NormalizeAttributes(%q): violation %+v", raw, v)
				}
			}
			return
		}
		if out == nil {
			// None: nothing, null, or an empty object.
			var obj map[string]any
			if trimmed := bytes.TrimSpace(raw); len(trimmed) != 0 && string(trimmed) != "null" &&
				(json.Unmarshal(trimmed, &obj) != nil || len(obj) != 0) {
				t.Fatalf("NormalizeAttributes(%q) = nil", raw)
			}
			return
		}
		if !json.Valid(raw) {
			t.Fatalf("NormalizeAttributes(%q) accepted input that is not JSON", raw)
		}
		if !json.Valid(out) {
			t.Fatalf("NormalizeAttributes(%q) = %q, not JSON", raw, out)
		}
		if len(out) == 0 || out[0] != '{' {
			t.Fatalf("NormalizeAttributes(%q) = %q, not an object", raw, out)
		}
		if len(out) > users.MaxAttributesBytes {
			t.Fatalf("NormalizeAttributes(%q) = %d bytes", raw, len(out))
		}
		// An object, whose numbers may exceed float64 (1e400).
		dec := json.NewDecoder(bytes.NewReader(out))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil || m == nil {
			t.Fatalf("NormalizeAttributes(%q) = %q: %v", raw, out, err)
		}
		again, err := users.NormalizeAttributes(attrField, out)
		if err != nil {
			t.Fatalf("NormalizeAttributes(%q) = %q, which is refused: %v", raw, out, err)
		}
		if !bytes.Equal(again, out) {
			t.Fatalf("NormalizeAttributes(%q) = %q, which normalizes to %q", raw, out, again)
		}
	})
}
