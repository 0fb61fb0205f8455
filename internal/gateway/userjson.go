package gateway

import (
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	usersv2 "github.com/usersd/usersd/api/users/v2"
)

// The JSON of an export's lines. protojson reads each message through
// reflection and writes it token by token: a third of an export's time.
// userJSON writes a users.v2 User as the mux's marshaler does
// (protojson.MarshalOptions{EmitUnpopulated: true}), appending bytes: the
// same members in the same order (every field, by number, under its JSON
// name; null for an unset message, {} for no labels), the same values
// (enums by name, timestamps in RFC 3339 with 0, 3, 6 or 9 fractional
// digits, Struct attributes as a JSON object with its keys in order,
// numbers as protojson formats a double) and the same escapes (", \ and
// control characters only: not <, > and &). It declines what it is not
// sure of (a value protojson refuses, such as text that is not UTF-8 or a
// timestamp out of range, an enum number without a name, a Value with no
// kind) and the caller marshals that user with protojson, which decides.
// protojson's output only differs by the spaces it adds at random to keep
// anyone from depending on its bytes (TestUserJSON compares the two).

// userFields are the JSON names of usersv2.User's fields in the order of
// their numbers, as userJSON writes them. userJSONUsable checks them
// against the message's descriptor.
var userFields = [...]string{
	"name", "email", "displayName", "state", "labels", "createTime", "updateTime", "deleteTime", "etag",
	"externalId", "givenName", "familyName", "phoneNumber", "emailVerified", "phoneVerified", "locale", "timeZone",
	"attributes",
}

// userJSONUsable reports whether userJSON knows every field of
// usersv2.User: a field added to the message and not to userJSON turns
// it off, and every line is protojson's.
var userJSONUsable = func() bool {
	fields := (&usersv2.User{}).ProtoReflect().Descriptor().Fields()
	if fields.Len() != len(userFields) {
		return false
	}
	for i, name := range userFields {
		if fd := fields.Get(i); fd.JSONName() != name || fd.Number() != protoreflect.FieldNumber(i+1) ||
			fd.HasPresence() && fd.Message() == nil || fd.ContainingOneof() != nil {
			return false
		}
	}
	return true
}()

// stateNames are the names of usersv2.User_State's values, by number.
var stateNames = func() []string {
	values := usersv2.User_STATE_UNSPECIFIED.Descriptor().Values()
	names := make([]string, 0, values.Len())
	for i := range values.Len() {
		v := values.Get(i)
		if int(v.Number()) != i {
			break // numbers with gaps: those after are protojson's
		}
		names = append(names, string(v.Name()))
	}
	return names
}()

// userJSON writes Users. Its zero value is ready; it is not safe for
// concurrent use.
type userJSON struct {
	// keys holds the keys of the maps being written, the innermost's last.
	keys []string
}

// newUserJSON returns a userJSON when opts are those it writes by, nil
// otherwise.
func newUserJSON(opts protojson.MarshalOptions) *userJSON {
	if !userJSONUsable || opts.Multiline || opts.Indent != "" || opts.UseProtoNames || opts.UseEnumNumbers ||
		!opts.EmitUnpopulated || opts.EmitDefaultValues {
		return nil
	}
	return &userJSON{}
}

