package grpcserver

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/usersd/usersd/internal/users"
)

// checkStructFast fails the test when the fast path reads a and protojson
// does not read the same Struct; it returns whether the fast path read a.
func checkStructFast(t *testing.T, a []byte) bool {
	t.Helper()
	fast, ok := attributesStructFast(a)
	if !ok {
		return false
	}
	want := &structpb.Struct{}
	if err := protojson.Unmarshal(a, want); err != nil {
		t.Fatalf("the fast path reads %.300q, which protojson refuses: %v", a, err)
	}
	if !proto.Equal(fast, want) {
		t.Fatalf("%.300q:\nfast path %v\nprotojson %v", a, fast, want)
	}
	return true
}

// TestAttributesStructFast: the fast path reads stored attributes (the
// canonical JSON of users.NormalizeAttributes, escapes and all) into the
// Struct protojson reads, and leaves to protojson what it is not sure of.
func TestAttributesStructFast(t *testing.T) {
	for _, raw := range []string{
		`{"department":"Sales","level":3,"remote":true}`,
		`{"a":{"b":[1,2.50,{"c":null}],"d":{}},"e":[],"f":[[]],"g":false}`,
		`{"html":"<b>&amp;</b>","q":"say \"hi\" \\ back /","ctl":"\u0001\t\n","sep":"\u2028\u2029","é":"ü🎉日本語"}`,
		`{"n":[0,-0,1.0,2.50,12345678901234567890,3.141592653589793238462643383279,0.000001,1e-7,1E+21,-2.5e3,5e-324]}`,
		`{"blob":"` + strings.Repeat("abcdefghij", 1500) + `"}`,
		`{"deep":` + strings.Repeat(`{"d":`, users.MaxAttributesDepth-1) + `1` + strings.Repeat(`}`, users.MaxAttributesDepth-1) + `}`,
	} {
		a, err := users.NormalizeAttributes("attributes", []byte(raw))
		if err != nil {
			t.Fatalf("NormalizeAttributes(%.100s) err = %v", raw, err)
		}
		if !checkStructFast(t, a) {
			t.Errorf("the fast path leaves %.100q to protojson", a)
		}
	}
	for _, a := range []string{
		`{"n":1e400}`, `{"n":-1e400}`, `{"a":1,"a":2}`, `{"a":"\ud800"}`, `{"a":"\udc00\ud800"}`, `{"a":"\x"}`,
		"{\"a\":\"\xff\"}", `{"a":01}`, `{"a":1.}`, `{"a":tru}`, `{"a":1,}`, `{"a":1}x`, `[]`, `{"a"}`, `{"a":"x`,
		strings.Repeat(`{"d":`, maxStructDepth+1) + `1` + strings.Repeat(`}`, maxStructDepth+1),
	} {
		if checkStructFast(t, []byte(a)) {
			t.Errorf("the fast path reads %.100q", a)
		}
	}
}

// TestAttributesStructFastRandom compares the fast path and protojson on
// random attributes, normalized as the stores keep them.
func TestAttributesStructFastRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	keys := []string{"a", "b", "é", "<&>", "\u2028", "q\"", `b\s`, "k~", "日本", "x y"}
	strs := []string{"", "Sales", "R&D <b>", "Zoë", "🎉", "\u2028", "\u0001\t\n", `"\`, "\u007f\u0085", "\ufffd"}
	nums := []string{"0", "-1", "3.25", "1.0", "1e2", "2.5e-3", "12345678901234567890", "1e-7", "1e21", "-0"}
	var value func(b *strings.Builder, depth int)
	object := func(b *strings.Builder, depth int) {
		b.WriteByte('{')
		seen := map[string]bool{}
		for i := range r.IntN(5) {
			k := keys[r.IntN(len(keys))]
			if seen[k] {
				continue
			}
			seen[k] = true
			if i > 0 && len(seen) > 1 {
				b.WriteByte(',')
			}
			b.Write(append(jsonText(t, k), ':'))
			value(b, depth+1)
		}
		b.WriteByte('}')
	}
	value = func(b *strings.Builder, depth int) {
		switch k := r.IntN(8); {
		case k == 0 && depth < 6:
			object(b, depth)
		case k == 1 && depth < 6:
			b.WriteByte('[')
			for i := range r.IntN(4) {
				if i > 0 {
					b.WriteByte(',')
				}
				value(b, depth+1)
			}
			b.WriteByte(']')
		case k <= 4:
			b.Write(jsonText(t, strs[r.IntN(len(strs))]))
		case k <= 6:
			b.WriteString(nums[r.IntN(len(nums))])
		default:
			b.WriteString([]string{"true", "false", "null"}[r.IntN(3)])
		}
	}
	for range 5000 {
		var b strings.Builder
		object(&b, 1)
		a, err := users.NormalizeAttributes("attributes", []byte(b.String()))
		if err != nil {
			t.Fatalf("NormalizeAttributes(%s) err = %v", b.String(), err)
		}
		if a != nil && !checkStructFast(t, a) {
			t.Errorf("the fast path leaves %q to protojson", a)
		}
	}
}

// jsonText returns s as a JSON string.
func jsonText(t *testing.T, s string) []byte {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzAttributesStruct: whatever the fast path reads, protojson reads the
// same Struct from.
func FuzzAttributesStruct(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"a":1}`, `{"b":[1,{"c":null}],"a":"\u003c\u0026\u003e"}`, `{"n":12345678901234567890,"f":1.50e+10,"z":-0}`,
		`{"a":"\ud83d\ude00","b":"\ud800","c":"\u0000"}`, `{"a":1,"a":2}`, `{"n":1e400}`, ` { "a" : [ true , false ] } `,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, a []byte) { checkStructFast(t, a) })
}
