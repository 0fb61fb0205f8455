package users

import "testing"

func TestFold(t *testing.T) {
	for in, want := range map[string]string{
		"ada@example.com": "ada@example.com",
		"Zoë Ångström":    "zoe angstrom",
		"ŁUKASZ Øberg":    "lukasz oberg",
		"Straße":          "strasse",
		"ÉCOLE":           "ecole",
		"東京":              "東京",
	} {
		if got := Fold(in); got != want {
			t.Errorf("Fold(%q) = %q, want %q", in, got, want)
		}
		if got := Fold(Fold(in)); got != Fold(in) {
			t.Errorf("Fold(Fold(%q)) = %q, want it unchanged", in, got)
		}
	}
}

func TestParseSearch(t *testing.T) {
	for _, q := range []string{"", "ab", "a b c", "..%", "a\x00bc"} {
		if _, err := ParseSearch(q); err == nil {
			t.Errorf("ParseSearch(%q) accepted, want an error on query", q)
		}
	}
	s, err := ParseSearch("  Zoë ")
	if err != nil {
		t.Fatal(err)
	}
	key := SearchKey(&User{Email: "z@example.com", DisplayName: "Zoë", Profile: Profile{FamilyName: "Zoeller"}})
	if s.Folded != "zoe" || SearchRank(s, key) != RankExact {
		t.Errorf("search %+v in %q: rank %d, want exact", s, key, SearchRank(s, key))
	}
	if s, _ := ParseSearch("zoel"); SearchRank(s, key) != RankPrefix {
		t.Errorf("zoel: want a prefix match of Zoeller")
	}
	if s, _ := ParseSearch("example"); SearchRank(s, key) != RankSubstring {
		t.Errorf("example: want a substring match")
	}
}
