package users

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// checkFast fails the test when NormalizeAttributes' fast path accepts raw
// and the general path does not return the same bytes; it returns whether
// the fast path took raw.
func checkFast(t *testing.T, raw []byte) bool {
	t.Helper()
	if t := bytes.TrimSpace(raw); len(t) == 0 || string(t) == "null" || !utf8.Valid(raw) {
		return false // NormalizeAttributes answers before either path
	}
	fast, ok := normalizeAttributesFast(raw)
	if !ok {
		return false
	}
	slow, err := normalizeAttributesSlow(attrTestField, raw)
	if err != nil || !bytes.Equal(fast, slow) {
		t.Fatalf("input %.500q:\nfast path %.500q\ngeneral   %.500q, %v", raw, fast, slow, err)
	}
	return true
}

const attrTestField = "attributes"

// TestNormalizeAttributesFast: the fast path takes what the stores hand
// back (canonical attributes without escapes, and Postgres's jsonb
// spelling of them), returning what the general path returns, and leaves
// every problem and every escape to the general path.
func TestNormalizeAttributesFast(t *testing.T) {
	taken := []string{
		`{"department":"Sales","level":3,"remote":true}`,
		`{"level": 3, "remote": true, "department": "Sales"}`, // jsonb
		`{"x": [1, 2.50, {"a": "é` + "\u2028" + `", "b": null}], "level": 3, "department": "R&D <b>"}`,
		`{"k": 0.0010, "m": 0, "n": 100, "big": 12345678901234567890}`,
		`{"n":1e2,"m":-0,"k":1.0e-3,"f":-0.0,"g":2.5E+3,"h":1e-7,"i":-12.5e1}`,
		`{}`, ` { } `, `{"a":{}}`, `{"a":[]}`, `{"a":[[],{},[{}]]}`,
		"\t{\r\n\"b\" :\n1 ,\"a\": [ true ,false,null ] }\n",
		`{"é":1,"e":2,"z":3,"Z":4,"<":5,"&":6,"a b":7}`,
		"{\"del\":\"\x7f\",\"c1\":\"\u0085\",\"sep\":\"\u2029\"}",
		`{"a":"<&>","b":"` + "\u2028\u2029" + `"}`,
		deepAttrs(MaxAttributesDepth),
		`{"blob":"` + strings.Repeat("x", MaxAttributesBytes-11) + `"}`, // the most
	}
	for _, raw := range taken {
		if !checkFast(t, []byte(raw)) {
			t.Errorf("the fast path leaves %.200q to the general path", raw)
		}
	}
	left := []string{
		`{"a":"\u00e9"}`, `{"a":"\"q\""}`, `{"\u0061":1}`, // escapes
		`{"a":1,"a":2}`, `{"b":1,"a":2,"b":3}`, // duplicates
		`{"":1}`, "{\"k\x7f\":1}", "{\"k\u0085\":1}", `{"` + strings.Repeat("k", MaxAttributeKeyLen+1) + `":1}`,
		deepAttrs(MaxAttributesDepth + 1), `{"a":` + strings.Repeat("[", MaxAttributesDepth) + strings.Repeat("]", MaxAttributesDepth) + `}`,
		`{"blob":"` + strings.Repeat("x", MaxAttributesBytes-10) + `"}`, // a byte too many
		`{"n":1e1001}`, `{"n":1e-20000}`, `{"n":01}`, `{"n":1.}`, `{"n":.5}`, `{"n":-}`, `{"n":1e}`, `{"n":+1}`,
		`{"a":tru}`, `{"a":nul}`, `{"a":1,}`, `{"a":1 "b":2}`, `{"a" 1}`, `{a:1}`, `{"a":1}}`, `{"a":1} x`,
		`{"a":[1,]}`, `{"a":[1 2]}`, `{"a":"x`, `{"a":1`, `[]`, `"x"`, `1`, "{\"a\":\"\t\"}",
	}
	for _, raw := range left {
		if checkFast(t, []byte(raw)) {
			t.Errorf("the fast path takes %.200q", raw)
		}
	}
}

