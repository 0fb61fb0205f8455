package usersql

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/usersd/usersd/internal/users"
)

// A search matches the search_key column (users.SearchKey): a user's
// folded fields, each between two users.SearchSep. Its results come in
// tiers, the users.RankExact matches first (a field equals the query: the
// key holds Search.Exact), then the users.RankPrefix ones (a field starts
// with it: Search.Prefix, and no field equals it), then the
// users.RankSubstring ones (the key holds Search.Folded, and no field
// starts with it); each tier in id order.
//
// SearchPage reads each tier in that order, and stops as soon as it has a
// page: a search never ranks every match to return the first few. A tier
// is read in the cheapest of these ways that has the page:
//
//   - walking the tenant's users in id order from the cursor (the
//     users_tenant_id_search index, on (tenant_id, id) with search_key and
//     state), a window of them at a time, testing each key:
//     the way for a common tier, a page of which lies in the first few
//     thousand users. Walks go on while they find enough of the page
//     (Dialect.Walks); the exact tier, whose matches are whole fields and
//     rare, is never walked;
//   - on Postgres, for the exact and prefix tiers, the first candidates in
//     id order from the B-trees of the folded fields alone (entries, not
//     rows), then checked (Dialect.SearchCandidates);
//   - through the store's index of the tier (Dialect.SearchTier), every
//     match read and sorted by id: the way for a rare tier, whose matches
//     are then few.
//
// The walks are bounded, so no search reads the whole tenant.

// SearchRows runs "SELECT <the user columns> " + from, binding args, and
// returns the users in the order it gives.
type SearchRows func(ctx context.Context, from string, args []any) ([]*users.User, error)

// SearchPage returns the page of a search (q.Search; q.Order is then
// users.OrderRank): q.Limit users after q.After, tier by tier (see above),
// reading each with rows.
func SearchPage(ctx context.Context, d Dialect, q users.ListQuery, rows SearchRows) ([]*users.User, error) {
	if q.Search == nil || q.Order.Field != users.OrderRank || q.Order.Desc {
		return nil, fmt.Errorf("usersql: a search page needs a search, in rank order")
	}
	rank, after := users.RankExact, ""
	if q.After != nil {
		rank, after = q.After.Rank, q.After.ID
	}
	var page []*users.User
	for ; rank <= users.RankSubstring && len(page) < q.Limit; rank++ {
		got, err := searchTier(ctx, d, q, rank, after, q.Limit-len(page), rows)
		if err != nil {
			return nil, err
		}
		page = append(page, got...)
		after = "" // the next tier is read from its start
	}
	return page, nil
}

// searchTier returns the first want users of the tier after the cursor.
func searchTier(ctx context.Context, d Dialect, q users.ListQuery, rank int, after string, want int, rows SearchRows) ([]*users.User, error) {
	read := func(from string, args []any, err error) ([]*users.User, error) {
		if err != nil {
			return nil, err
		}
		return rows(ctx, from, args)
	}
	var got []*users.User
	if rank != users.RankExact {
		// A walk, and more while the walks have found 1/Dialect.Walks of
		// the page or more, up to Walks windows in all: the tier is then
		// common enough that walking on costs less than reading every match
		// through the index. Each walk goes on from the last match.
		window := searchWindow(q.Limit)
		if d.SearchCandidates != nil && rank == users.RankPrefix {
			window /= 5 // the candidates of the index are cheap
		}
		var err error
		if got, err = read(searchWalk(d, q, rank, after, window, want)); err != nil {
			return nil, err
		}
		for walked, n := window, len(got); n < want && n*d.Walks >= want && walked < d.Walks*window; n = len(got) {
			// Twice the users that the density so far says the rest of
			// the page lies in.
			more := min(max((want-n)*walked*2/n, window), d.Walks*window-walked)
			next, err := read(searchWalk(d, q, rank, got[n-1].ID, more, want-n))
			if err != nil {
				return nil, err
			}
			got, walked = append(got, next...), walked+more
		}
		if len(got) >= want {
			return got, nil
		}
	}
	if d.SearchCandidates != nil && rank != users.RankSubstring {
		// The first of the tier's candidates in id order, from the index
		// alone, then checked.
		cands, err := read(searchCandidates(d, q, rank, after, want))
		if err != nil || len(cands) >= want {
			return cands, err
		}
	}
	// The walks held less than the page (or there were none), and so did
	// the candidates (they were all the tier's, or the checks left out
	// some): the index has the tier's every match after the cursor.
	return read(searchIndexed(d, q, rank, after, want))
}

