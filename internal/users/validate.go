package users

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on user fields. The API contract states the same bounds.
const (
	MaxEmailLen       = 254
	MaxDisplayNameLen = 200 // characters
	MaxLabels         = 64
	MaxLabelValueLen  = 255 // characters
	MaxBatchGet       = 1000
	DefaultPageSize   = 50
	MaxPageSize       = 1000
)

var labelKey = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,62}$`)

// validateEmail checks an address loosely: the API edge checks its syntax in
// full; the domain insists on what every address has.
func validateEmail(vs *violations, field, email string) {
	switch {
	case email == "":
		vs.add(field, "required")
	case len(email) > MaxEmailLen:
		vs.add(field, fmt.Sprintf("longer than %d bytes", MaxEmailLen))
	case strings.Count(email, "@") != 1 || strings.HasPrefix(email, "@") || strings.HasSuffix(email, "@") ||
		strings.IndexFunc(email, unicode.IsSpace) >= 0:
		vs.add(field, "not an email address")
	default:
		validateText(vs, field, email)
	}
}

func validateDisplayName(vs *violations, field, name string) {
	switch n := utf8.RuneCountInString(name); {
	case strings.TrimSpace(name) == "":
		vs.add(field, "required")
	case n > MaxDisplayNameLen:
		vs.add(field, fmt.Sprintf("%d characters, more than %d", n, MaxDisplayNameLen))
	default:
		validateText(vs, field, name)
	}
}

func validateLabels(vs *violations, field string, labels map[string]string) {
	if len(labels) > MaxLabels {
		vs.add(field, fmt.Sprintf("%d labels, more than %d", len(labels), MaxLabels))
		return
	}
	for k, v := range labels {
		if !labelKey.MatchString(k) {
			vs.add(field, fmt.Sprintf("key %q: 1 to 63 of a-z 0-9 _ - . starting with a letter", k))
		}
		if utf8.RuneCountInString(v) > MaxLabelValueLen {
			vs.add(field, fmt.Sprintf("value of %q longer than %d characters", k, MaxLabelValueLen))
		} else if problem := textProblem(v); problem != "" {
			vs.add(field, fmt.Sprintf("value of %q: %s", k, problem))
		}
	}
}

// validateText adds a violation of field when s is not stored text: see
// textProblem.
func validateText(vs *violations, field, s string) {
	if problem := textProblem(s); problem != "" {
		vs.add(field, problem)
	}
}

// textProblem says why s cannot be stored as text, or returns "". Every
// text field usersd stores is one line of valid UTF-8 without control
// characters: no C0 (U+0000–U+001F, NUL, TAB and line feed included), no
// DEL and no C1 (U+007F–U+009F), which is unicode.IsControl. A NUL is
// refused above all because Postgres cannot store it in text or jsonb;
// the others because they forge lines in logs, CSV exports and terminals,
// and a directory's single-line fields have no use for them.
func textProblem(s string) string {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return fmt.Sprintf("not valid UTF-8 (at byte %d)", i)
		case unicode.IsControl(r):
			return fmt.Sprintf("control character %U at byte %d: control characters, tabs and line breaks included, are not allowed", r, i)
		}
		i += size
	}
	return ""
}

// storableText returns s with each control character and each byte that is
// not valid UTF-8 replaced by U+FFFD, for text that usersd makes itself
// from what it does not control (a webhook receiver's error), which must be
// stored rather than refused.
func storableText(s string) string {
	if textProblem(s) == "" {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return utf8.RuneError
		}
		return r
	}, strings.ToValidUTF8(s, string(utf8.RuneError)))
}

// MaxRequestIDLen bounds idempotency keys.
const MaxRequestIDLen = 128

// validateRequestID checks an idempotency key: 1 to 128 visible ASCII
// characters.
func validateRequestID(vs *violations, id string) {
	if len(id) > MaxRequestIDLen {
		vs.add("request_id", fmt.Sprintf("longer than %d characters", MaxRequestIDLen))
		return
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '!' || id[i] > '~' {
			vs.add("request_id", "only visible ASCII characters are allowed")
			return
		}
	}
}

// validateUser checks the fields a caller may set.
func validateUser(vs *violations, u *User) {
	validateEmail(vs, "user.email", u.Email)
	validateDisplayName(vs, "user.display_name", u.DisplayName)
	validateLabels(vs, "user.labels", u.Labels)
}
