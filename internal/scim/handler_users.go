package scim

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/usersd/usersd/internal/users"
)

// SearchRequestSchema is the URN of a query by POST (.search).
const SearchRequestSchema = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"

// query is a query's parameters: from the URL of a GET, or the body of a
// POST .search.
type query struct {
	filter     string
	startIndex int // from 1
	count      int // 0 to MaxCount
	proj       *projection
}

// queryFromURL reads a GET's query parameters.
func queryFromURL(r *http.Request) (*query, error) {
	v := r.URL.Query()
	q := &query{filter: v.Get("filter"), startIndex: 1, count: DefaultCount}
	if s := v.Get("startIndex"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, badRequest(TypeInvalidValue, "startIndex %q is not an integer", truncate(s))
		}
		q.startIndex = n
	}
	if s := v.Get("count"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, badRequest(TypeInvalidValue, "count %q is not an integer", truncate(s))
		}
		q.count = n
	}
	var err error
	if q.proj, err = newProjection(v["attributes"], v["excludedAttributes"]); err != nil {
		return nil, err
	}
	q.bound()
	return q, nil
}

// searchBody is the body of a POST .search (RFC 7644 section 3.4.3).
// sortBy and sortOrder are accepted and ignored: usersd does not sort
// (ServiceProviderConfig says so).
type searchBody struct {
	Filter             string   `json:"filter"`
	StartIndex         *int     `json:"startIndex"`
	Count              *int     `json:"count"`
	Attributes         []string `json:"attributes"`
	ExcludedAttributes []string `json:"excludedAttributes"`
}

// queryFromBody reads a POST .search's body.
func queryFromBody(body []byte) (*query, error) {
	if _, err := decodeObject(body); err != nil {
		return nil, err
	}
	var sb searchBody
	if err := json.Unmarshal(body, &sb); err != nil {
		return nil, invalidSyntax("not a SearchRequest: %v", err)
	}
	q := &query{filter: sb.Filter, startIndex: 1, count: DefaultCount}
	if sb.StartIndex != nil {
		q.startIndex = *sb.StartIndex
	}
	if sb.Count != nil {
		q.count = *sb.Count
	}
	var err error
	if q.proj, err = newProjection(sb.Attributes, sb.ExcludedAttributes); err != nil {
		return nil, err
	}
	q.bound()
	return q, nil
}

// bound applies RFC 7644 section 3.4.2.4: a startIndex below 1 is 1, a
// negative count is 0; and usersd's MaxCount.
func (q *query) bound() {
	q.startIndex = max(q.startIndex, 1)
	q.count = min(max(q.count, 0), MaxCount)
}

// end is the number of matches a page needs read: those before it and its
// own. It fails with 400 tooMany beyond MaxScan.
func (q *query) end() (int, error) {
	if q.startIndex-1 > MaxScan-q.count {
		return 0, tooMany()
	}
	return q.startIndex - 1 + q.count, nil
}

func tooMany() *Error {
	return badRequest(TypeTooMany, "the query would read more than %d resources: narrow the filter, or start at a lower startIndex", MaxScan)
}

func (h *handler) createUser(q *request) error {
	body, err := h.body(q)
	if err != nil {
		return err
	}
	su, err := DecodeUser(body)
	if err != nil {
		return err
	}
	du, err := su.ToDomain()
	if err != nil {
		return err
	}
	if err := h.checkUserName(q, su.UserName, ""); err != nil {
		return err
	}
	u, err := h.svc.Create(q.ctx, users.CreateRequest{Tenant: q.tenant, User: du, RequestID: q.r.Header.Get("Idempotency-Key")})
	if err != nil {
		return err
	}
	out, err := UserFromDomain(u, q.base)
	if err != nil {
		return err
	}
	return q.writeResource(http.StatusCreated, out, out.Meta, nil)
}

