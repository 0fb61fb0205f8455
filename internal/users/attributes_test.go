package users_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/usersd/usersd/internal/users"
)

const attrField = "user.attributes"

func TestNormalizeAttributes(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
	}{
		{"sorted and compact", ` { "b" : [ 1 , 2 ] , "a" : { "z" : true , "y" : null } } `, `{"a":{"y":null,"z":true},"b":[1,2]}`},
		{"empty object is none", ` { } `, ``},
		{"big integer kept", `{"n":12345678901234567890}`, `{"n":12345678901234567890}`},
		{"numbers as Postgres prints them", `{"a":1.0,"b":-0,"c":1E+2,"d":0.1e-5,"e":123456789012345678901234567890.123456789}`, `{"a":1.0,"b":0,"c":100,"d":0.000001,"e":123456789012345678901234567890.123456789}`},
		{"escapes as encoding/json", `{"h":"<a&b>","u":"\u00e9\u2028","s":"a\/b","t":"x\ty\n"}`, `{"h":"\u003ca\u0026b\u003e","s":"a/b","t":"x\ty\n","u":"é\u2028"}`},
		{"surrogate pair", `{"e":"\ud83d\ude00"}`, `{"e":"😀"}`},
		{"replacement character as such", `{"r":"\ufffd�"}`, `{"r":"��"}`},
		{"nested arrays", `{"a":[[],[[1]],{"b":[]}],"c":[{}]}`, `{"a":[[],[[1]],{"b":[]}],"c":[{}]}`},
		{"unicode key", `{"ключ":1,"a/b~c":2}`, `{"a/b~c":2,"ключ":1}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := users.NormalizeAttributes(attrField, []byte(tt.in))
			if err != nil {
				t.Fatalf("NormalizeAttributes(%s): %v", tt.in, err)
			}
			if string(got) != tt.want {
				t.Errorf("NormalizeAttributes(%s) = %s, want %s", tt.in, got, tt.want)
			}
			again, err := users.NormalizeAttributes(attrField, got)
			if err != nil || string(again) != string(got) {
				t.Errorf("NormalizeAttributes(%s) = %s, %v; want it unchanged", got, again, err)
			}
		})
	}
}

func TestNormalizeAttributesNone(t *testing.T) {
	for _, in := range []string{"", " \n", "null", " null\n"} {
		got, err := users.NormalizeAttributes(attrField, []byte(in))
		if got != nil || err != nil {
			t.Errorf("NormalizeAttributes(%q) = %q, %v; want nil, nil", in, got, err)
		}
	}
	if got, err := users.NormalizeAttributes(attrField, nil); got != nil || err != nil {
		t.Errorf("NormalizeAttributes(nil) = %q, %v; want nil, nil", got, err)
	}
}

func TestNormalizeAttributesRefused(t *testing.T) {
	deep := func(n int) string {
		return "{" + strings.Repeat(`"a":{`, n-1) + strings.Repeat("}", n)
	}
	deepArray := func(n int) string {
		return `{"a":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + "}"
	}
	// {"k":"xxx…"} of exactly n bytes.
	sized := func(n int) string { return `{"k":"` + strings.Repeat("x", n-8) + `"}` }
	for _, tt := range []struct {
		name, in, want string
	}{
		{"not JSON", `{"a":}`, "not valid JSON: invalid character '}' looking for beginning of value (near byte 5)"},
		{"truncated", `{"a":[1,`, "not valid JSON: unexpected end of input"},
		{"garbage", `hello`, "not valid JSON: invalid character 'h' looking for beginning of value (near byte 1)"},
		{"array", `[1,2]`, "not a JSON object but an array"},
		{"string", `"x"`, "not a JSON object but a string"},
		{"number", `12`, "not a JSON object but a number"},
		{"boolean", `true`, "not a JSON object but a boolean"},
		{"trailing object", `{} {}`, "data after the JSON object (at byte 3)"},
		{"trailing garbage", "{\"a\":1}\n x", "data after the JSON object (at byte 9)"},
		{"trailing null", `{}null`, "data after the JSON object (at byte 2)"},
		{"too large", sized(users.MaxAttributesBytes + 1), "more than 16384 bytes as compact JSON"},
		{"too large once escaped", `{"k":"` + strings.Repeat("<", users.MaxAttributesBytes/6+1) + `"}`, "more than 16384 bytes as compact JSON"},
		{"too deep", deep(users.MaxAttributesDepth + 1), "nested more than 16 levels deep at /a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a"},
		{"too deep array", deepArray(users.MaxAttributesDepth + 1), "nested more than 16 levels deep at /a/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0"},
		{"empty key", `{"a":{"":1}}`, "empty key in the object at /a"},
		{"long key", `{"` + strings.Repeat("k", users.MaxAttributeKeyLen+1) + `":1}`, `key "` + strings.Repeat("k", 64) + `…" in the object at /: longer than 256 bytes`},
		{"NUL in key", `{"a\u0000":1}`, `key "a\x00" in the object at /: control character U+0000 at byte 1: control characters, tabs and line breaks included, are not allowed`},
		{"newline in key", `{"x":{"a\nb":1}}`, `key "a\nb" in the object at /x: control character U+000A at byte 1: control characters, tabs and line breaks included, are not allowed`},
		{"NUL in string", `{"a":["x","y\u0000"]}`, "string at /a/1 contains U+0000, which cannot be stored"},
		{"lone high surrogate", `{"a":"x\ud800y"}`, `string at /a has an unpaired UTF-16 surrogate escape (\uD800 to \uDFFF)`},
		{"lone low surrogate", `{"a":["\uDC00"]}`, `string at /a/0 has an unpaired UTF-16 surrogate escape (\uD800 to \uDFFF)`},
		{"reversed surrogates", `{"a":"\ude00\ud83d"}`, `string at /a has an unpaired UTF-16 surrogate escape (\uD800 to \uDFFF)`},
		{"lone surrogate in key", `{"\ud800":1}`, "key \"\ufffd\" in the object at /: has an unpaired UTF-16 surrogate escape (\\uD800 to \\uDFFF)"},
		{"invalid UTF-8", "{\"a\":\"\xff\"}", "not valid UTF-8 (at byte 6)"},
		{"duplicate key", `{"a":1,"b":{"c":1,"c":2}}`, `duplicate key "c" in the object at /b`},
		{"duplicate key after a container", `{"a":[1],"a":2}`, `duplicate key "a" in the object at /`},
		{"pointer escapes", `{"a/b":{"~":{"":0}}}`, "empty key in the object at /a~1b/~0"},
		{"huge exponent", `{"n":1e1001}`, "number at /n: exponent 1001 is beyond ±1000"},
		{"beyond a double", `{"n":1e400}`, "number at /n: beyond ±1.8e+308, the range of a double"},
		{"negative beyond a double", `{"a":{"n":-2.5e308}}`, "number at /a/n: beyond ±1.8e+308, the range of a double"},
		{"integer beyond a double", `{"n":1` + strings.Repeat("0", 400) + `}`, "number at /n: beyond ±1.8e+308, the range of a double"},
		{"huge negative exponent", `{"n":[1E-99999999999999999999]}`, "number at /n/0: exponent -99999999999999999999 is beyond ±1000"},
		{"huge scale", `{"n":0.` + strings.Repeat("1", 16000) + `e-1000}`, "number at /n: 17000 digits after the decimal point, more than 16383"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := users.NormalizeAttributes(attrField, []byte(tt.in))
			if err == nil {
				t.Fatalf("NormalizeAttributes(%.80s) = %.80s, want an error", tt.in, got)
			}
			var ie *users.InvalidError
			if !errors.As(err, &ie) || !errors.Is(err, users.ErrInvalid) {
				t.Fatalf("NormalizeAttributes(%.80s): %T %v, want an *InvalidError", tt.in, err, err)
			}
			if len(ie.Violations) != 1 || ie.Violations[0].Field != attrField {
				t.Fatalf("NormalizeAttributes(%.80s): violations %+v, want one of %s", tt.in, ie.Violations, attrField)
			}
			if d := ie.Violations[0].Description; d != tt.want {
				t.Errorf("NormalizeAttributes(%.80s): description\n%q, want\n%q", tt.in, d, tt.want)
			}
		})
	}
}

func TestNormalizeAttributesBounds(t *testing.T) {
	// At the bounds, exactly: accepted.
	exact := `{"k":"` + strings.Repeat("x", users.MaxAttributesBytes-8) + `"}`
	deep := "{" + strings.Repeat(`"a":{`, users.MaxAttributesDepth-1) + strings.Repeat("}", users.MaxAttributesDepth)
	key := `{"` + strings.Repeat("k", users.MaxAttributeKeyLen) + `":1}`
	// White space does not count: only the compact encoding is bounded.
	spaced := strings.Replace(exact, `:`, strings.Repeat(" ", 4*users.MaxAttributesBytes)+":", 1)
	for name, in := range map[string]string{"size": exact, "depth": deep, "key": key, "white space": spaced} {
		got, err := users.NormalizeAttributes(attrField, []byte(in))
		if err != nil {
			t.Errorf("%s: NormalizeAttributes: %v", name, err)
		} else if len(got) > users.MaxAttributesBytes {
			t.Errorf("%s: %d bytes", name, len(got))
		}
	}
	if got, _ := users.NormalizeAttributes(attrField, []byte(spaced)); len(got) != users.MaxAttributesBytes {
		t.Errorf("white space: %d bytes, want %d", len(got), users.MaxAttributesBytes)
	}
	// Huge nesting is refused at the bound, without reading the rest.
	huge := strings.Repeat(`{"a":`, 1_000_000)
	if _, err := users.NormalizeAttributes(attrField, []byte(huge)); err == nil || !strings.Contains(err.Error(), "nested more than 16 levels") {
		t.Errorf("a million levels: %v", err)
	}
	// Numbers at the bounds: of a double (the v2 API's Struct) above, of
	// Postgres numeric below (a double reads 1e-1000 as 0).
	for _, in := range []string{`{"n":1e308}`, `{"n":1e-1000}`, `{"n":-1.5E+308}`, `{"n":179769313486231570000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000}`} {
		if _, err := users.NormalizeAttributes(attrField, []byte(in)); err != nil {
			t.Errorf("NormalizeAttributes(%s): %v", in, err)
		}
	}
}

func TestNormalizeAttributesField(t *testing.T) {
	_, err := users.NormalizeAttributes("users[3].attributes", []byte(`[]`))
	var ie *users.InvalidError
	if !errors.As(err, &ie) || ie.Violations[0].Field != "users[3].attributes" {
		t.Fatalf("err = %v, want a violation of users[3].attributes", err)
	}
	if want := "invalid argument: users[3].attributes: not a JSON object but an array"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
}
