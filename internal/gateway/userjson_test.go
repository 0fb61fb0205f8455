package gateway

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	usersv2 "github.com/usersd/usersd/api/users/v2"
)

// muxJSON are the marshaler's options (NewHandler's).
var muxJSON = protojson.MarshalOptions{EmitUnpopulated: true}

// checkUserJSON fails the test unless userJSON writes u as the mux's
// marshaler does, or declines it; it returns whether it wrote it. Written,
// u's JSON must be protojson's byte for byte once protojson's random
// spaces are gone (json.Compact), and decode to the same value.
func checkUserJSON(t *testing.T, u *usersv2.User) bool {
	t.Helper()
	got, ok := (&userJSON{}).append([]byte("prefix"), u)
	if !ok {
		return false
	}
	if !bytes.HasPrefix(got, []byte("prefix")) {
		t.Fatalf("append(%v) lost what dst held: %q", u, got)
	}
	got = got[len("prefix"):]
	want, err := muxJSON.Marshal(u)
	if err != nil {
		t.Fatalf("userJSON writes %v, which protojson refuses: %v\n%s", u, err, got)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, want); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, compact.Bytes()) {
		t.Fatalf("userJSON and protojson differ on %v:\n got %s\nwant %s", u, got, compact.Bytes())
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("userJSON wrote no JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("userJSON and protojson decode differently:\n got %v\nwant %v", g, w)
	}
	return true
}

// TestUserJSONUsable: userJSON knows every field of usersv2.User, and
// writes the export's lines with the mux's options; a field added to the
// message fails this test until userJSON writes it too.
func TestUserJSONUsable(t *testing.T) {
	if !userJSONUsable {
		t.Fatal("userJSON does not know every field of users.v2.User (userFields): every export line is protojson's")
	}
	if newUserJSON(muxJSON) == nil {
		t.Error("newUserJSON(the mux's options) = nil")
	}
	for _, opts := range []protojson.MarshalOptions{
		{}, {EmitUnpopulated: true, UseProtoNames: true}, {EmitUnpopulated: true, UseEnumNumbers: true},
		{EmitUnpopulated: true, Multiline: true}, {EmitUnpopulated: true, Indent: " "}, {EmitDefaultValues: true},
	} {
		if newUserJSON(opts) != nil {
			t.Errorf("newUserJSON(%+v) writes, but not as those options do", opts)
		}
	}
}

// mustStruct returns the Struct of the JSON object s.
func mustStruct(t *testing.T, s string) *structpb.Struct {
	t.Helper()
	st := &structpb.Struct{}
	if err := protojson.Unmarshal([]byte(s), st); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return st
}

// allControls is every character below U+0020, and the others protojson
// leaves as they are while other encoders escape them.
var allControls = func() string {
	var b strings.Builder
	for c := range 0x20 {
		b.WriteByte(byte(c))
	}
	return b.String() + "\"\\/<>&'\u007f\u0085\u2028\u2029\ufffd"
}()