// searchWindow returns how many users in id order a walk of a tier reads
// for a page of limit: a tier whose matches are at least 1 in 100 of the
// tenant's users fills its page from it.
func searchWindow(limit int) int { return min(max(100*limit, 2000), 20000) }

// searchWalk returns the statement that walks a window of the tenant's
// users after the cursor, in id order, and keeps those of the tier.
//
// Without a filter, the window is read from the keys alone (id,
// search_key and state, which the stores' users_tenant_id_search index
// covers), and only the users of the page from the table. The window's
// tenant is a range of one, in (tenant_id, id) order: to Postgres, which
// would otherwise take the primary key for the order by id and read rows,
// only that index has this order.
func searchWalk(d Dialect, q users.ListQuery, rank int, after string, window, limit int) (string, []any, error) {
	var b strings.Builder
	args, bind := binder(d)
	if len(q.Filter) == 0 {
		b.WriteString("FROM users")
		if err := where(&b, d, q, false, bind); err != nil {
			return "", nil, err
		}
		t := bind(q.Tenant)
		fmt.Fprintf(&b, " AND id IN (SELECT id FROM (SELECT id, search_key, state FROM users WHERE tenant_id >= %s AND tenant_id <= %s", t, t)
		if after != "" {
			fmt.Fprintf(&b, " AND id > %s", bind(after))
		}
		fmt.Fprintf(&b, " ORDER BY tenant_id, id LIMIT %s) AS walked WHERE %s", bind(window), walkCond(d, q.Search, rank, bind))
		if !q.ShowDeleted {
			fmt.Fprintf(&b, " AND state <> %s", bind(users.StateDeleted.String()))
		}
		fmt.Fprintf(&b, " ORDER BY id LIMIT %s)", bind(limit))
		return finishTier(&b, args, bind, "", limit)
	}
	b.WriteString("FROM (SELECT * FROM users WHERE tenant_id = ")
	b.WriteString(bind(q.Tenant))
	if after != "" {
		fmt.Fprintf(&b, " AND id > %s", bind(after))
	}
	fmt.Fprintf(&b, " ORDER BY id LIMIT %s) AS users", bind(window))
	if err := where(&b, d, q, false, bind); err != nil {
		return "", nil, err
	}
	fmt.Fprintf(&b, " AND %s", walkCond(d, q.Search, rank, bind))
	return finishTier(&b, args, bind, after, limit)
}

// walkCond returns the condition that a user's search key is of the tier.
func walkCond(d Dialect, s *users.Search, rank int, bind func(any) string) string {
	has := func(text string) string { return d.Position + "(search_key, " + bind(text) + ") > 0" }
	hasNot := func(text string) string { return d.Position + "(search_key, " + bind(text) + ") = 0" }
	switch rank {
	case users.RankPrefix:
		return has(s.Prefix) + " AND " + hasNot(s.Exact)
	case users.RankSubstring:
		return has(s.Folded) + " AND " + hasNot(s.Prefix)
	}
	return has(s.Exact)
}