// checkUserName fails with 409 uniqueness when another user of the tenant
// (than self) has the userName: the email's uniqueness is the store's, a
// kept userName's (one that is not an address) is checked here, as
// identity providers check it themselves, by a filter.
func (h *handler) checkUserName(q *request, userName, self string) error {
	if userName == "" || isAddress(userName) {
		return nil
	}
	lit, _ := json.Marshal(userName)
	f, err := CompileUserFilter("userName eq " + string(lit))
	if err != nil || f.None {
		return nil // the domain refuses such a userName itself
	}
	res, err := h.svc.List(q.ctx, users.ListRequest{Tenant: q.tenant, Filter: f.Filter, Query: f.Query, PageSize: 2})
	if err != nil {
		return err
	}
	for _, u := range res.Users {
		if u.ID != self {
			return &Error{Status: http.StatusConflict, ScimType: TypeUniqueness, Detail: "userName: another user has this userName"}
		}
	}
	return nil
}

// getUserOf reads the user of the path's id, a 404 when deleted.
func (h *handler) getUserOf(q *request) (*users.User, *User, error) {
	u, err := h.svc.Get(q.ctx, q.tenant, q.r.PathValue("id"))
	if err != nil {
		return nil, nil, notFoundIfInvalid(err)
	}
	su, err := UserFromDomain(u, q.base)
	if err != nil {
		return nil, nil, err
	}
	return u, su, nil
}

// notFoundIfInvalid makes an id that is not a UUID a 404: no resource has
// it.
func notFoundIfInvalid(err error) error {
	var inv *users.InvalidError
	if errors.As(err, &inv) {
		return &Error{Status: http.StatusNotFound, Detail: "resource not found", Err: err}
	}
	return err
}

func (h *handler) getUser(q *request) error {
	proj, err := newProjection(q.r.URL.Query()["attributes"], q.r.URL.Query()["excludedAttributes"])
	if err != nil {
		return err
	}
	u, su, err := h.getUserOf(q)
	if err != nil {
		return err
	}
	if proj.asks("groups") {
		if su.Groups, err = h.userGroups(q, u.ID); err != nil {
			return err
		}
	}
	return q.writeResource(http.StatusOK, su, su.Meta, proj)
}

// userGroups returns the first page (MaxMembersShown) of the user's
// groups, for a GET that asks for groups.
func (h *handler) userGroups(q *request, id string) ([]GroupRef, error) {
	gs, _, err := h.svc.ListUserGroups(q.ctx, q.tenant, id, MaxMembersShown, "")
	if err != nil {
		return nil, err
	}
	refs := make([]GroupRef, len(gs))
	for i, g := range gs {
		refs[i] = GroupRef{Value: g.ID, Ref: location(q.base, groupType, g.ID), Display: g.DisplayName, Type: "direct"}
	}
	return refs, nil
}

func (h *handler) replaceUser(q *request) error {
	body, err := h.body(q)
	if err != nil {
		return err
	}
	su, err := DecodeUser(body)
	if err != nil {
		return err
	}
	prev, _, err := h.getUserOf(q)
	if err != nil {
		return err
	}
	etag, given := ifMatch(q.r)
	if given && etag != prev.Etag() {
		return preconditionFailed()
	}
	if err := h.checkUserName(q, su.UserName, prev.ID); err != nil {
		return err
	}
	return h.updateUser(q, su, prev, etag)
}

// updateUser makes prev the user su describes, when anything changes, and
// answers with the result.
func (h *handler) updateUser(q *request, su *User, prev *users.User, etag string) error {
	req, changed, err := su.UpdateRequest(prev)
	if err != nil {
		return err
	}
	next := prev
	if changed {
		req.Tenant = q.tenant
		if etag != "" {
			req.Etag = etag
		}
		if next, err = h.svc.Update(q.ctx, req); err != nil {
			return err
		}
	}
	out, err := UserFromDomain(next, q.base)
	if err != nil {
		return err
	}
	return q.writeResource(http.StatusOK, out, out.Meta, nil)
}

func (h *handler) patchUser(q *request) error {
	body, err := h.body(q)
	if err != nil {
		return err
	}
	p, err := ParsePatch(body)
	if err != nil {
		return err
	}
	etag, given := ifMatch(q.r)
	for attempt := 1; ; attempt++ {
		prev, su, err := h.getUserOf(q)
		if err != nil {
			return err
		}
		if given && etag != prev.Etag() {
			return preconditionFailed()
		}
		next, err := p.ApplyToUser(su)
		if err != nil {
			return err
		}
		if next.UserName != su.UserName {
			if err := h.checkUserName(q, next.UserName, prev.ID); err != nil {
				return err
			}
		}
		err = h.updateUser(q, next, prev, prev.Etag())
		if given || attempt >= maxPatchRetries || !errors.Is(err, users.ErrEtagMismatch) {
			return err
		}
	}
}