// append appends u's JSON to dst; false (and dst in any state) when it
// declines u.
func (e *userJSON) append(dst []byte, u *usersv2.User) ([]byte, bool) {
	var ok bool
	dst = append(dst, `{"name":`...)
	if dst, ok = appendString(dst, u.Name); !ok {
		return dst, false
	}
	dst = append(dst, `,"email":`...)
	if dst, ok = appendString(dst, u.Email); !ok {
		return dst, false
	}
	dst = append(dst, `,"displayName":`...)
	if dst, ok = appendString(dst, u.DisplayName); !ok {
		return dst, false
	}
	if s := int(u.State); s < 0 || s >= len(stateNames) {
		return dst, false
	}
	dst = append(append(append(dst, `,"state":"`...), stateNames[u.State]...), '"')
	dst = append(dst, `,"labels":`...)
	if dst, ok = e.appendLabels(dst, u.Labels); !ok {
		return dst, false
	}
	for _, t := range [...]struct {
		name string
		ts   *timestamppb.Timestamp
	}{{`,"createTime":`, u.CreateTime}, {`,"updateTime":`, u.UpdateTime}, {`,"deleteTime":`, u.DeleteTime}} {
		dst = append(dst, t.name...)
		if dst, ok = appendTimestamp(dst, t.ts); !ok {
			return dst, false
		}
	}
	for _, s := range [...]struct{ name, v string }{
		{`,"etag":`, u.Etag}, {`,"externalId":`, u.ExternalId}, {`,"givenName":`, u.GivenName},
		{`,"familyName":`, u.FamilyName}, {`,"phoneNumber":`, u.PhoneNumber},
	} {
		dst = append(dst, s.name...)
		if dst, ok = appendString(dst, s.v); !ok {
			return dst, false
		}
	}
	dst = strconv.AppendBool(append(dst, `,"emailVerified":`...), u.EmailVerified)
	dst = strconv.AppendBool(append(dst, `,"phoneVerified":`...), u.PhoneVerified)
	dst = append(dst, `,"locale":`...)
	if dst, ok = appendString(dst, u.Locale); !ok {
		return dst, false
	}
	dst = append(dst, `,"timeZone":`...)
	if dst, ok = appendString(dst, u.TimeZone); !ok {
		return dst, false
	}
	dst = append(dst, `,"attributes":`...)
	if u.Attributes == nil {
		dst = append(dst, "null"...)
	} else if dst, ok = e.appendStruct(dst, u.Attributes, 0); !ok {
		return dst, false
	}
	return append(dst, '}'), true
}

// appendLabels appends a map of strings, its keys in order.
func (e *userJSON) appendLabels(dst []byte, m map[string]string) ([]byte, bool) {
	first := len(e.keys)
	defer func() { e.keys = e.keys[:first] }()
	for k := range m {
		e.keys = append(e.keys, k)
	}
	slices.Sort(e.keys[first:])
	dst = append(dst, '{')
	var ok bool
	for i, k := range e.keys[first:] {
		if i > 0 {
			dst = append(dst, ',')
		}
		if dst, ok = appendString(dst, k); !ok {
			return dst, false
		}
		dst = append(dst, ':')
		if dst, ok = appendString(dst, m[k]); !ok {
			return dst, false
		}
	}
	return append(dst, '}'), true
}

// maxValueDepth bounds the nesting of the Structs userJSON writes;
// attributes are at most 16 levels deep.
const maxValueDepth = 64

// appendStruct appends a Struct as a JSON object, its keys in order.
func (e *userJSON) appendStruct(dst []byte, st *structpb.Struct, depth int) ([]byte, bool) {
	if st == nil || depth == maxValueDepth {
		return dst, false // protojson's: an unset Struct inside a Value
	}
	first := len(e.keys)
	defer func() { e.keys = e.keys[:first] }()
	for k := range st.Fields {
		e.keys = append(e.keys, k)
	}
	end := len(e.keys)
	slices.Sort(e.keys[first:end])
	dst = append(dst, '{')
	var ok bool
	for i := first; i < end; i++ {
		// e.keys may grow, and move, as nested Structs are written.
		k := e.keys[i]
		if i > first {
			dst = append(dst, ',')
		}
		if dst, ok = appendString(dst, k); !ok {
			return dst, false
		}
		dst = append(dst, ':')
		if dst, ok = e.appendValue(dst, st.Fields[k], depth); !ok {
			return dst, false
		}
	}
	return append(dst, '}'), true
}

