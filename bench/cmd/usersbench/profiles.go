package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	msqlite "modernc.org/sqlite"

	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/bench/internal/load"
	"github.com/usersd/usersd/bench/internal/proc"
	"github.com/usersd/usersd/bench/internal/profsum"
	"github.com/usersd/usersd/bench/internal/report"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

// The profiles figure: opt.ProfileUsers users with profile fields (names
// with and without diacritics, an external id, a locale, a time zone and
// attributes) in one tenant of a fresh database, seeded through the v2
// import; then, one call at a time over HTTP, search by the first three
// letters of a family name, search by four letters from inside a name,
// LookupUser by external id, a filter on an attribute and the first page
// without either, each sample with another value drawn from the seeded
// users, alternately on usersd and as the same SQL statement run directly
// on the database; then the export of the whole tenant, over HTTP
// (NDJSON) and over gRPC, with the memory of the process that serves it.

// profileSeed seeds every draw of the figure: every run has the same
// names, users and queries.
const profileSeed = 20261208

// The figure's targets.
const (
	searchP99Target = 25.0    // ms, prefix and substring search
	lookupP99Target = 2.0     // ms
	exportTarget    = 100_000 // users/s, Postgres
)

// ---- Names ----

// part is a piece of a name as written and in ASCII (for the address).
type part struct{ s, a string }

var (
	nameOnsets = []string{"b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
		"ch", "sh", "th", "br", "cl", "dr", "fr", "gr", "kr", "st", "tr", "", ""}
	nameVowels     = []string{"a", "e", "i", "o", "u", "a", "e", "i", "o", "a", "y"}
	nameVowelPairs = []string{"ia", "ea", "ai", "au", "ie", "ou", "ei"}
	nameAccented   = []part{{"é", "e"}, {"á", "a"}, {"í", "i"}, {"ó", "o"}, {"ú", "u"}, {"ä", "a"}, {"ö", "o"}, {"ü", "u"}, {"ë", "e"}, {"å", "a"}, {"ã", "a"}, {"ê", "e"}, {"ï", "i"}, {"è", "e"}, {"à", "a"}}
	givenEndings   = []part{{"n", "n"}, {"l", "l"}, {"r", "r"}, {"s", "s"}, {"na", "na"}, {"la", "la"}, {"ne", "ne"}, {"o", "o"}, {"us", "us"}, {"an", "an"}, {"en", "en"}, {"el", "el"}, {"et", "et"}, {"is", "is"}, {"ine", "ine"}, {"ette", "ette"}, {"ric", "ric"}, {"ard", "ard"}, {"ia", "ia"}, {"ée", "ee"}, {"ça", "ca"}, {"ño", "no"}}
	familyEndings  = []part{{"son", "son"}, {"sen", "sen"}, {"ez", "ez"}, {"es", "es"}, {"ov", "ov"}, {"ova", "ova"}, {"ski", "ski"}, {"ska", "ska"}, {"berg", "berg"}, {"stein", "stein"}, {"mann", "mann"}, {"escu", "escu"}, {"elli", "elli"}, {"oni", "oni"}, {"ard", "ard"}, {"ier", "ier"}, {"ault", "ault"}, {"ley", "ley"}, {"ton", "ton"}, {"field", "field"}, {"wood", "wood"}, {"dóttir", "dottir"}, {"ić", "ic"}, {"ová", "ova"}, {"ák", "ak"}, {"ček", "cek"}, {"šek", "sek"}, {"ño", "no"}, {"ança", "anca"}, {"eau", "eau"}, {"ens", "ens"}, {"ers", "ers"}, {"ink", "ink"}, {"off", "off"}, {"aki", "aki"}, {"moto", "moto"}, {"yama", "yama"}, {"ani", "ani"}, {"ović", "ovic"}, {"ström", "strom"}, {"gård", "gard"}, {"ler", "ler"}}

	departments = []string{"engineering", "sales", "support", "operations", "marketing", "finance", "product", "design",
		"research", "it", "security", "legal", "hr", "data", "logistics", "procurement", "quality", "facilities",
		"communications", "strategy"}
	domains = []string{"example.com", "example.org", "example.net", "corp.example", "mail.example"}
	// locales and the time zones that go with them.
	profileLocales = [][2]string{{"en-US", "America/New_York"}, {"en-GB", "Europe/London"}, {"de-DE", "Europe/Berlin"},
		{"fr-FR", "Europe/Paris"}, {"es-ES", "Europe/Madrid"}, {"pt-BR", "America/Sao_Paulo"}, {"nl-NL", "Europe/Amsterdam"},
		{"sv-SE", "Europe/Stockholm"}, {"pl-PL", "Europe/Warsaw"}, {"cs-CZ", "Europe/Prague"}, {"it-IT", "Europe/Rome"},
		{"ja-JP", "Asia/Tokyo"}, {"en-US", "America/Los_Angeles"}, {"en-US", "America/Chicago"}}
)

// The sizes of the name lists.
const (
	givenNames  = 500
	familyNames = 2000
)

// nameLists are the given and family names users draw from, each with
// the cumulative weights of a long-tailed draw (the r-th name weighs
// 1/(r+k): the most common family name is about 0.5% of the users, the
// most common given name 2.5%, as in real directories), and departments
// likewise (the largest 19%, the smallest 2%).
type nameLists struct {
	given, family       []part
	givenCum, familyCum []float64
	departmentCum       []float64
}

