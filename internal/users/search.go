package users

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Search is a parsed ListUsers query: the users whose email, display
// name, given name, family name or external id contain it, compared in
// their folded forms (Fold): case- and accent-insensitively.
//
// Stores match it against each user's SearchKey: the folded fields, each
// between two SearchSep bytes. A field equal to the query holds Exact, a
// field that starts with it holds Prefix, and every match holds Folded.
type Search struct {
	// Folded is the query folded.
	Folded string
	// Exact is SearchSep + Folded + SearchSep; Prefix is SearchSep +
	// Folded.
	Exact, Prefix string
}

// SearchSep separates the fields of a search key. It is a control
// character, which no stored text and no query holds, so that no match
// spans two fields.
const SearchSep = "\x1f"

// Ranks of a search's matches: the order of a search's results.
const (
	RankExact     = 0 // a field equals the query
	RankPrefix    = 1 // a field starts with it
	RankSubstring = 2 // a field contains it
)

// Bounds of a search query.
const (
	MaxSearchLen = 200 // characters
	// MinSearchRun is how many letters or digits in a row a query must
	// hold: the stores' indexes are of trigrams, and a shorter query would
	// read every user of the tenant.
	MinSearchRun = 3
)

// ParseSearch checks a query and folds it. Errors are *InvalidError values
// naming the field "query".
func ParseSearch(q string) (*Search, error) {
	if problem := textProblem(q); problem != "" {
		return nil, Invalid("query", problem)
	}
	if n := utf8.RuneCountInString(q); n > MaxSearchLen {
		return nil, Invalid("query", fmt.Sprintf("%d characters, more than %d", n, MaxSearchLen))
	}
	f := Fold(strings.TrimSpace(q))
	run, longest := 0, 0
	for _, r := range f {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	if longest < MinSearchRun {
		return nil, Invalid("query", fmt.Sprintf("needs at least %d letters or digits in a row", MinSearchRun))
	}
	return &Search{Folded: f, Exact: SearchSep + f + SearchSep, Prefix: SearchSep + f}, nil
}

// Fold returns s as search compares it: without diacritics (é is e, and
// the Latin letters that carry theirs inside, such as ø and ł, as their
// base letters), in lower case.
func Fold(s string) string {
	if isLowerASCII(s) {
		return s
	}
	t := transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
	out, _, err := transform.String(t, s)
	if err != nil {
		out = s
	}
	return baseLetters.Replace(strings.ToLower(out))
}

// baseLetters spells the lower-case Latin letters that have no
// decomposition with the letters they are searched by.
var baseLetters = strings.NewReplacer("ø", "o", "ł", "l", "đ", "d", "ħ", "h", "ı", "i", "ŧ", "t",
	"ß", "ss", "æ", "ae", "œ", "oe", "þ", "th", "ð", "d")

func isLowerASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}

// SearchKey returns the text a search matches for u: its email, display
// name, given name, family name and external id, folded, each between two
// SearchSep bytes. Stores keep it with the user and index it.
func SearchKey(u *User) string {
	var b strings.Builder
	b.WriteString(SearchSep)
	for _, f := range [...]string{u.Email, u.DisplayName, u.GivenName, u.FamilyName, u.ExternalID} {
		b.WriteString(Fold(f))
		b.WriteString(SearchSep)
	}
	return b.String()
}

// SearchRank returns the rank of key (a SearchKey) for s, as the stores
// compute it.
func SearchRank(s *Search, key string) int {
	switch {
	case strings.Contains(key, s.Exact):
		return RankExact
	case strings.Contains(key, s.Prefix):
		return RankPrefix
	}
	return RankSubstring
}
