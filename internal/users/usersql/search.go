package usersql

import (
	"strings"

	"github.com/usersd/usersd/internal/users"
)

// A search matches the search_key column (users.SearchKey) through each
// store's trigram index, and ranks a match by where the query is found in
// it: in a whole field (users.RankExact), at the start of one
// (users.RankPrefix), or elsewhere (users.RankSubstring).

// postgresSearch matches with LIKE, which pg_trgm's GIN index
// (users_search_key_trgm) answers, the query's % _ and \ escaped.
func postgresSearch(s *users.Search, bind func(any) string) string {
	esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s.Folded)
	return "search_key LIKE " + bind("%"+esc+"%")
}

// sqliteSearch matches with the FTS5 table users_search (trigram
// tokenizer), whose rowids are the users': the query is one phrase,
// which the trigram tokenizer matches as a substring.
func sqliteSearch(s *users.Search, bind func(any) string) string {
	phrase := `"` + strings.ReplaceAll(s.Folded, `"`, `""`) + `"`
	return "rowid IN (SELECT rowid FROM users_search WHERE users_search MATCH " + bind(phrase) + ")"
}

// rankExpr returns the rank of a user as SQL, with pos the database's
// function that finds a string in another (1-based, 0 when absent).
func rankExpr(pos string, s *users.Search, bind func(any) string) string {
	return "(CASE WHEN " + pos + "(search_key, " + bind(s.Exact) + ") > 0 THEN 0 WHEN " +
		pos + "(search_key, " + bind(s.Prefix) + ") > 0 THEN 1 ELSE 2 END)"
}