var profileNames = sync.OnceValue(func() *nameLists {
	r := rand.New(rand.NewPCG(profileSeed, 0))
	l := &nameLists{
		given:  uniqueNames(r, givenNames, 3, 10, givenName),
		family: uniqueNames(r, familyNames, 4, 14, familyName),
	}
	l.givenCum = cumulative(givenNames, 10)
	l.familyCum = cumulative(familyNames, 50)
	l.departmentCum = cumulative(len(departments), 2)
	return l
})

// uniqueNames makes n different names with gen, of lo to hi letters.
func uniqueNames(r *rand.Rand, n, lo, hi int, gen func(*rand.Rand) part) []part {
	seen := map[string]bool{}
	var out []part
	for len(out) < n {
		p := gen(r)
		if k := utf8.RuneCountInString(p.s); k < lo || k > hi || seen[p.s] {
			continue
		}
		seen[p.s] = true
		out = append(out, p)
	}
	return out
}

// syllable is an onset (none only at the start of a name) and a vowel,
// one in ten a pair of vowels, a few with a diacritic.
func syllable(r *rand.Rand, first bool) part {
	on := nameOnsets[r.IntN(len(nameOnsets))]
	for on == "" && !first {
		on = nameOnsets[r.IntN(len(nameOnsets))]
	}
	switch n := r.IntN(100); {
	case n < 7:
		v := nameAccented[r.IntN(len(nameAccented))]
		return part{on + v.s, on + v.a}
	case n < 17:
		v := nameVowelPairs[r.IntN(len(nameVowelPairs))]
		return part{on + v, on + v}
	}
	v := nameVowels[r.IntN(len(nameVowels))]
	return part{on + v, on + v}
}

func join(ps ...part) part {
	var p part
	for _, q := range ps {
		p.s += q.s
		p.a += q.a
	}
	return capitalize(p)
}

func capitalize(p part) part {
	c, n := utf8.DecodeRuneInString(p.s)
	p.s = string(unicode.ToUpper(c)) + p.s[n:]
	if p.a != "" {
		p.a = strings.ToUpper(p.a[:1]) + p.a[1:]
	}
	return p
}

func givenName(r *rand.Rand) part {
	ps := []part{syllable(r, true), syllable(r, false)}
	if r.IntN(10) < 3 {
		ps = append(ps, syllable(r, false))
	}
	if r.IntN(10) < 6 {
		ps = append(ps, givenEndings[r.IntN(len(givenEndings))])
	}
	return join(ps...)
}

func familyName(r *rand.Rand) part {
	if r.IntN(100) < 65 {
		ps := []part{syllable(r, true)}
		if r.IntN(2) == 0 {
			ps = append(ps, syllable(r, false))
		}
		return join(append(ps, familyEndings[r.IntN(len(familyEndings))])...)
	}
	ps := []part{syllable(r, true), syllable(r, false)}
	if r.IntN(3) == 0 {
		ps = append(ps, syllable(r, false))
	}
	return join(append(ps, givenEndings[r.IntN(len(givenEndings))])...)
}

// cumulative returns the cumulative weights of n items, the r-th (from 0)
// weighing 1/(r+k), normalised to end at 1.
func cumulative(n int, k float64) []float64 {
	c := make([]float64, n)
	sum := 0.0
	for i := range c {
		sum += 1 / (float64(i) + k)
		c[i] = sum
	}
	for i := range c {
		c[i] /= sum
	}
	return c
}

// pick draws an index by the cumulative weights.
func pick(r *rand.Rand, cum []float64) int {
	return min(sort.SearchFloat64s(cum, r.Float64()), len(cum)-1)
}

// profileUser is a user of the import's JSON, with its profile.
type profileUser struct {
	Email       string       `json:"email"`
	DisplayName string       `json:"displayName"`
	GivenName   string       `json:"givenName"`
	FamilyName  string       `json:"familyName"`
	ExternalID  string       `json:"externalId"`
	Locale      string       `json:"locale"`
	TimeZone    string       `json:"timeZone"`
	State       string       `json:"state,omitempty"`
	Attributes  profileAttrs `json:"attributes"`
}

type profileAttrs struct {
	Department string `json:"department"`
	Level      int    `json:"level"`
	Remote     bool   `json:"remote"`
}

// profileUserAt returns the i-th user of the figure, the same in every
// run: names drawn from the lists, an address made of them and i, the
// external id emp-i, one in ten suspended.
func profileUserAt(i int) profileUser {
	l := profileNames()
	r := rand.New(rand.NewPCG(profileSeed, uint64(i)+1))
	g, f := l.given[pick(r, l.givenCum)], l.family[pick(r, l.familyCum)]
	loc := profileLocales[r.IntN(len(profileLocales))]
	u := profileUser{
		Email:       fmt.Sprintf("%s.%s%d@%s", strings.ToLower(g.a), strings.ToLower(f.a), i, domains[r.IntN(len(domains))]),
		DisplayName: g.s + " " + f.s,
		GivenName:   g.s,
		FamilyName:  f.s,
		ExternalID:  fmt.Sprintf("emp-%07d", i),
		Locale:      loc[0],
		TimeZone:    loc[1],
		Attributes:  profileAttrs{Department: departments[pick(r, l.departmentCum)], Level: 1 + r.IntN(10), Remote: r.IntN(10) < 3},
	}
	if i%10 == 9 {
		u.State = "STATE_SUSPENDED"
	}
	return u
}

// ---- The reads and their SQL ----

