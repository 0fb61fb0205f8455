package users

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseFilter(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		want Filter
	}{
		{"empty", "", nil},
		{"blank", "  \t", nil},
		{"state quoted", `state = "ACTIVE"`, Filter{{FieldState, OpEq, StateActive, nil}}},
		{"state bare prefixed", `state!=STATE_SUSPENDED`, Filter{{FieldState, OpNe, StateSuspended, nil}}},
		{"state lower case", `state = "deleted"`, Filter{{FieldState, OpEq, StateDeleted, nil}}},
		{"email folds case", `email = "Ada@Example.COM"`, Filter{{FieldEmail, OpEq, "ada@example.com", nil}}},
		{"email bare", `email=ada@example.com`, Filter{{FieldEmail, OpEq, "ada@example.com", nil}}},
		{"display name escapes", `display_name = "Ada \"The\" Count \\ 1"`, Filter{{FieldDisplayName, OpEq, `Ada "The" Count \ 1`, nil}}},
		{"camel case", `displayName = "x" AND createTime < "2026-01-02T03:04:05Z"`,
			Filter{{FieldDisplayName, OpEq, "x", nil}, {FieldCreateTime, OpLt, ts, nil}}},
		{"time ops", `create_time > "2026-01-02T03:04:05Z" AND create_time <= "2026-01-02T04:04:05+01:00" AND update_time >= 2026-01-02T03:04:05Z`,
			Filter{{FieldCreateTime, OpGt, ts, nil}, {FieldCreateTime, OpLe, ts, nil}, {FieldUpdateTime, OpGe, ts, nil}}},
		{"sub-microsecond less", `create_time < "2026-01-02T03:04:05.0000019Z"`,
			Filter{{FieldCreateTime, OpLe, ts.Add(time.Microsecond), nil}}},
		{"sub-microsecond at least", `create_time >= "2026-01-02T03:04:05.0000019Z"`,
			Filter{{FieldCreateTime, OpGt, ts.Add(time.Microsecond), nil}}},
		{"sub-microsecond equal matches nothing", `create_time = "2026-01-02T03:04:05.0000019Z"`,
			Filter{{FieldCreateTime, OpLt, ts.Add(time.Microsecond), nil}, {FieldCreateTime, OpGt, ts.Add(time.Microsecond), nil}}},
		{"sub-microsecond not equal matches all", `state = "ACTIVE" AND create_time != "2026-01-02T03:04:05.0000019Z"`,
			Filter{{FieldState, OpEq, StateActive, nil}}},

		// The profile fields.
		{"external id", `external_id = "hr-1234"`, Filter{{FieldExternalID, OpEq, "hr-1234", nil}}},
		{"external id camel bare", `externalId!=hr-1234`, Filter{{FieldExternalID, OpNe, "hr-1234", nil}}},
		{"external id empty", `external_id = ""`, Filter{{FieldExternalID, OpEq, "", nil}}},
		{"names", `given_name = "Ada" AND givenName != Bob AND family_name = "Lovelace" AND familyName != ""`,
			Filter{{FieldGivenName, OpEq, "Ada", nil}, {FieldGivenName, OpNe, "Bob", nil},
				{FieldFamilyName, OpEq, "Lovelace", nil}, {FieldFamilyName, OpNe, "", nil}}},
		{"phone number bare", `phone_number = +14155550100`, Filter{{FieldPhoneNumber, OpEq, "+14155550100", nil}}},
		{"phone number to E.164", `phoneNumber = "+1 (415) 555-0100"`, Filter{{FieldPhoneNumber, OpEq, "+14155550100", nil}}},
		{"phone number not one stays", `phone_number != "4155550100"`, Filter{{FieldPhoneNumber, OpNe, "4155550100", nil}}},
		{"locale canonical", `locale = en-us`, Filter{{FieldLocale, OpEq, "en-US", nil}}},
		{"locale not one stays", `locale != "xx-!!"`, Filter{{FieldLocale, OpNe, "xx-!!", nil}}},
		{"time zone bare", `time_zone = Europe/Paris AND timeZone != "America/New_York"`,
			Filter{{FieldTimeZone, OpEq, "Europe/Paris", nil}, {FieldTimeZone, OpNe, "America/New_York", nil}}},
		{"verified", `email_verified = true AND emailVerified != false AND phone_verified = false AND phoneVerified!=true`,
			Filter{{FieldEmailVerified, OpEq, true, nil}, {FieldEmailVerified, OpNe, false, nil},
				{FieldPhoneVerified, OpEq, false, nil}, {FieldPhoneVerified, OpNe, true, nil}}},

		// Presence.
		{"present", `external_id:* AND given_name : * AND familyName:* AND phone_number:* AND locale:* AND timeZone:*`,
			Filter{{FieldExternalID, OpHas, nil, nil}, {FieldGivenName, OpHas, nil, nil}, {FieldFamilyName, OpHas, nil, nil},
				{FieldPhoneNumber, OpHas, nil, nil}, {FieldLocale, OpHas, nil, nil}, {FieldTimeZone, OpHas, nil, nil}}},
		{"attribute present", `attributes.team.lead:*`, Filter{{FieldAttribute, OpHas, nil, []string{"team", "lead"}}}},

		// Attributes: the value's JSON type.
		{"attribute quoted string", `attributes.department = "R&D"`, Filter{{FieldAttribute, OpEq, "R&D", []string{"department"}}}},
		{"attribute bare string", `attributes.department != sales`, Filter{{FieldAttribute, OpNe, "sales", []string{"department"}}}},
		{"attribute quoted number is a string", `attributes.age = "30"`, Filter{{FieldAttribute, OpEq, "30", []string{"age"}}}},
		{"attribute quoted bool is a string", `attributes.x = "true"`, Filter{{FieldAttribute, OpEq, "true", []string{"x"}}}},
		{"attribute bools", `attributes.x = true AND attributes.y != false`,
			Filter{{FieldAttribute, OpEq, true, []string{"x"}}, {FieldAttribute, OpNe, false, []string{"y"}}}},
		{"attribute null", `attributes.x = null AND attributes.y != null`,
			Filter{{FieldAttribute, OpEq, nil, []string{"x"}}, {FieldAttribute, OpNe, nil, []string{"y"}}}},
		{"attribute numbers", `attributes.a = 30 AND attributes.b > -1.5 AND attributes.c <= 2e3 AND attributes.d >= 1E-2 AND attributes.e < 0 AND attributes.f != -0.0e+0`,
			Filter{{FieldAttribute, OpEq, 30.0, []string{"a"}}, {FieldAttribute, OpGt, -1.5, []string{"b"}},
				{FieldAttribute, OpLe, 2000.0, []string{"c"}}, {FieldAttribute, OpGe, 0.01, []string{"d"}},
				{FieldAttribute, OpLt, 0.0, []string{"e"}}, {FieldAttribute, OpNe, 0.0, []string{"f"}}}},
		{"attribute words that are no JSON numbers", `attributes.a = 01 AND attributes.b = 1. AND attributes.c = 1.2.3 AND attributes.d = +1 AND attributes.e = NaN AND attributes.f = True AND attributes.g = .5`,
			Filter{{FieldAttribute, OpEq, "01", []string{"a"}}, {FieldAttribute, OpEq, "1.", []string{"b"}},
				{FieldAttribute, OpEq, "1.2.3", []string{"c"}}, {FieldAttribute, OpEq, "+1", []string{"d"}},
				{FieldAttribute, OpEq, "NaN", []string{"e"}}, {FieldAttribute, OpEq, "True", []string{"f"}},
				{FieldAttribute, OpEq, ".5", []string{"g"}}}},
		{"attribute string ranges", `attributes.name >= "M" AND attributes.name < N`,
			Filter{{FieldAttribute, OpGe, "M", []string{"name"}}, {FieldAttribute, OpLt, "N", []string{"name"}}}},
		{"attribute keys", `attributes._a.B-2.c_d = 1`, Filter{{FieldAttribute, OpEq, 1.0, []string{"_a", "B-2", "c_d"}}}},
		{"attribute path of 8 keys", `attributes.a.b.c.d.e.f.g.h = 1`,
			Filter{{FieldAttribute, OpEq, 1.0, []string{"a", "b", "c", "d", "e", "f", "g", "h"}}}},
		{"attribute key of 63 bytes", `attributes.` + strings.Repeat("k", 63) + ` = 1`,
			Filter{{FieldAttribute, OpEq, 1.0, []string{strings.Repeat("k", 63)}}}},
		{"attribute with the old fields", `state = ACTIVE AND attributes.level > 3 AND email = "A@B"`,
			Filter{{FieldState, OpEq, StateActive, nil}, {FieldAttribute, OpGt, 3.0, []string{"level"}}, {FieldEmail, OpEq, "a@b", nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFilter(tt.in)
			if err != nil {
				t.Fatalf("ParseFilter(%q) err = %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseFilter(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseFilterErrors(t *testing.T) {
	tests := []struct{ in, wantMsg string }{
		{`name = "x"`, `unknown field "name"`},
		{`state`, "expected a comparison operator"},
		{`state =`, "expected a value"},
		{`state == "ACTIVE"`, `unknown operator "=="`},
		{`state = "GONE"`, `unknown state "GONE"`},
		{`state > "ACTIVE"`, "allows only = and !="},
		{`email < "a"`, "allows only = and !="},
		{`create_time > "yesterday"`, "RFC 3339"},
		{`state = "ACTIVE" OR state = "SUSPENDED"`, `expected AND, found "OR"`},
		{`state = "ACTIVE" and email = "a@b"`, `expected AND, found "and"`},
		{`state = "ACTIVE" AND`, "expected a field name"},
		{`email = "unterminated`, "unterminated string"},
		{`email = "bad \n escape"`, "escapes"},
		{`(state = "ACTIVE")`, "expected a field name"},
		{`state = "ACTIVE"; DROP TABLE users`, "expected AND"},
		{strings.Repeat(`state = "ACTIVE" AND `, MaxFilterConditions) + `state = "ACTIVE"`, "more than 16 comparisons"},
		{strings.Repeat(`attributes.a = 1 AND `, MaxFilterConditions) + `attributes.a:*`, "more than 16 comparisons"},

		// Unknown fields.
		{`attribute.x = 1`, `at offset 0: unknown field "attribute.x"`},
		{`attributesx = 1`, `unknown field "attributesx"`},
		{`labels.x = 1`, `unknown field "labels.x"`},
		{`external_id@x = 1`, "at offset 11: expected a comparison operator"},
		{`given_name:x`, `at offset 10: ":" must be followed by "*"`},
		{`given_name:`, `":" must be followed by "*"`},
		{`given_name:=x`, `":" must be followed by "*"`},

		// Operators and values of the profile fields.
		{`given_name < "a"`, "given_name allows only = and !="},
		{`externalId >= "a"`, "externalId allows only = and !="},
		{`phone_number > "+1"`, "allows only = and !="},
		{`email_verified > true`, "email_verified allows only = and !="},
		{`email_verified = yes`, `at offset 16: email_verified takes a bare true or false, got "yes"`},
		{`phoneVerified = "true"`, `phoneVerified takes a bare true or false, got "true"`},
		{`email_verified = TRUE`, "takes a bare true or false"},
		{`email_verified = 1`, "takes a bare true or false"},
		{`email_verified:*`, "email_verified always has a value"},
		{`state:*`, "state always has a value"},
		{`display_name : *`, "display_name always has a value"},
		{`create_time:*`, "always has a value"},
		{`given_name = "a` + "\x01" + `"`, "control character"},
		{`family_name = "` + "\xff" + `"`, "not valid UTF-8"},
		{`external_id = "a` + "\u0085" + `"`, "control character"},

		// Attributes paths.
		{`attributes = 1`, "at offset 0: attributes needs a path"},
		{`attributes:*`, "attributes needs a path"},
		{`attributes. = 1`, `at offset 11: attributes key ""`},
		{`attributes.a. = 1`, `at offset 13: attributes key ""`},
		{`attributes.a..b = 1`, `at offset 13: attributes key ""`},
		{`attributes.a.1b = 1`, `at offset 13: attributes key "1b"`},
		{`attributes.-a = 1`, `attributes key "-a"`},
		{`attributes.` + strings.Repeat("k", 64) + ` = 1`, "attributes key"},
		{`attributes.a.b.c.d.e.f.g.h.i = 1`, "at offset 0: attributes path deeper than 8 keys"},
		{`attributes.a$b = 1`, "at offset 12: expected a comparison operator"},
		{`attributes."a b" = 1`, `attributes key ""`},

		// Attributes values.
		{`attributes.a > true`, "at offset 12: attributes.a: < <= > >= compare numbers and strings, not true"},
		{`attributes.a <= false`, "compare numbers and strings, not false"},
		{`attributes.a < null`, "compare numbers and strings, not null"},
		{`attributes.a >= null`, "not null"},
		{`attributes.a = 1e400`, "at offset 14: attributes.a: number 1e400 is out of range"},
		{`attributes.a != -1E999`, "out of range"},
		{`attributes.a = "x` + "\x00" + `"`, "control character"},
		{`attributes.a =`, "expected a value"},
		{`attributes.a == 1`, `unknown operator "=="`},
		{`attributes.a = 1 OR attributes.b = 2`, `expected AND, found "OR"`},
	}
	for _, tt := range tests {
		_, err := ParseFilter(tt.in)
		var inv *InvalidError
		if !errors.As(err, &inv) || inv.Violations[0].Field != "filter" {
			t.Errorf("ParseFilter(%q) err = %v, want an InvalidError on filter", tt.in, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantMsg) {
			t.Errorf("ParseFilter(%q) err = %q, want it to mention %q", tt.in, err, tt.wantMsg)
		}
	}
}

func TestParseOrderBy(t *testing.T) {
	tests := []struct {
		in      string
		want    Order
		wantErr bool
	}{
		{"", Order{}, false},
		{"create_time", Order{}, false},
		{"createTime desc", Order{Desc: true}, false},
		{"email", Order{Field: OrderEmail}, false},
		{"  email   DESC ", Order{Field: OrderEmail, Desc: true}, false},
		{"email asc", Order{Field: OrderEmail}, false},
		{"display_name", Order{}, true},
		{"email sideways", Order{}, true},
		{"email desc extra", Order{}, true},
	}
	for _, tt := range tests {
		got, err := ParseOrderBy(tt.in)
		if tt.wantErr {
			var inv *InvalidError
			if !errors.As(err, &inv) || inv.Violations[0].Field != "order_by" {
				t.Errorf("ParseOrderBy(%q) err = %v, want an InvalidError on order_by", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseOrderBy(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}
