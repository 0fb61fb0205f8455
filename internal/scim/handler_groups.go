package scim

import (
	"errors"
	"net/http"
	"slices"

	"github.com/usersd/usersd/internal/users"
)

func (h *handler) createGroup(q *request) error {
	body, err := h.body(q)
	if err != nil {
		return err
	}
	sg, err := DecodeGroup(body)
	if err != nil {
		return err
	}
	dg, err := sg.ToDomain()
	if err != nil {
		return err
	}
	ids, err := sg.MemberIDs()
	if err != nil {
		return err
	}
	g, err := h.svc.CreateGroup(q.ctx, q.tenant, dg)
	if err != nil {
		return err
	}
	if err := h.changeMembers(q, g.ID, &MemberChanges{Add: ids}); err != nil {
		return err
	}
	return h.writeGroup(q, http.StatusCreated, g, nil)
}

// writeGroup answers with the group and, unless the projection leaves
// them out, its first MaxMembersShown members.
func (h *handler) writeGroup(q *request, status int, g *users.Group, proj *projection) error {
	var members []users.GroupMember
	if proj.returns("members") {
		var err error
		if members, _, err = h.svc.ListGroupMembers(q.ctx, q.tenant, g.ID, MaxMembersShown, ""); err != nil {
			return err
		}
	}
	out := GroupFromDomain(g, members, q.base)
	return q.writeResource(status, out, out.Meta, proj)
}

// changeMembers applies member changes to the group, in calls of at most
// users.MaxMembersPerCall users. Both calls are idempotent: a failure
// part-way leaves changes that the client's retry completes.
func (h *handler) changeMembers(q *request, id string, mc *MemberChanges) error {
	if mc.RemoveAll {
		keep := make(map[string]bool, len(mc.Add))
		for _, a := range mc.Add {
			keep[a] = true
		}
		token := ""
		for {
			ms, next, err := h.svc.ListGroupMembers(q.ctx, q.tenant, id, users.MaxMemberPageSize, token)
			if err != nil {
				return err
			}
			var gone []string
			for _, m := range ms {
				if !keep[m.UserID] {
					gone = append(gone, m.UserID)
				}
			}
			for chunk := range slices.Chunk(gone, users.MaxMembersPerCall) {
				if _, err := h.svc.RemoveGroupMembers(q.ctx, q.tenant, id, chunk); err != nil {
					return err
				}
			}
			if next == "" {
				break
			}
			token = next
		}
	}
	for chunk := range slices.Chunk(mc.Remove, users.MaxMembersPerCall) {
		if _, err := h.svc.RemoveGroupMembers(q.ctx, q.tenant, id, chunk); err != nil {
			return err
		}
	}
	for chunk := range slices.Chunk(mc.Add, users.MaxMembersPerCall) {
		if _, err := h.svc.AddGroupMembers(q.ctx, q.tenant, id, chunk); err != nil {
			return memberError(err)
		}
	}
	return nil
}

// memberError reports a member that is not a user of the tenant as the
// request's fault (400), not as the group's absence.
func memberError(err error) error {
	if errors.Is(err, users.ErrNotFound) {
		return &Error{Status: http.StatusBadRequest, ScimType: TypeInvalidValue, Detail: "members: a value is not a user of the tenant", Err: err}
	}
	return err
}

// getGroupOf reads the group of the path's id.
func (h *handler) getGroupOf(q *request) (*users.Group, error) {
	g, err := h.svc.GetGroup(q.ctx, q.tenant, q.r.PathValue("id"))
	if err != nil {
		return nil, notFoundIfInvalid(err)
	}
	return g, nil
}

func (h *handler) getGroup(q *request) error {
	proj, err := newProjection(q.r.URL.Query()["attributes"], q.r.URL.Query()["excludedAttributes"])
	if err != nil {
		return err
	}
	g, err := h.getGroupOf(q)
	if err != nil {
		return err
	}
	return h.writeGroup(q, http.StatusOK, g, proj)
}

func (h *handler) replaceGroup(q *request) error {
	body, err := h.body(q)
	if err != nil {
		return err
	}
	sg, err := DecodeGroup(body)
	if err != nil {
		return err
	}
	mc, err := sg.ReplaceMembers()
	if err != nil {
		return err
	}
	prev, err := h.getGroupOf(q)
	if err != nil {
		return err
	}
	etag, given := ifMatch(q.r)
	if given && etag != prev.Etag() {
		return preconditionFailed()
	}
	g, err := h.updateGroup(q, sg, prev)
	if err != nil {
		return err
	}
	if err := h.changeMembers(q, g.ID, mc); err != nil {
		return err
	}
	return h.writeGroup(q, http.StatusOK, g, nil)
}