// The SQL of usersd's stores for the figure's reads, word for word (as
// bench/cmd/bareusers copies its own): internal/users/usersql.ListClause
// and LiveTenant, the stores' userColumns and LookupUser's statements.
// The first list page and the attribute filter are ordered by create_time.
// A search is several statements, one tier after the other, which
// usersql.SearchPage itself makes and sequences for the bare side (this
// module may import usersd's internal packages): the bare figure is then
// that of the same statements without usersd around them. The check that
// the bare statement returns the users usersd returns, sample by sample,
// catches a copy that no longer matches.
const profileColumns = "tenant_id, id, email, display_name, state, labels, create_time, update_time, delete_time, revision, " +
	"external_id, given_name, family_name, phone_number, email_verified, phone_verified, locale, time_zone, attributes"

// liveTenantSQL is usersql.LiveTenant.
func liveTenantSQL(p string) string {
	return "(SELECT tenants.state FROM tenants WHERE tenants.id = " + p + ") = 'ACTIVE'"
}

// ph is the n-th placeholder of the store.
func ph(store string, n int) string {
	if store == "sqlite" {
		return "?" + strconv.Itoa(n)
	}
	return "$" + strconv.Itoa(n)
}

// listWhere is usersql.where's start for a tenant's users that are not
// deleted: the tenant is $1, "DELETED" $2.
func listWhere(store string) string {
	return " WHERE tenant_id = " + ph(store, 1) + " AND " + liveTenantSQL(ph(store, 1)) + " AND state <> " + ph(store, 2)
}

// A read's statement: its text after "SELECT <columns> FROM users " and
// its arguments; count is the statement that counts its matches, "" for
// none.
type statement struct {
	sql  string
	args []any
	// search, when set, is the search the statements of
	// usersql.SearchPage read, in place of sql.
	search *users.ListQuery
	count  string
	cargs  []any
}

// searchStatement is ListUsers' first page of 50 (limit 51) for the query
// q, on the store: the statements of usersql.SearchPage, the tiers read
// one after the other (see there), which the bare side runs itself; count
// counts every match, through the store's index (usersql.WhereClause).
func searchStatement(store, tenant, q string) statement {
	sr, err := users.ParseSearch(q)
	if err != nil {
		panic(fmt.Sprintf("search %q: %v", q, err)) // the values are drawn from names of 3 letters and more
	}
	lq := users.ListQuery{Tenant: tenant, Search: sr, Order: users.Order{Field: users.OrderRank}, Limit: 51}
	d := usersql.Postgres
	if store == "sqlite" {
		d = usersql.SQLite
	}
	where, args, err := usersql.WhereClause(d, lq)
	if err != nil {
		panic(fmt.Sprintf("search %q: %v", q, err))
	}
	return statement{search: &lq, count: "SELECT count(*) FROM users" + where, cargs: args}
}

// attributeStatement is ListUsers' first page of 50 with the filter
// attributes.department = "dept".
func attributeStatement(store, tenant, dept string) statement {
	var cond string
	var args []any
	if store == "sqlite" {
		cond = "(json_type(attributes, ?3) IN ('text') AND json_extract(attributes, ?3) = ?4)"
		args = []any{tenant, "DELETED", `$."department"`, dept}
	} else {
		doc, _ := json.Marshal(map[string]string{"department": dept})
		cond = "attributes @> $3::jsonb"
		args = []any{tenant, "DELETED", string(doc)}
	}
	where := listWhere(store) + " AND " + cond
	return statement{
		sql:   "SELECT " + profileColumns + " FROM users " + where + " ORDER BY create_time ASC, id ASC LIMIT " + ph(store, len(args)+1),
		args:  append(slices.Clone(args), 51),
		count: "SELECT count(*) FROM users" + where,
		cargs: args,
	}
}

// firstPageStatement is ListUsers' first page of 50, no filter.
func firstPageStatement(store, tenant string) statement {
	return statement{
		sql:  "SELECT " + profileColumns + " FROM users " + listWhere(store) + " ORDER BY create_time ASC, id ASC LIMIT " + ph(store, 3),
		args: []any{tenant, "DELETED", 51},
	}
}

// lookupStatement is LookupUser's.
func lookupStatement(store, tenant, ext string) statement {
	return statement{
		sql: "SELECT " + profileColumns + " FROM users WHERE tenant_id = " + ph(store, 1) + " AND external_id = " + ph(store, 2) +
			" AND state <> 'DELETED' AND " + liveTenantSQL(ph(store, 1)),
		args: []any{tenant, ext},
	}
}

// profileRead is one kind of read of the figure.
type profileRead struct {
	kind, name string
	target     float64 // p99 ms; 0: none
	// value draws the read's value from the seeded users.
	value func(r *rand.Rand, users int) string
	// path is usersd's request, after the host.
	path func(tenant, v string) string
	stmt func(store, tenant, v string) statement
}