// searchIndexed returns the statement that reads the tier, after the
// cursor, through the index of the store (Dialect.SearchTier).
//
// The tier's matches are read whole, then sorted (Dialect.Fence): a
// planner that underestimates how rare they are (Postgres does for
// conditions ORed over fields) would otherwise walk the tenant in id order
// until it found a page, all of it when there is none.
func searchIndexed(d Dialect, q users.ListQuery, rank int, after string, limit int) (string, []any, error) {
	var b strings.Builder
	args, bind := binder(d)
	from, cond := d.SearchTier(q.Search, rank, bind)
	b.WriteString("FROM (SELECT users.* FROM ")
	b.WriteString(from)
	if err := where(&b, d, q, false, bind); err != nil {
		return "", nil, err
	}
	fmt.Fprintf(&b, " AND %s", cond)
	if after != "" {
		fmt.Fprintf(&b, " AND id > %s", bind(after))
	}
	fmt.Fprintf(&b, "%s) AS users ORDER BY id LIMIT %s", d.Fence, bind(limit))
	return b.String(), *args, nil
}

// searchCandidates returns the statement that reads the first users of
// the tier after the cursor, in id order, among the first candidates
// that the store's index of the folded fields lists in id order
// (Dialect.SearchCandidates), each checked against the tier and q. A
// candidate costs an index entry, not a row, until it is among the first:
// this reads a tier of thousands of matches as fast as one of a few. The
// checks may leave out candidates (another tier's users, deleted ones,
// ones that do not pass q's filter); when fewer than the page are left,
// the caller reads the tier whole.
func searchCandidates(d Dialect, q users.ListQuery, rank int, after string, limit int) (string, []any, error) {
	var b strings.Builder
	args, bind := binder(d)
	b.WriteString("FROM users")
	if err := where(&b, d, q, false, bind); err != nil {
		return "", nil, err
	}
	fmt.Fprintf(&b, " AND id IN (%s) AND %s", d.SearchCandidates(q.Search, rank, q.Tenant, after, 2*limit+10, bind),
		walkCond(d, q.Search, rank, bind))
	return finishTier(&b, args, bind, after, limit)
}

// finishTier ends the statement of a walk or of candidates: after the
// cursor, in id order, at most limit users.
func finishTier(b *strings.Builder, args *[]any, bind func(any) string, after string, limit int) (string, []any, error) {
	if after != "" {
		fmt.Fprintf(b, " AND id > %s", bind(after))
	}
	fmt.Fprintf(b, " ORDER BY id LIMIT %s", bind(limit))
	return b.String(), *args, nil
}

// The columns of the fields that search matches, folded, that Postgres
// keeps beside search_key (generated from it) and indexes with a B-tree
// each, leading with the tenant: the index of the exact and prefix tiers.
var postgresSearchFields = [...]string{"search_email", "search_display_name", "search_given_name", "search_family_name", "search_external_id"}

// postgresContains matches with LIKE, which pg_trgm's GIN index
// (users_search_key_trgm) answers, the text's % _ and \ escaped.
func postgresContains(text string, bind func(any) string) string {
	esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(text)
	return "search_key LIKE " + bind("%"+esc+"%")
}

// postgresSearchTier reads the exact tier by equality and the prefix tier
// by a range on the B-trees of the folded fields, one index per field
// (the planner ORs their bitmaps), and the substring tier by the trigram
// index. Each condition is exact, with the other tiers' matches left out.
func postgresSearchTier(s *users.Search, rank int, bind func(any) string) (from, cond string) {
	if rank == users.RankSubstring {
		return "users", postgresContains(s.Folded, bind) + " AND strpos(search_key, " + bind(s.Prefix) + ") = 0"
	}
	cond = "(" + strings.Join(postgresFieldConds(s, rank, bind), " OR ") + ")"
	if rank == users.RankPrefix {
		cond += " AND strpos(search_key, " + bind(s.Prefix) + ") > 0 AND strpos(search_key, " + bind(s.Exact) + ") = 0"
	}
	return "users", cond
}