func (h *handler) deleteUser(q *request) error {
	etag, _ := ifMatch(q.r)
	if _, err := h.svc.Delete(q.ctx, q.tenant, q.r.PathValue("id"), etag); err != nil {
		return notFoundIfInvalid(err)
	}
	q.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) listUsers(q *request) error {
	qq, err := queryFromURL(q.r)
	if err != nil {
		return err
	}
	return h.queryUsers(q, qq)
}

func (h *handler) searchUsers(q *request) error {
	body, err := h.body(q)
	if err != nil {
		return err
	}
	qq, err := queryFromBody(body)
	if err != nil {
		return err
	}
	return h.queryUsers(q, qq)
}

// queryUsers answers a query of users: startIndex and count over the
// service's keyset pages, walking from the first match (bounded by
// MaxScan).
func (h *handler) queryUsers(q *request, qq *query) error {
	f, err := CompileUserFilter(qq.filter)
	if err != nil {
		return err
	}
	end, err := qq.end()
	if err != nil {
		return err
	}
	var (
		total int
		page  []*User
	)
	switch {
	case f.None:
	case f.ID != "":
		u, err := h.svc.Get(q.ctx, q.tenant, f.ID)
		switch {
		case errors.Is(err, users.ErrNotFound):
		case err != nil:
			return notFoundIfInvalid(err)
		case u.State != users.StateDeleted:
			su, err := UserFromDomain(u, q.base)
			if err != nil {
				return err
			}
			if f.Match(su) {
				total = 1
				if qq.startIndex == 1 && qq.count > 0 {
					page = append(page, su)
				}
			}
		}
	default:
		if total, page, err = h.walkUsers(q, f, qq.startIndex, end); err != nil {
			return err
		}
	}
	return writeList(q, total, qq, page)
}

// walkUsers returns the number of matches and the matches from startIndex
// to end (1-based, end inclusive). With an Exact filter it reads up to end
// and takes the total from the service's count; otherwise it reads every
// user the index part selects, at most MaxScan.
func (h *handler) walkUsers(q *request, f *UserFilter, startIndex, end int) (int, []*User, error) {
	req := users.ListRequest{Tenant: q.tenant, Filter: f.Filter, Query: f.Query}
	if f.Exact {
		req.ShowTotalSize = true
		req.PageSize = min(max(end, 1), users.MaxPageSize)
	} else {
		req.PageSize = users.MaxPageSize
	}
	var (
		total, read int
		page        []*User
	)
	for {
		res, err := h.svc.List(q.ctx, req)
		if err != nil {
			return 0, nil, err
		}
		if req.ShowTotalSize {
			total = int(res.TotalSize)
			req.ShowTotalSize = false
		}
		for _, u := range res.Users {
			read++
			if !f.Exact && read > MaxScan {
				return 0, nil, tooMany()
			}
			su, err := UserFromDomain(u, q.base)
			if err != nil {
				continue // deleted: not listed, so only a bug
			}
			if !f.Exact && !f.Match(su) {
				continue
			}
			n := read
			if !f.Exact {
				total++
				n = total
			}
			if n >= startIndex && n <= end {
				page = append(page, su)
			}
		}
		if res.NextPageToken == "" || (f.Exact && read >= end) {
			break
		}
		req.PageToken = res.NextPageToken
	}
	return total, page, nil
}

// writeList answers a query with its page.
func writeList[T any](q *request, total int, qq *query, page []T) error {
	resources := make([]any, 0, len(page))
	for _, r := range page {
		v, err := qq.proj.apply(r)
		if err != nil {
			return err
		}
		resources = append(resources, v)
	}
	writeJSON(q.w, http.StatusOK, NewListResponse(total, qq.startIndex, resources))
	return nil
}
