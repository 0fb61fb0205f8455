package usersql

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestPrefixEnd checks the upper bound of a prefix's range: greater than
// every string that starts with the prefix, and no greater than needed.
func TestPrefixEnd(t *testing.T) {
	for _, tt := range []struct {
		prefix, end string
		ok          bool
	}{
		{"ann", "ano", true},
		{"az", "a{", true},
		{"zoë", "zoì", true},
		{"a\U0010FFFF", "b", true},
		{"a\U0010FFFF\U0010FFFF", "b", true},
		{"\U0010FFFF", "", false},
		{"x\uD7FF", "x\uE000", true},
		{"", "", false},
	} {
		end, ok := prefixEnd(tt.prefix)
		if end != tt.end || ok != tt.ok {
			t.Errorf("prefixEnd(%q) = %q, %v; want %q, %v", tt.prefix, end, ok, tt.end, tt.ok)
			continue
		}
		if !ok {
			continue
		}
		for _, s := range []string{tt.prefix, tt.prefix + "a", tt.prefix + "\U0010FFFF\U0010FFFF"} {
			if !(strings.Compare(tt.prefix, s) <= 0 && strings.Compare(s, end) < 0) {
				t.Errorf("%q is outside [%q, %q)", s, tt.prefix, end)
			}
		}
		if !utf8.ValidString(end) {
			t.Errorf("prefixEnd(%q) = %q, not valid UTF-8", tt.prefix, end)
		}
	}
}