// postgresSearchCandidates lists the ids of the tenant's users after the
// cursor with a folded field equal to the query (the exact tier) or that
// starts with it (the prefix tier), the first k in id order, from the
// B-trees of the folded fields alone, whose entries end with the id.
func postgresSearchCandidates(s *users.Search, rank int, tenant, after string, k int, bind func(any) string) string {
	t := bind(tenant)
	var a string
	if after != "" {
		a = " AND id > " + bind(after)
	}
	var b strings.Builder
	b.WriteString("SELECT id FROM (")
	for i, c := range postgresFieldConds(s, rank, bind) {
		if i > 0 {
			b.WriteString(" UNION ") // a user once, whatever its fields that match
		}
		fmt.Fprintf(&b, "SELECT id FROM users WHERE tenant_id = %s AND %s%s", t, c, a)
	}
	fmt.Fprintf(&b, ") AS candidates ORDER BY id LIMIT %s", bind(k))
	return b.String()
}

// postgresFieldConds returns, for each folded field, the condition that
// it equals the query (the exact tier) or starts with it (the prefix
// tier), which its B-tree answers.
func postgresFieldConds(s *users.Search, rank int, bind func(any) string) []string {
	q := bind(s.Folded)
	var upper string
	if rank == users.RankPrefix {
		if end, ok := prefixEnd(s.Folded); ok {
			upper = bind(end)
		}
	}
	conds := make([]string, len(postgresSearchFields))
	for i, f := range postgresSearchFields {
		switch {
		case rank == users.RankExact:
			conds[i] = f + " = " + q
		case upper != "":
			conds[i] = f + " >= " + q + " AND " + f + " < " + upper
		default:
			conds[i] = f + " >= " + q
		}
	}
	return conds
}

// prefixEnd returns the least string greater than every string that
// starts with p, in bytewise (code point) order: p with its last
// character raised by one (a character that cannot be raised is dropped,
// and the one before raised). ok is false when there is none.
func prefixEnd(p string) (end string, ok bool) {
	for p != "" {
		r, size := utf8.DecodeLastRuneInString(p)
		p = p[:len(p)-size]
		switch {
		case r == utf8.MaxRune:
			continue
		case r == 0xD7FF: // the surrogates are no characters
			r = 0xE000
		default:
			r++
		}
		return p + string(r), true
	}
	return "", false
}

// sqliteContains matches with the FTS5 table users_search (trigram
// tokenizer), whose rowids are the users': the text is one phrase, which
// the trigram tokenizer matches as a substring.
func sqliteContains(text string, bind func(any) string) string {
	return "rowid IN (SELECT rowid FROM users_search WHERE users_search MATCH " + bind(ftsPhrase(text)) + ")"
}

// ftsPhrase returns text as one FTS5 phrase.
func ftsPhrase(text string) string { return `"` + strings.ReplaceAll(text, `"`, `""`) + `"` }

// sqliteSearchTier reads every tier through the FTS5 trigram index, whose
// trigrams span the separators: the exact tier is the phrase
// Search.Exact, the prefix tier Search.Prefix, the substring tier
// Search.Folded, each with the other tiers' matches left out. The FTS5
// matches drive the statement (CROSS JOIN keeps SQLite, which has no
// statistics here, from walking the tenant instead); instr checks each
// match as the walk does.
func sqliteSearchTier(s *users.Search, rank int, bind func(any) string) (from, cond string) {
	phrase, keep, drop := s.Exact, s.Exact, ""
	switch rank {
	case users.RankPrefix:
		phrase, keep, drop = s.Prefix, s.Prefix, s.Exact
	case users.RankSubstring:
		phrase, keep, drop = s.Folded, s.Folded, s.Prefix
	}
	from = "(SELECT rowid AS search_rowid FROM users_search WHERE users_search MATCH " + bind(ftsPhrase(phrase)) +
		") AS matched CROSS JOIN users ON users.rowid = matched.search_rowid"
	cond = "instr(search_key, " + bind(keep) + ") > 0"
	if drop != "" {
		cond += " AND instr(search_key, " + bind(drop) + ") = 0"
	}
	return from, cond
}