// appendValue appends a Value as the JSON value it stands for.
func (e *userJSON) appendValue(dst []byte, v *structpb.Value, depth int) ([]byte, bool) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_NullValue:
		return append(dst, "null"...), true
	case *structpb.Value_BoolValue:
		return strconv.AppendBool(dst, k.BoolValue), true
	case *structpb.Value_NumberValue:
		return appendNumber(dst, k.NumberValue)
	case *structpb.Value_StringValue:
		return appendString(dst, k.StringValue)
	case *structpb.Value_StructValue:
		return e.appendStruct(dst, k.StructValue, depth+1)
	case *structpb.Value_ListValue:
		if k.ListValue == nil || depth+1 == maxValueDepth {
			return dst, false
		}
		dst = append(dst, '[')
		var ok bool
		for i, item := range k.ListValue.Values {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, ok = e.appendValue(dst, item, depth+1); !ok {
				return dst, false
			}
		}
		return append(dst, ']'), true
	}
	return dst, false // no kind: protojson refuses it
}

// appendNumber appends a double as protojson writes it: the shortest
// text that reads back as f, without an exponent unless f is below 1e-6
// or from 1e21 on (in magnitude), and no zero ahead of an exponent's
// digit (1e-07 is 1e-7). NaN and the infinities, which a Value may not
// hold, are declined.
func appendNumber(dst []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dst, false
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if n := len(dst); format == 'e' && n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
		dst[n-2] = dst[n-1] // e-07 → e-7
		dst = dst[:n-1]
	}
	return dst, true
}

// The bounds of a Timestamp that protojson writes: 0001-01-01T00:00:00Z to
// 9999-12-31T23:59:59.999999999Z.
const (
	minTimestampSeconds = -62135596800
	maxTimestampSeconds = 253402300799
)

// appendTimestamp appends a Timestamp as protojson writes it: in UTC,
// with 0, 3, 6 or 9 fractional digits; null when it is unset.
func appendTimestamp(dst []byte, ts *timestamppb.Timestamp) ([]byte, bool) {
	if ts == nil {
		return append(dst, "null"...), true
	}
	secs, nanos := ts.GetSeconds(), ts.GetNanos()
	if secs < minTimestampSeconds || secs > maxTimestampSeconds || nanos < 0 || nanos >= 1e9 {
		return dst, false
	}
	t := time.Unix(secs, int64(nanos)).UTC()
	year, month, day := t.Date()
	hour, minute, second := t.Clock()
	dst = append(dst, '"')
	dst = appendDigits(dst, year, 4)
	dst = appendDigits(append(dst, '-'), int(month), 2)
	dst = appendDigits(append(dst, '-'), day, 2)
	dst = appendDigits(append(dst, 'T'), hour, 2)
	dst = appendDigits(append(dst, ':'), minute, 2)
	dst = appendDigits(append(dst, ':'), second, 2)
	switch {
	case nanos == 0:
	case nanos%1e6 == 0:
		dst = appendDigits(append(dst, '.'), int(nanos/1e6), 3)
	case nanos%1e3 == 0:
		dst = appendDigits(append(dst, '.'), int(nanos/1e3), 6)
	default:
		dst = appendDigits(append(dst, '.'), int(nanos), 9)
	}
	return append(dst, 'Z', '"'), true
}

// appendDigits appends n (not negative) in width decimal digits, zeros
// first.
func appendDigits(dst []byte, n, width int) []byte {
	var buf [9]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	return append(dst, buf[:width]...)
}

// appendString appends s as a JSON string as protojson writes it: " and \
// escaped, and the control characters below U+0020 (as \b, \f, \n, \r,
// \t, or \u00XX in lower case), nothing else. False for s that is not
// UTF-8, which protojson refuses.
func appendString(dst []byte, s string) ([]byte, bool) {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return dst, false
			}
			i += size
			continue
		}
		if b >= 0x20 && b != '"' && b != '\\' {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		switch b {
		case '"', '\\':
			dst = append(dst, '\\', b)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
		}
		i++
		start = i
	}
	return append(append(dst, s[start:]...), '"'), true
}