// TestUserJSON compares userJSON and protojson on users chosen for their
// edges: no fields, every field, text to escape, unusual times, every
// kind of Value and numbers of every magnitude; and checks what userJSON
// declines, all of which protojson refuses or writes otherwise.
func TestUserJSON(t *testing.T) {
	ts := func(secs int64, nanos int32) *timestamppb.Timestamp {
		return &timestamppb.Timestamp{Seconds: secs, Nanos: nanos}
	}
	now := timestamppb.New(time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC))
	full := &usersv2.User{
		Name: "tenants/acme/users/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Email: "zoë@example.com", DisplayName: "Zoë <Ångström> & co",
		State: usersv2.User_STATE_SUSPENDED, Labels: map[string]string{"team": "core", "b": "", "a": "x\ny", "é": "ü"},
		CreateTime: now, UpdateTime: now, DeleteTime: ts(1, 1), Etag: "0123456789abcdef",
		ExternalId: "hr-1", GivenName: "Zoë", FamilyName: "Ångström-Nuñez", PhoneNumber: "+14155550100",
		EmailVerified: true, PhoneVerified: true, Locale: "en-GB", TimeZone: "Europe/London",
		Attributes: mustStruct(t, `{"department":"R&D <b>","level":3,"remote":true,"none":null,"list":[1,"a",[],{}],"nested":{"z":{"y":[false]}}}`),
	}
	written := []*usersv2.User{
		{},
		full,
		{Name: allControls, Email: allControls, Labels: map[string]string{allControls: allControls}, Etag: "🎉日本語"},
		{State: usersv2.User_STATE_ACTIVE, Labels: map[string]string{}, Attributes: &structpb.Struct{}},
		{State: usersv2.User_STATE_DELETED, CreateTime: ts(0, 0), UpdateTime: ts(0, 1000), DeleteTime: ts(0, 1_000_000)},
		{CreateTime: ts(minTimestampSeconds, 0), UpdateTime: ts(maxTimestampSeconds, 999_999_999), DeleteTime: ts(-1, 999_999_999)},
		{CreateTime: ts(1e9, 100), UpdateTime: ts(1e9, 120_000), DeleteTime: ts(1e9, 100_000_000)},
		{Attributes: mustStruct(t, `{"n":[0,-0,1,-1,0.1,1.5,100,1e20,1e21,-1e21,1e22,123456789012345678901234,1e-6,9.99e-7,1e-7,-1e-7,5e-324,`+
			`1.7976931348623157e308,12345678901234567890,3.141592653589793,2.5e-10,1e100,0.000001234]}`)},
		{Attributes: mustStruct(t, `{"k":"\u0000\u001f\"\\<>&\u2028","\u00e9":"\ud83c\udf89","":""}`)},
	}
	for _, u := range written {
		if !checkUserJSON(t, u) {
			t.Errorf("userJSON declines %v", u)
		}
	}

	// Declined: protojson refuses each, or writes it its own way.
	nan := structpb.NewNumberValue(math.NaN())
	declined := map[string]*usersv2.User{
		"text not UTF-8":         {DisplayName: "a\xffb"},
		"label key not UTF-8":    {Labels: map[string]string{"\xc3": "x"}},
		"label value not UTF-8":  {Labels: map[string]string{"k": "\xe2\x82"}},
		"attribute not UTF-8":    {Attributes: &structpb.Struct{Fields: map[string]*structpb.Value{"k": structpb.NewStringValue("\xff")}}},
		"an enum without a name": {State: usersv2.User_State(7)},
		"a negative enum":        {State: usersv2.User_State(-1)},
		"before year 1":          {CreateTime: ts(minTimestampSeconds-1, 0)},
		"after year 9999":        {UpdateTime: ts(maxTimestampSeconds+1, 0)},
		"negative nanos":         {DeleteTime: ts(0, -1)},
		"a second of nanos":      {DeleteTime: ts(0, 1e9)},
		"NaN":                    {Attributes: &structpb.Struct{Fields: map[string]*structpb.Value{"n": nan}}},
		"infinity":               {Attributes: &structpb.Struct{Fields: map[string]*structpb.Value{"n": structpb.NewNumberValue(math.Inf(-1))}}},
		"a nil Value":            {Attributes: &structpb.Struct{Fields: map[string]*structpb.Value{"n": nil}}},
		"a Value of no kind":     {Attributes: &structpb.Struct{Fields: map[string]*structpb.Value{"n": {}}}},
		"a nil Struct Value":     {Attributes: &structpb.Struct{Fields: map[string]*structpb.Value{"n": {Kind: &structpb.Value_StructValue{}}}}},
		"a nil List Value":       {Attributes: &structpb.Struct{Fields: map[string]*structpb.Value{"n": {Kind: &structpb.Value_ListValue{}}}}},
		"a NaN in a list":        {Attributes: &structpb.Struct{Fields: map[string]*structpb.Value{"n": structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{nan}})}}},
	}
	for name, u := range declined {
		if checkUserJSON(t, u) {
			t.Errorf("%s: userJSON writes %v", name, u)
		}
	}
}

