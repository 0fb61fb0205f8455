package users

import (
	"strings"

	"github.com/google/uuid"
)

// NewID returns a new user id: a UUIDv7 in its lower-case canonical form, so
// ids sort by creation time.
func NewID() string { return uuid.Must(uuid.NewV7()).String() }

// canonicalID returns the stored form of an id given in the 36-character
// hyphenated form, in any case, and reports whether s was such a UUID.
func canonicalID(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return "", false
	}
	if !strings.ContainsAny(s, "ABCDEF") {
		return s, true // already lower case: the stored form as it is
	}
	return u.String(), true
}

func formatUUID(b []byte) string {
	var u uuid.UUID
	copy(u[:], b)
	return u.String()
}

// normalizeEtag strips the weak prefix and quotes an HTTP client may send.
// "*" (HTTP's "any version") is no condition at all.
func normalizeEtag(s string) string {
	s = strings.TrimSpace(s)
	if s == "*" {
		return ""
	}
	s = strings.TrimPrefix(s, "W/")
	return strings.Trim(s, `"`)
}