var profileReads = []profileRead{
	{
		kind: "prefix", name: "search: first 3 letters of a family name", target: searchP99Target,
		value: func(r *rand.Rand, users int) string {
			f := []rune(profileUserAt(r.IntN(users)).FamilyName)
			return string(f[:3])
		},
		path: func(t, v string) string { return "/v2/tenants/" + t + "/users?" + url.Values{"query": {v}}.Encode() },
		stmt: searchStatement,
	},
	{
		kind: "substring", name: "search: 4 letters from inside a name", target: searchP99Target,
		value: func(r *rand.Rand, users int) string {
			for {
				u := profileUserAt(r.IntN(users))
				name := []rune(u.FamilyName)
				if r.IntN(3) == 0 || len(name) < 6 {
					name = []rune(u.GivenName)
				}
				if len(name) < 6 {
					continue
				}
				at := 1 + r.IntN(len(name)-5) // neither the first letter nor the last
				return string(name[at : at+4])
			}
		},
		path: func(t, v string) string { return "/v2/tenants/" + t + "/users?" + url.Values{"query": {v}}.Encode() },
		stmt: searchStatement,
	},
	{
		kind: "lookup", name: "LookupUser by external id", target: lookupP99Target,
		value: func(r *rand.Rand, users int) string { return profileUserAt(r.IntN(users)).ExternalID },
		path: func(t, v string) string {
			return "/v2/tenants/" + t + "/users:lookup?" + url.Values{"externalId": {v}}.Encode()
		},
		stmt: lookupStatement,
	},
	{
		kind: "attribute", name: `filter attributes.department = "…", first page`,
		value: func(r *rand.Rand, users int) string { return profileUserAt(r.IntN(users)).Attributes.Department },
		path: func(t, v string) string {
			return "/v2/tenants/" + t + "/users?" + url.Values{"filter": {`attributes.department = "` + v + `"`}}.Encode()
		},
		stmt: attributeStatement,
	},
	{
		kind: "list", name: "first page, no query or filter (reference)",
		value: func(*rand.Rand, int) string { return "" },
		path:  func(t, _ string) string { return "/v2/tenants/" + t + "/users" },
		stmt:  func(store, t, _ string) statement { return firstPageStatement(store, t) },
	},
}

// ---- The bare statements ----

// bareDB runs the statements directly on the database, as the stores
// would: the Postgres pool with pgx's defaults (prepared and cached
// statements), the SQLite readers with usersd's pragmas.
type bareDB interface {
	// ids runs a read and scans every column of every row; it returns
	// the users' ids in order.
	ids(ctx context.Context, s statement) ([]string, error)
	count(ctx context.Context, s statement) (int, error)
	// plan returns the plan of s, after running warm (Postgres: the
	// prepared statement's, as a pooled connection would have it).
	plan(ctx context.Context, s statement, warm []statement) (string, error)
	close()
}

type pgBare struct {
	url  string
	pool *pgxpool.Pool
}

func (b *pgBare) close() { b.pool.Close() }