// TestUserJSONRandom compares userJSON and protojson on random users:
// text drawn from characters that JSON encoders treat differently,
// random labels, times and attributes of random shapes.
func TestUserJSONRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	runes := []rune("aZ09 -_.@+/\\\"'<>&\u0000\u0001\b\t\n\f\r\u001f\u007f\u0085\u00e9\u00fc\u2028\u2029\ufffd日本🎉")
	text := func() string {
		var b strings.Builder
		for range r.IntN(12) {
			b.WriteRune(runes[r.IntN(len(runes))])
		}
		return b.String()
	}
	var value func(depth int) *structpb.Value
	object := func(depth int) *structpb.Struct {
		st := &structpb.Struct{Fields: map[string]*structpb.Value{}}
		for range r.IntN(5) {
			st.Fields[text()] = value(depth + 1)
		}
		return st
	}
	value = func(depth int) *structpb.Value {
		switch k := r.IntN(9); {
		case k == 0 && depth < 8:
			return structpb.NewStructValue(object(depth))
		case k == 1 && depth < 8:
			l := &structpb.ListValue{}
			for range r.IntN(4) {
				l.Values = append(l.Values, value(depth+1))
			}
			return structpb.NewListValue(l)
		case k == 2:
			return structpb.NewStringValue(text())
		case k == 3:
			return structpb.NewBoolValue(r.IntN(2) == 0)
		case k == 4:
			return structpb.NewNullValue()
		case k == 5:
			return structpb.NewNumberValue(float64(r.Int64N(1<<53) - 1<<52))
		case k == 6:
			return structpb.NewNumberValue(math.Float64frombits(r.Uint64()) / 1e300 * 1e300)
		}
		return structpb.NewNumberValue((r.Float64() - 0.5) * math.Pow(10, float64(r.IntN(60)-30)))
	}
	timestamp := func() *timestamppb.Timestamp {
		if r.IntN(4) == 0 {
			return nil
		}
		nanos := []int32{0, int32(r.IntN(1000)) * 1e6, int32(r.IntN(1e6)) * 1e3, int32(r.IntN(1e9))}[r.IntN(4)]
		return &timestamppb.Timestamp{Seconds: r.Int64N(maxTimestampSeconds-minTimestampSeconds) + minTimestampSeconds, Nanos: nanos}
	}
	wrote := 0
	const n = 5000
	for range n {
		u := &usersv2.User{
			Name: text(), Email: text(), DisplayName: text(), State: usersv2.User_State(r.IntN(4)),
			CreateTime: timestamp(), UpdateTime: timestamp(), DeleteTime: timestamp(), Etag: text(),
			ExternalId: text(), GivenName: text(), FamilyName: text(), PhoneNumber: text(),
			EmailVerified: r.IntN(2) == 0, PhoneVerified: r.IntN(2) == 0, Locale: text(), TimeZone: text(),
		}
		if r.IntN(2) == 0 {
			u.Labels = map[string]string{}
			for range r.IntN(5) {
				u.Labels[text()] = text()
			}
		}
		if r.IntN(4) != 0 {
			u.Attributes = object(1)
		}
		if checkUserJSON(t, u) {
			wrote++
		}
	}
	// A NaN or an infinity among the attributes is declined, and nothing
	// else.
	t.Logf("userJSON wrote %d of %d random users", wrote, n)
	if wrote < n*9/10 {
		t.Errorf("userJSON wrote %d of %d random users, want almost all", wrote, n)
	}
}

// FuzzUserJSON: whatever user userJSON writes, it writes as protojson.
func FuzzUserJSON(f *testing.F) {
	f.Add("tenants/acme/users/1", "zoë@example.com", "k", "v", `{"a":[1,"<&>",null,{"b":true}]}`, int64(1767323045), int32(123456000), int32(1))
	f.Add("\u2028\x00\"\\", "\xff", "", "\t", `{"n":1e-7,"m":1e21,"e":""}`, int64(-62135596800), int32(0), int32(3))
	f.Fuzz(func(t *testing.T, name, email, key, value, attrs string, secs int64, nanos, state int32) {
		u := &usersv2.User{
			Name: name, Email: email, DisplayName: value, State: usersv2.User_State(state), Labels: map[string]string{key: value},
			CreateTime: &timestamppb.Timestamp{Seconds: secs, Nanos: nanos}, GivenName: key,
		}
		st := &structpb.Struct{}
		if protojson.Unmarshal([]byte(attrs), st) == nil {
			u.Attributes = st
		}
		checkUserJSON(t, u)
	})
}