// updateGroup changes prev's fields to sg's, when any changes.
func (h *handler) updateGroup(q *request, sg *Group, prev *users.Group) (*users.Group, error) {
	up, changed, err := sg.UpdateRequest(prev)
	if err != nil || !changed {
		return prev, err
	}
	return h.svc.UpdateGroup(q.ctx, q.tenant, prev.ID, up.Group, up.Paths, up.Etag)
}

// patchGroup applies a PATCH: the group's fields, then its member changes.
// It answers 204 with the ETag (the members of a large group are not
// sent back), as Okta and Microsoft Entra ID accept.
func (h *handler) patchGroup(q *request) error {
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
		prev, err := h.getGroupOf(q)
		if err != nil {
			return err
		}
		if given && etag != prev.Etag() {
			return preconditionFailed()
		}
		next, mc, err := p.ApplyToGroup(GroupFromDomain(prev, nil, q.base))
		if err != nil {
			return err
		}
		g, err := h.updateGroup(q, next, prev)
		if errors.Is(err, users.ErrEtagMismatch) && !given && attempt < maxPatchRetries {
			continue
		}
		if err != nil {
			return err
		}
		if err := h.changeMembers(q, g.ID, mc); err != nil {
			return err
		}
		q.w.Header().Set("ETag", version(g.Etag()))
		q.w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func (h *handler) deleteGroup(q *request) error {
	etag, _ := ifMatch(q.r)
	if _, err := h.svc.DeleteGroup(q.ctx, q.tenant, q.r.PathValue("id"), etag); err != nil {
		return notFoundIfInvalid(err)
	}
	q.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *handler) listGroups(q *request) error {
	qq, err := queryFromURL(q.r)
	if err != nil {
		return err
	}
	return h.queryGroups(q, qq)
}

func (h *handler) searchGroups(q *request) error {
	body, err := h.body(q)
	if err != nil {
		return err
	}
	qq, err := queryFromBody(body)
	if err != nil {
		return err
	}
	return h.queryGroups(q, qq)
}

// queryGroups answers a query of groups. The service does not count
// groups: the handler counts the matches by reading them, at most
// MaxScan. Members are listed only when the query's attributes ask for
// them (each costs a read).
func (h *handler) queryGroups(q *request, qq *query) error {
	f, err := CompileGroupFilter(qq.filter)
	if err != nil {
		return err
	}
	end, err := qq.end()
	if err != nil {
		return err
	}
	var (
		total int
		page  []*users.Group
	)
	keep := func(g *users.Group) error {
		if !f.Match(GroupFromDomain(g, nil, q.base)) {
			return nil
		}
		total++
		if total > MaxScan {
			return tooMany()
		}
		if total >= qq.startIndex && total <= end {
			page = append(page, g)
		}
		return nil
	}
	switch {
	case f.None:
	case f.ID != "":
		g, err := h.svc.GetGroup(q.ctx, q.tenant, f.ID)
		switch {
		case errors.Is(err, users.ErrNotFound):
		case err != nil:
			return notFoundIfInvalid(err)
		case f.MemberID != "":
			// One group and one member: whether it is one is a walk of the
			// member's groups, below.
			if err := h.walkUserGroups(q, f.MemberID, func(mg *users.Group) error {
				if mg.ID == g.ID {
					return keep(g)
				}
				return nil
			}); err != nil {
				return err
			}
		default:
			if err := keep(g); err != nil {
				return err
			}
		}
	case f.MemberID != "":
		if err := h.walkUserGroups(q, f.MemberID, keep); err != nil {
			return err
		}
	default:
		req := users.GroupListRequest{Tenant: q.tenant, Filter: f.Filter, PageSize: users.MaxGroupPageSize}
		read := 0
		for {
			res, err := h.svc.ListGroups(q.ctx, req)
			if err != nil {
				return err
			}
			for _, g := range res.Groups {
				if read++; read > MaxScan {
					return tooMany()
				}
				if err := keep(g); err != nil {
					return err
				}
			}
			if res.NextPageToken == "" {
				break
			}
			req.PageToken = res.NextPageToken
		}
	}
	out := make([]*Group, len(page))
	for i, g := range page {
		var members []users.GroupMember
		if qq.proj.asks("members") {
			if members, _, err = h.svc.ListGroupMembers(q.ctx, q.tenant, g.ID, MaxMembersShown, ""); err != nil {
				return err
			}
		}
		out[i] = GroupFromDomain(g, members, q.base)
	}
	return writeList(q, total, qq, out)
}

// walkUserGroups calls fn with each group the user is a member of; a user
// that does not exist is a member of none.
func (h *handler) walkUserGroups(q *request, userID string, fn func(*users.Group) error) error {
	token := ""
	for {
		gs, next, err := h.svc.ListUserGroups(q.ctx, q.tenant, userID, users.MaxGroupPageSize, token)
		if errors.Is(err, users.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, g := range gs {
			if err := fn(g); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		token = next
	}
}