func (b *pgBare) ids(ctx context.Context, s statement) ([]string, error) {
	if s.search != nil {
		// As the store runs them: unnamed statements, planned for their
		// values.
		return searchIDs(ctx, usersql.Postgres, s, func(ctx context.Context, sql string, args []any) ([]string, error) {
			return b.ids(ctx, statement{sql: sql, args: append([]any{pgx.QueryExecModeCacheDescribe}, args...)})
		})
	}
	rows, err := b.pool.Query(ctx, s.sql, s.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var (
		tenant, email, display, state, given, family, phone, locale, tz string
		id                                                              pgtype.UUID
		labels, attrs                                                   []byte
		created, updated                                                time.Time
		deleted                                                         pgtype.Timestamptz
		revision                                                        int64
		ext                                                             *string
		ev, pv                                                          bool
		out                                                             []string
	)
	for rows.Next() {
		if err := rows.Scan(&tenant, &id, &email, &display, &state, &labels, &created, &updated, &deleted, &revision,
			&ext, &given, &family, &phone, &ev, &pv, &locale, &tz, &attrs); err != nil {
			return nil, err
		}
		out = append(out, uuid.UUID(id.Bytes).String())
	}
	return out, rows.Err()
}

func (b *pgBare) count(ctx context.Context, s statement) (n int, err error) {
	err = b.pool.QueryRow(ctx, s.count, s.cargs...).Scan(&n)
	return n, err
}

// plan prepares s on a connection of its own, executes it with the
// arguments of warm (five or more: Postgres then plans it once for all
// arguments if that looks no worse), and returns EXPLAIN (ANALYZE,
// BUFFERS) of its execution with s's arguments.
func (b *pgBare) plan(ctx context.Context, s statement, warm []statement) (string, error) {
	if s.search != nil {
		return searchPlans(ctx, usersql.Postgres, s, b.ids, func(ctx context.Context, sql string, args []any) (string, error) {
			rows, err := b.pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+sql, append([]any{pgx.QueryExecModeCacheDescribe}, args...)...)
			if err != nil {
				return "", err
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			return strings.Join(lines, "\n"), err
		})
	}
	c, err := pgx.Connect(ctx, b.url)
	if err != nil {
		return "", err
	}
	defer c.Close(context.Background())
	simple := pgx.QueryExecModeSimpleProtocol
	if _, err := c.Exec(ctx, "PREPARE bench_plan AS "+s.sql, simple); err != nil {
		return "", err
	}
	for _, w := range warm {
		if _, err := c.Exec(ctx, "EXECUTE bench_plan("+literals(w.args)+")", simple); err != nil {
			return "", err
		}
	}
	rows, err := c.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_plan("+literals(s.args)+")", simple)
	if err != nil {
		return "", err
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return strings.Join(lines, "\n"), err
}

// literals spells the arguments as SQL literals.
func literals(args []any) string {
	var ls []string
	for _, a := range args {
		switch v := a.(type) {
		case string:
			ls = append(ls, "'"+strings.ReplaceAll(v, "'", "''")+"'")
		case int:
			ls = append(ls, strconv.Itoa(v))
		default:
			ls = append(ls, fmt.Sprintf("'%v'", v))
		}
	}
	return strings.Join(ls, ", ")
}

type sqliteBare struct{ db *sql.DB }

func (b *sqliteBare) close() { b.db.Close() }

func (b *sqliteBare) ids(ctx context.Context, s statement) ([]string, error) {
	if s.search != nil {
		return searchIDs(ctx, usersql.SQLite, s, func(ctx context.Context, sql string, args []any) ([]string, error) {
			return b.ids(ctx, statement{sql: sql, args: args})
		})
	}
	rows, err := b.db.QueryContext(ctx, s.sql, s.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var (
		vals [19]any
		dest = make([]any, len(vals))
		out  []string
	)
	for i := range vals {
		dest[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		id, _ := vals[1].(string)
		out = append(out, id)
	}
	return out, rows.Err()
}

func (b *sqliteBare) count(ctx context.Context, s statement) (n int, err error) {
	err = b.db.QueryRowContext(ctx, s.count, s.cargs...).Scan(&n)
	return n, err
}

func (b *sqliteBare) plan(ctx context.Context, s statement, _ []statement) (string, error) {
	if s.search != nil {
		return searchPlans(ctx, usersql.SQLite, s, b.ids, func(ctx context.Context, sql string, args []any) (string, error) {
			return b.plan(ctx, statement{sql: sql, args: args}, nil)
		})
	}
	rows, err := b.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+s.sql, s.args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	depth := map[int]int{}
	var lines []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			return "", err
		}
		depth[id] = depth[parent] + 1
		lines = append(lines, strings.Repeat("  ", depth[id]-1)+detail)
	}
	return strings.Join(lines, "\n"), rows.Err()
}

// searchIDs runs the statements of usersql.SearchPage for s.search with
// run, which returns the ids of a statement's rows, and returns the ids
// of the page.
func searchIDs(ctx context.Context, d usersql.Dialect, s statement, run func(ctx context.Context, sql string, args []any) ([]string, error)) ([]string, error) {
	page, err := usersql.SearchPage(ctx, d, *s.search, func(ctx context.Context, from string, args []any) ([]*users.User, error) {
		ids, err := run(ctx, "SELECT "+profileColumns+" "+from, args)
		us := make([]*users.User, len(ids))
		for i, id := range ids {
			us[i] = &users.User{ID: id}
		}
		return us, err
	})
	ids := make([]string, len(page))
	for i, u := range page {
		ids[i] = u.ID
	}
	return ids, err
}

// searchPlans returns the plans (from explain) of the statements that
// usersql.SearchPage runs for s.search, each run with ids too, which
// decide the statements that follow.
func searchPlans(ctx context.Context, d usersql.Dialect, s statement, ids func(context.Context, statement) ([]string, error),
	explain func(ctx context.Context, sql string, args []any) (string, error)) (string, error) {
	var plans []string
	_, err := searchIDs(ctx, d, s, func(ctx context.Context, sql string, args []any) ([]string, error) {
		p, err := explain(ctx, sql, args)
		if err != nil {
			return nil, err
		}
		plans = append(plans, strings.ReplaceAll(sql, users.SearchSep, "\\x1f")+"\n"+p)
		return ids(ctx, statement{sql: sql, args: args})
	})
	return strings.Join(plans, "\n\n"), err
}

// openBare opens the bare side on st's database.
func openBare(ctx context.Context, st *store) (bareDB, error) {
	if st.name != "sqlite" {
		pool, err := pgxpool.New(ctx, st.url)
		if err != nil {
			return nil, err
		}
		return &pgBare{url: st.url, pool: pool}, nil
	}
	abs, err := filepath.Abs(strings.TrimPrefix(st.url, "sqlite:"))
	if err != nil {
		return nil, err
	}
	// usersd's readers: read-only, its pragmas, GOMAXPROCS connections
	// (at least 4).
	c, err := msqlite.NewConnector("file:" + abs + "?mode=ro&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(c)
	n := max(4, runtime.GOMAXPROCS(0))
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	return &sqliteBare{db: db}, db.PingContext(ctx)
}

// ---- The phase ----

// profiles takes the profiles figure on every store, each on a database
// of its own.
func (h *harness) profiles(ctx context.Context) error {
	h.res.Config.ProfileUsers = h.opt.ProfileUsers
	for _, st := range h.stores {
		if err := h.profilesOn(ctx, st.name); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
	}
	return nil
}

func (h *harness) profilesOn(ctx context.Context, storeName string) (err error) {
	st, err := h.newStore(ctx, storeName, "_prof")
	if err != nil {
		return err
	}
	if st.dbName != "" {
		defer func() {
			if h.opt.Keep {
				h.logf("  kept database %s (-keep); drop it when done", st.dbName)
				return
			}
			h.dropDatabase(st.dbName)
		}()
	}
	tenant := "bench-" + h.nonce + "-profiles"
	fig := &report.ProfileSearch{Store: st.name, Tenant: tenant, Users: h.opt.ProfileUsers}
	// What was measured is reported, also when a later step fails.
	defer func() { h.res.ProfileSearch = append(h.res.ProfileSearch, *fig) }()

	if err := h.seedProfiles(ctx, st, tenant, fig); err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	if st.name == "postgres" {
		// As the scale figure after its growth: the statistics and the
		// visibility map of a table that autovacuum would have visited.
		c, err := pgx.Connect(ctx, st.url)
		if err != nil {
			return err
		}
		_, err = c.Exec(ctx, "VACUUM ANALYZE users")
		c.Close(context.Background())
		if err != nil {
			return err
		}
	}

	srv, err := h.startServer(ctx, st, report.ServerUsersd)
	if err != nil {
		return err
	}
	defer func() { srv.stop() }()
	bare, err := openBare(ctx, st)
	if err != nil {
		return err
	}
	defer bare.close()
	if fig.Idle, _, fig.IdleOK, err = proc.WaitIdle(ctx, h.opt.MinIdle, h.opt.IdleWait); err != nil {
		return err
	}
	fig.LoadAvg = proc.LoadAvg()
	h.logf("  reads: machine %.0f%% idle (load %.1f), %d samples each", fig.Idle*100, fig.LoadAvg, h.opt.PageSamples)
	for k, read := range profileReads {
		q, err := h.timeProfileRead(ctx, st, srv, bare, tenant, k, read)
		if err != nil {
			return fmt.Errorf("%s: %w", read.kind, err)
		}
		fig.Queries = append(fig.Queries, q)
		h.logf("  %-9s usersd p50 %6.2f ms p99 %6.2f ms | bare SQL p50 %6.2f ms p99 %6.2f ms | × %.2f / %.2f | %.1f users a call, matches median %d, most %d%s",
			q.Kind, q.P50ms, q.P99ms, q.BareP50ms, q.BareP99ms, q.RatioP50, q.RatioP99, q.Returned, q.MatchesP50, q.MatchesMax, mismatchNote(q))
	}
	srv.stop()

	// Each export on a usersd of its own, so that its VmHWM is the
	// export's.
	for _, api := range []string{"http", "grpc"} {
		e, err := h.timeExport(ctx, st, tenant, api)
		if err != nil {
			return err
		}
		fig.Exports = append(fig.Exports, e)
		h.logf("  %s", exportLine(e))
		if api == "http" && e.Error == "" && e.UsersPerSec > 0 {
			// Where the export's time goes: a CPU profile of another one,
			// over most of its length.
			secs := min(max(1, int(float64(e.Want)/e.UsersPerSec)-1), 10)
			p, err := h.profileExport(ctx, st, tenant, secs)
			if err != nil {
				return fmt.Errorf("profiling the export: %w", err)
			}
			fig.ExportProfile = p
			h.logf("  CPU profile of an HTTP export (%ds): %s", secs, shares(p.Components))
		}
	}
	return nil
}

// profileExport takes a CPU profile of a usersd started for it, for secs
// from the start of an HTTP export of the tenant, and keeps it next to
// the results.
func (h *harness) profileExport(ctx context.Context, st *store, tenant string, secs int) (*report.Profile, error) {
	srv, err := h.startServer(ctx, st, report.ServerUsersd)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	file := filepath.Join(h.opt.Out, fmt.Sprintf("%s-export-%s-http.pprof", h.res.Started.Format("20060102-150405"), st.name))
	profiled := make(chan error, 1)
	go func() {
		profiled <- fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", srv.adminAddr, secs), file)
	}()
	var e report.Export
	if err := errors.Join(h.exportHTTP(ctx, srv, tenant, time.Now(), &e), <-profiled); err != nil {
		return nil, err
	}
	p := &report.Profile{Store: st.name, API: "http", Call: "ExportUsers", File: filepath.Base(file), Seconds: secs}
	if p.Top, err = pprofTop(ctx, file, false); err != nil {
		return nil, err
	}
	if p.TopCum, err = pprofTop(ctx, file, true); err != nil {
		return nil, err
	}
	ss, err := profsum.Summarise(file, "cpu")
	if err != nil {
		return nil, err
	}
	for _, sh := range ss {
		p.Components = append(p.Components, report.Share(sh))
	}
	return p, nil
}

func mismatchNote(q report.ProfileQuery) string {
	if q.Mismatches == 0 && q.Errors == 0 {
		return ""
	}
	return fmt.Sprintf("  (%d samples returned other users than the bare statement, %d errors)", q.Mismatches, q.Errors)
}

// seedProfiles creates the tenant and imports opt.ProfileUsers users into
// it, importSize per request, seedImports at a time.
func (h *harness) seedProfiles(ctx context.Context, st *store, tenant string, fig *report.ProfileSearch) error {
	srv, err := h.startServer(ctx, st, report.ServerUsersd)
	if err != nil {
		return err
	}
	defer srv.stop()
	if err := h.post(ctx, srv, "/v2/tenants?tenantId="+tenant, `{"displayName":"Bench profiles"}`, http.StatusCreated); err != nil {
		return err
	}
	n := h.opt.ProfileUsers
	h.logf("profiles (%s): %d users with profiles in tenant %s, through POST /v2/tenants/{tenant}/users:import, %d at a time", st.name, n, tenant, seedImports)
	start := time.Now()
	var (
		mu   sync.Mutex
		done int
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(seedImports)
	for first := 0; first < n; first += importSize {
		g.Go(func() error {
			rows := make([]profileUser, min(importSize, n-first))
			for i := range rows {
				rows[i] = profileUserAt(first + i)
			}
			_, err := h.importRows(gctx, srv, st, "/v2/tenants/"+tenant+"/users:import", fmt.Sprintf("bench-%s-p%d", h.nonce, first), rows, len(rows))
			if err != nil {
				return fmt.Errorf("users %d…: %w", first, err)
			}
			mu.Lock()
			done += len(rows)
			if done%100_000 == 0 || done == n {
				h.logf("  %d users in %s", done, time.Since(start).Round(time.Second))
			}
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	st.users = n
	fig.SeedSeconds = time.Since(start).Seconds()
	fig.SeedPerSec = float64(n) / fig.SeedSeconds
	h.logf("  seeded in %.0f s, %.0f users/s", fig.SeedSeconds, fig.SeedPerSec)
	return nil
}

// timeProfileRead times read opt.PageSamples times (after five calls that
// warm the path up), each with another value, on usersd and on the bare
// statement alternately (which goes first alternates too), and checks
// that both return the same users.
func (h *harness) timeProfileRead(ctx context.Context, st *store, srv *server, bare bareDB, tenant string, k int, read profileRead) (report.ProfileQuery, error) {
	const warm = 5
	n := h.opt.PageSamples
	q := report.ProfileQuery{Kind: read.kind, Name: read.name, Samples: n}
	r := rand.New(rand.NewPCG(profileSeed, 1<<32+uint64(k)))
	values := make([]string, n+warm)
	for i := range values {
		values[i] = read.value(r, h.opt.ProfileUsers)
	}
	q.Example = "GET " + read.path(tenant, values[warm])
	var (
		lat, bareLat []time.Duration
		returned     int
		slowest      = -1
	)
	for i, v := range values {
		s := read.stmt(st.name, tenant, v)
		var (
			got, want []string
			d, bd     time.Duration
			err, berr error
		)
		runUsersd := func() { got, d, err = h.profileCall(ctx, srv, read.path(tenant, v)) }
		runBare := func() {
			t0 := time.Now()
			want, berr = bare.ids(ctx, s)
			bd = time.Since(t0)
		}
		if i%2 == 0 {
			runUsersd()
			runBare()
		} else {
			runBare()
			runUsersd()
		}
		if berr != nil {
			return q, fmt.Errorf("bare statement (%q): %w", v, berr)
		}
		if err != nil {
			if ctx.Err() != nil {
				return q, ctx.Err()
			}
			q.Errors++
			if q.Errors > n/10 {
				return q, fmt.Errorf("%q: %w", v, err)
			}
			continue
		}
		// The statements read one user more than a page, to know
		// whether there is a next one.
		if !slices.Equal(got, want[:min(len(want), 50)]) {
			q.Mismatches++
		}
		if i < warm {
			continue
		}
		lat, bareLat = append(lat, d), append(bareLat, bd)
		returned += len(got)
		if slowest < 0 || d > lat[slowest] {
			slowest = len(lat) - 1
		}
	}
	if len(lat) == 0 {
		return q, errors.New("no call succeeded")
	}
	// The plan of the slowest sample, after the statement ran with five
	// other values.
	slowValue := values[warm+slowest]
	q.SlowestArg, q.SlowestMs = slowValue, msf(lat[slowest])
	var others []statement
	for _, v := range values[:warm+1] {
		others = append(others, read.stmt(st.name, tenant, v))
	}
	plan, err := bare.plan(ctx, read.stmt(st.name, tenant, slowValue), others)
	if err != nil {
		q.Plan = "(no plan: " + err.Error() + ")"
	} else {
		q.Plan = plan
	}
	// How many users each value matches, counted apart (once a value: a
	// count reads every match, and on SQLite every user for a filter on
	// an attribute).
	if read.stmt(st.name, tenant, values[0]).count != "" {
		var matches []int
		counted := map[string]int{}
		for _, v := range values[warm:] {
			c, ok := counted[v]
			if !ok {
				if c, err = bare.count(ctx, read.stmt(st.name, tenant, v)); err != nil {
					return q, fmt.Errorf("count (%q): %w", v, err)
				}
				counted[v] = c
			}
			matches = append(matches, c)
		}
		slices.Sort(matches)
		q.MatchesP50, q.MatchesMax = matches[len(matches)/2], matches[len(matches)-1]
	}
	q.Returned = float64(returned) / float64(len(lat))
	slices.Sort(lat)
	slices.Sort(bareLat)
	q.P50ms, q.P99ms = msf(load.Percentile(lat, 50)), msf(load.Percentile(lat, 99))
	q.BareP50ms, q.BareP99ms = msf(load.Percentile(bareLat, 50)), msf(load.Percentile(bareLat, 99))
	if q.BareP50ms > 0 && q.BareP99ms > 0 {
		q.RatioP50, q.RatioP99 = q.P50ms/q.BareP50ms, q.P99ms/q.BareP99ms
	}
	return q, nil
}

// profileCall sends GET path to usersd and returns the ids of the users
// in the answer (a page's, or LookupUser's one) and the time to the end
// of the body.
func (h *harness) profileCall(ctx context.Context, srv *server, path string) ([]string, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+srv.httpAddr+path, nil)
	if err != nil {
		return nil, 0, err
	}
	t0 := time.Now()
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	if err != nil {
		return nil, d, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, d, fmt.Errorf("GET %s: status %d: %.300s", path, resp.StatusCode, body)
	}
	var page struct {
		Name  string `json:"name"`
		Users []struct {
			Name string `json:"name"`
		} `json:"users"`
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, d, fmt.Errorf("GET %s: %w", path, err)
	}
	id := func(name string) string { return name[strings.LastIndexByte(name, '/')+1:] }
	if page.Name != "" {
		return []string{id(page.Name)}, d, nil
	}
	ids := make([]string, len(page.Users))
	for i, u := range page.Users {
		ids[i] = id(u.Name)
	}
	return ids, d, nil
}

// timeExport exports the tenant over api (http: NDJSON; grpc:
// ExportUsers) from a usersd started for it, counts the users received,
// and samples the process's memory every 10 ms meanwhile. The usersd has
// the harness's --request-timeout=30s (usersd's default), which exports
// are exempt from: an export cut off by it fails the count.
func (h *harness) timeExport(ctx context.Context, st *store, tenant, api string) (report.Export, error) {
	e := report.Export{Store: st.name, API: api, Want: st.users}
	srv, err := h.startServer(ctx, st, report.ServerUsersd)
	if err != nil {
		return e, err
	}
	defer srv.stop()
	pid := srv.p.Pid()
	if m, err := proc.Memory(pid); err == nil {
		e.RSSBeforeKiB = m.RSS
	}
	cpu0, _ := proc.CPU(pid)
	stop := make(chan struct{})
	sampled := make(chan int64)
	go func() {
		var peak int64
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if m, err := proc.Memory(pid); err == nil {
				peak = max(peak, m.RSS)
			}
			select {
			case <-stop:
				sampled <- peak
				return
			case <-t.C:
			}
		}
	}()
	start := time.Now()
	var xerr error
	switch api {
	case "http":
		xerr = h.exportHTTP(ctx, srv, tenant, start, &e)
	case "grpc":
		xerr = exportGRPC(ctx, srv, tenant, start, &e)
	}
	e.Elapsed = time.Since(start)
	close(stop)
	e.PeakRSSKiB = <-sampled
	if m, err := proc.Memory(pid); err == nil {
		e.HWMKiB = m.HWM
		e.PeakRSSKiB = max(e.PeakRSSKiB, m.RSS)
	}
	if cpu1, err := proc.CPU(pid); err == nil {
		e.CPU = cpu1 - cpu0
	}
	if e.Users > 0 {
		e.UsersPerSec = float64(e.Users) / e.Elapsed.Seconds()
	}
	if xerr == nil && e.Users != e.Want {
		xerr = fmt.Errorf("%d users exported, want %d", e.Users, e.Want)
	}
	if xerr != nil {
		if ctx.Err() != nil {
			return e, ctx.Err()
		}
		e.Error = xerr.Error()
	}
	return e, nil
}

// exportHTTP reads GET /v2/tenants/{tenant}/users:export to its end,
// without gzip, and counts its lines; it checks that the first is a user
// of the tenant.
func (h *harness) exportHTTP(ctx context.Context, srv *server, tenant string, start time.Time, e *report.Export) error {
	path := "/v2/tenants/" + tenant + "/users:export"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+srv.httpAddr+path, nil)
	if err != nil {
		return err
	}
	// No time bound but the run's: the client of the loads has one.
	resp, err := (&http.Client{Transport: h.client.Transport}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("GET %s: status %d: %s", path, resp.StatusCode, b)
	}
	buf := make([]byte, 256<<10)
	var first []byte
	last := byte('\n')
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if e.Bytes == 0 {
				e.First = time.Since(start)
			}
			if first == nil || !bytes.Contains(first, []byte{'\n'}) {
				first = append(first, buf[:min(n, 64<<10)]...)
			}
			e.Users += bytes.Count(buf[:n], []byte{'\n'})
			e.Bytes += int64(n)
			last = buf[n-1]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if last != '\n' {
		e.Users++ // a last line without its newline
	}
	if e.Users > 0 {
		line, _, _ := bytes.Cut(first, []byte{'\n'})
		var u struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(line, &u); err != nil || !strings.HasPrefix(u.Name, "tenants/"+tenant+"/users/") {
			return fmt.Errorf("GET %s: first line %.200q is not a user of the tenant (%v)", path, line, err)
		}
	}
	return nil
}

// exportGRPC reads ExportUsers to its end and counts the users.
func exportGRPC(ctx context.Context, srv *server, tenant string, start time.Time, e *report.Export) error {
	conn, err := grpc.NewClient(srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	stream, err := usersv2.NewUserServiceClient(conn).ExportUsers(ctx, &usersv2.ExportUsersRequest{Parent: "tenants/" + tenant})
	if err != nil {
		return err
	}
	for {
		u, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if e.Users == 0 {
			e.First = time.Since(start)
		}
		e.Users++
		e.Bytes += int64(proto.Size(u)) // the messages, without gRPC's framing
	}
}

// exportLine describes one export.
func exportLine(e report.Export) string {
	what := map[string]string{"http": "GET …/users:export (NDJSON)", "grpc": "gRPC ExportUsers"}[e.API]
	if e.Error != "" {
		return fmt.Sprintf("export (%s), %s: FAILED after %d of %d users in %s: %s", e.Store, what, e.Users, e.Want, e.Elapsed.Round(time.Millisecond), e.Error)
	}
	size := fmt.Sprintf(", %.0f MiB", float64(e.Bytes)/(1<<20))
	return fmt.Sprintf("export (%s), %s: %d users in %.1f s (first after %s%s), %.0f users/s, server CPU %.1f s; RSS %.1f MiB before, peak %.1f MiB (VmHWM %.1f MiB)",
		e.Store, what, e.Users, e.Elapsed.Seconds(), e.First.Round(time.Millisecond), size, e.UsersPerSec, e.CPU.Seconds(),
		float64(e.RSSBeforeKiB)/1024, float64(e.PeakRSSKiB)/1024, float64(e.HWMKiB)/1024)
}

// profilesBudget is the time the profiles figure adds to the run's
// deadline for each store: the import at 1,000 users/s or more (SQLite's
// ran at 1,200 on a busy machine), the reads (a search over SQLite's
// million users takes seconds) and the exports.
func profilesBudget(users int) time.Duration {
	return time.Duration(users/1000)*time.Second + 10*time.Minute
}
