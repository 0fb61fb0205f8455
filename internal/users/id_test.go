package users

import "testing"

func TestCanonicalID(t *testing.T) {
	const lower = "0190f3a4-7b1c-7def-8abc-0123456789ab"
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{lower, lower, true},
		{"0190F3A4-7B1C-7DEF-8ABC-0123456789AB", lower, true},
		{"0190f3a4-7b1c-7DEF-8abc-0123456789ab", lower, true},
		{"{0190f3a4-7b1c-7def-8abc-0123456789ab}", "", false},
		{"urn:uuid:0190f3a4-7b1c-7def-8abc-0123456789ab", "", false},
		{"0190f3a47b1c7def8abc0123456789ab", "", false},
		{"0190f3a4-7b1c-7def-8abc-0123456789ag", "", false},
		{"0190f3a4_7b1c_7def_8abc_0123456789ab", "", false},
		{"", "", false},
	} {
		got, ok := canonicalID(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("canonicalID(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if n := testing.AllocsPerRun(100, func() { canonicalID(lower) }); n != 0 {
		t.Errorf("canonicalID of a canonical id allocates %v times, want 0", n)
	}
}

func TestEtag(t *testing.T) {
	u := &User{ID: "0190f3a4-7b1c-7def-8abc-0123456789ab", Revision: 7}
	// The first 8 bytes of SHA-256(id || big-endian uint64 revision), in
	// hex: etags stored by clients stay valid across releases.
	if got, want := u.Etag(), "c73ddca3afcd6312"; got != want {
		t.Errorf("Etag() = %q, want %q", got, want)
	}
	if n := testing.AllocsPerRun(100, func() { _ = u.Etag() }); n > 1 {
		t.Errorf("Etag() allocates %v times, want at most 1 (the string)", n)
	}
}
