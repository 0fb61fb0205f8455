package users

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeProfile(t *testing.T) {
	p := Profile{
		ExternalID: "okta|00u1", GivenName: "Zoë", PhoneNumber: "+1 (415) 555-0100",
		Locale: "en-us", TimeZone: "Europe/Paris", Attributes: []byte(` {"b": 1, "a": [true, null]} `),
	}
	var vs violations
	normalizeProfile(&vs, &p, nil)
	if err := vs.err(); err != nil {
		t.Fatalf("normalizeProfile: %v", err)
	}
	if p.PhoneNumber != "+14155550100" || p.Locale != "en-US" || string(p.Attributes) != `{"a":[true,null],"b":1}` {
		t.Errorf("normalized profile = %+v (attributes %s)", p, p.Attributes)
	}

	for _, tt := range []struct {
		p     Profile
		field string
		want  string
	}{
		{Profile{ExternalID: " padded"}, "user.external_id", "space"},
		{Profile{ExternalID: strings.Repeat("x", 256)}, "user.external_id", "longer than 255"},
		{Profile{GivenName: "a\nb"}, "user.given_name", "control character"},
		{Profile{FamilyName: strings.Repeat("é", 201)}, "user.family_name", "more than 200"},
		{Profile{PhoneNumber: "415 555 0100"}, "user.phone_number", "international form"},
		{Profile{PhoneNumber: "+1 555"}, "user.phone_number", "phone number"},
		{Profile{PhoneNumber: "+999 1234 5678"}, "user.phone_number", "phone number"},
		{Profile{Locale: "not a tag"}, "user.locale", "BCP 47"},
		{Profile{Locale: "und"}, "user.locale", "no language"},
		{Profile{TimeZone: "Mars/Olympus"}, "user.time_zone", "IANA"},
		{Profile{TimeZone: "Local"}, "user.time_zone", "IANA"},
		{Profile{TimeZone: "../../etc/passwd"}, "user.time_zone", "IANA"},
		{Profile{Attributes: []byte(`[1]`)}, "user.attributes", "object"},
	} {
		var vs violations
		normalizeProfile(&vs, &tt.p, nil)
		var inv *InvalidError
		if err := vs.err(); !errors.As(err, &inv) || inv.Violations[0].Field != tt.field || !strings.Contains(inv.Violations[0].Description, tt.want) {
			t.Errorf("normalizeProfile(%+v) = %v; want a violation of %s saying %q", tt.p, vs.err(), tt.field, tt.want)
		}
	}
}

func TestPlainNumber(t *testing.T) {
	for in, want := range map[string]string{
		"0": "0", "-0": "0", "-0.0": "0.0", "12": "12", "-12.50": "-12.50", "1e2": "100", "1E+2": "100",
		"2.5e-3": "0.0025", "1e-7": "0.0000001", "1.50e1": "15.0", "-1.5e3": "-1500", "0e5": "0", "0.00e1": "0.0",
		"12345678901234567890": "12345678901234567890",
	} {
		if got := plainNumber(in); got != want {
			t.Errorf("plainNumber(%s) = %s, want %s", in, got, want)
		}
	}
}