// deepAttrs returns an object nested depth levels deep.
func deepAttrs(depth int) string {
	return strings.Repeat(`{"d":`, depth-1) + `{"leaf":1}` + strings.Repeat("}", depth-1)
}

// TestNormalizeAttributesFastRandom compares the two paths on random
// documents: random values, keys (some that JSON or Go escape, some not
// ASCII), strings with and without escapes, numbers in every spelling,
// white space, member order; a share of them with a problem.
func TestNormalizeAttributesFastRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 20_000
	if testing.Short() {
		n = 2000
	}
	took := 0
	for range n {
		var b strings.Builder
		randomDoc(r, &b, 1)
		if checkFast(t, []byte(b.String())) {
			took++
		}
	}
	t.Logf("the fast path took %d of %d documents", took, n)
	if took < n/4 {
		t.Errorf("the fast path took %d of %d documents, want a good share", took, n)
	}
}

var (
	randomKeys    = []string{"a", "b", "B", "ab", "é", "e", "<", "a&b", "k>", "\u2028", "日本", "z z", "\u0080k", "x\u007f", "a", ""}
	randomStrings = []string{"", "x", "Sales", "R&D <b>", "Zoë", "🎉", "\u2028\u2029", "\u007f\u0085", "a/b", `\u00e9`, `\"`, `\\`, `\n`, `\ud83c\udf89`, `\ud800`}
	randomNumbers = []string{"0", "-0", "1", "-17", "3.25", "1.0", "2.50", "1e2", "1E-2", "-2.5e+3", "12345678901234567890", "0.000001", "1e1000", "1e1001", "-0.0", "5e-324"}
)

// randomDoc writes a random object, at depth (the top is 1).
func randomDoc(r *rand.Rand, b *strings.Builder, depth int) {
	ws := func() {
		if r.IntN(4) == 0 {
			b.WriteString([]string{" ", "\n", "\t ", "\r\n"}[r.IntN(4)])
		}
	}
	b.WriteByte('{')
	ws()
	for i := range r.IntN(5) {
		if i > 0 {
			b.WriteByte(',')
			ws()
		}
		fmt.Fprintf(b, "%q", randomKeys[r.IntN(len(randomKeys))])
		ws()
		b.WriteByte(':')
		ws()
		randomValue(r, b, depth+1)
		ws()
	}
	b.WriteByte('}')
}

func randomValue(r *rand.Rand, b *strings.Builder, depth int) {
	switch k := r.IntN(9); {
	case k == 0 && depth < MaxAttributesDepth+2:
		randomDoc(r, b, depth)
	case k == 1 && depth < MaxAttributesDepth+2:
		b.WriteByte('[')
		for i := range r.IntN(4) {
			if i > 0 {
				b.WriteString(", ")
			}
			randomValue(r, b, depth+1)
		}
		b.WriteByte(']')
	case k <= 4:
		s := randomStrings[r.IntN(len(randomStrings))]
		b.WriteString(`"` + strings.ReplaceAll(s, `"`, `\"`) + `"`)
	case k <= 6:
		b.WriteString(randomNumbers[r.IntN(len(randomNumbers))])
	default:
		b.WriteString([]string{"true", "false", "null"}[r.IntN(3)])
	}
}

// FuzzNormalizeAttributesFast: whatever the fast path takes, the general
// path returns the same for.
func FuzzNormalizeAttributesFast(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"a":1}`, `{"b": [1, {"c": null}], "a": "<&>"}`, `{"n":12345678901234567890,"f":1.50e+10,"z":-0}`,
		`{"a":1,"a":2}`, `{"b":1,"a":1,"b":1}`, `{"":1}`, "{\"k\x7f\":1}", `{"n":1e1001}`, `{"a":"\u2028"}`,
		`{"level": 3, "remote": true, "department": "Sales"}`, deepAttrs(MaxAttributesDepth + 1),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkFast(t, raw) })
}
