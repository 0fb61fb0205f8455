package users

import (
	"bytes"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // time zone names are checked the same on every machine, static binaries included
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/text/language"
)

// Profile is what a directory keeps of a user beyond the address and the
// name it shows: v2's profile fields. v1 neither shows nor changes them.
type Profile struct {
	// ExternalID is the user's id in another system (an identity
	// provider, an HR system): unique among the tenant's users that are
	// not deleted, "" when unset.
	ExternalID string
	GivenName  string
	FamilyName string
	// PhoneNumber is in E.164 ("+14155550100"), "" when unset.
	PhoneNumber string
	// EmailVerified and PhoneVerified are the caller's to set: usersd
	// sends no mail and no text.
	EmailVerified bool
	PhoneVerified bool
	// Locale is a BCP 47 language tag in its canonical form ("en-US"),
	// TimeZone an IANA time zone name ("Europe/Paris"); "" when unset.
	Locale   string
	TimeZone string
	// Attributes is the tenant-defined data of the user: a JSON object in
	// the canonical form NormalizeAttributes returns, or nil for none.
	// It is never changed in place: a change replaces it.
	Attributes []byte
}

// IsZero reports whether no profile field is set.
func (p *Profile) IsZero() bool {
	return p.ExternalID == "" && p.GivenName == "" && p.FamilyName == "" && p.PhoneNumber == "" &&
		!p.EmailVerified && !p.PhoneVerified && p.Locale == "" && p.TimeZone == "" && p.Attributes == nil
}

// Limits of the profile fields.
const (
	MaxExternalIDLen = 255 // bytes
	MaxNameLen       = 200 // characters, for the given and family names
)

// normalizeProfile checks the profile fields named by set (all of them when
// set is nil) and puts each in its canonical form: the phone number in
// E.164, the locale as a canonical tag, the attributes as compact JSON.
// Fields of the violations are "user.<field>".
func normalizeProfile(vs *violations, p *Profile, set map[string]bool) {
	want := func(f string) bool { return set == nil || set[f] }
	if want("external_id") && p.ExternalID != "" {
		switch {
		case len(p.ExternalID) > MaxExternalIDLen:
			vs.add("user.external_id", fmt.Sprintf("longer than %d bytes", MaxExternalIDLen))
		case strings.TrimSpace(p.ExternalID) != p.ExternalID:
			vs.add("user.external_id", "leading or trailing space")
		default:
			validateText(vs, "user.external_id", p.ExternalID)
		}
	}
	for _, f := range []struct {
		name string
		v    string
	}{{"given_name", p.GivenName}, {"family_name", p.FamilyName}} {
		if !want(f.name) {
			continue
		}
		if n := utf8.RuneCountInString(f.v); n > MaxNameLen {
			vs.add("user."+f.name, fmt.Sprintf("%d characters, more than %d", n, MaxNameLen))
		} else {
			validateText(vs, "user."+f.name, f.v)
		}
	}
	if want("phone_number") && p.PhoneNumber != "" {
		if e164, problem := normalizePhone(p.PhoneNumber); problem != "" {
			vs.add("user.phone_number", problem)
		} else {
			p.PhoneNumber = e164
		}
	}
	if want("locale") && p.Locale != "" {
		if tag, problem := normalizeLocale(p.Locale); problem != "" {
			vs.add("user.locale", problem)
		} else {
			p.Locale = tag
		}
	}
	if want("time_zone") && p.TimeZone != "" {
		if problem := checkTimeZone(p.TimeZone); problem != "" {
			vs.add("user.time_zone", problem)
		}
	}
	if want("attributes") {
		a, err := NormalizeAttributes("user.attributes", p.Attributes)
		if err != nil {
			vs.addAll(err)
		} else {
			p.Attributes = a
		}
	}
}

// maxPhoneLen bounds what is given to the phone number parser: E.164
// numbers have at most 15 digits, and their written forms few more
// characters.
const maxPhoneLen = 64

// normalizePhone returns the E.164 form of a phone number written in
// international form ("+44 20 7946 0958"), or why it is not one.
func normalizePhone(s string) (string, string) {
	if len(s) > maxPhoneLen {
		return "", fmt.Sprintf("longer than %d bytes", maxPhoneLen)
	}
	if problem := textProblem(s); problem != "" {
		return "", problem
	}
	if !strings.HasPrefix(strings.TrimSpace(s), "+") {
		return "", `not in international form: start with "+" and the country code, e.g. "+14155550100"`
	}
	n, err := phonenumbers.Parse(s, "")
	if err != nil {
		return "", fmt.Sprintf("not a phone number: %v", err)
	}
	if !phonenumbers.IsValidNumber(n) {
		return "", fmt.Sprintf("%q is not a valid phone number", s)
	}
	return phonenumbers.Format(n, phonenumbers.E164), ""
}

// maxLocaleLen bounds a language tag; real tags are far shorter.
const maxLocaleLen = 64

// normalizeLocale returns the canonical form of a BCP 47 language tag, or
// why it is not one.
func normalizeLocale(s string) (string, string) {
	if len(s) > maxLocaleLen {
		return "", fmt.Sprintf("longer than %d bytes", maxLocaleLen)
	}
	tag, err := language.Parse(s)
	if err != nil {
		return "", fmt.Sprintf("%q is not a BCP 47 language tag, e.g. \"en-US\"", s)
	}
	if tag == language.Und {
		return "", fmt.Sprintf("%q names no language", s)
	}
	return tag.String(), ""
}

// maxTimeZoneLen bounds a time zone name; the longest IANA name is 32
// bytes.
const maxTimeZoneLen = 64

// checkTimeZone says why s is not an IANA time zone name, or returns "".
func checkTimeZone(s string) string {
	switch {
	case len(s) > maxTimeZoneLen:
		return fmt.Sprintf("longer than %d bytes", maxTimeZoneLen)
	case s == "Local" || strings.HasPrefix(s, "/") || strings.Contains(s, ".."):
		return fmt.Sprintf("%q is not an IANA time zone name, e.g. \"Europe/Paris\"", s)
	}
	if textProblem(s) != "" {
		return "not an IANA time zone name"
	}
	if _, err := time.LoadLocation(s); err != nil {
		return fmt.Sprintf("%q is not an IANA time zone name, e.g. \"Europe/Paris\"", s)
	}
	return ""
}

// appendProfilePaths appends the profile fields that differ between a and
// b, in the order external_id, given_name, family_name, phone_number,
// email_verified, phone_verified, locale, time_zone, attributes.
func appendProfilePaths(paths []string, a, b *Profile) []string {
	for _, f := range []struct {
		name string
		diff bool
	}{
		{"external_id", a.ExternalID != b.ExternalID},
		{"given_name", a.GivenName != b.GivenName},
		{"family_name", a.FamilyName != b.FamilyName},
		{"phone_number", a.PhoneNumber != b.PhoneNumber},
		{"email_verified", a.EmailVerified != b.EmailVerified},
		{"phone_verified", a.PhoneVerified != b.PhoneVerified},
		{"locale", a.Locale != b.Locale},
		{"time_zone", a.TimeZone != b.TimeZone},
		{"attributes", !bytes.Equal(a.Attributes, b.Attributes)},
	} {
		if f.diff {
			paths = append(paths, f.name)
		}
	}
	return paths
}
