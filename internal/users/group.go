package users

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of groups.
const (
	MaxGroupDisplayNameLen = 256  // characters
	MaxGroupDescriptionLen = 1024 // characters
	// MaxMembersPerCall bounds the users one AddGroupMembers or
	// RemoveGroupMembers names.
	MaxMembersPerCall = 1000
	// DefaultGroupPageSize and MaxGroupPageSize bound ListGroups and
	// ListUserGroups; DefaultMemberPageSize and MaxMemberPageSize bound
	// ListGroupMembers.
	DefaultGroupPageSize  = 50
	MaxGroupPageSize      = 1000
	DefaultMemberPageSize = 100
	MaxMemberPageSize     = 1000
)

// Group is a named set of a tenant's users. Groups are hard-deleted: a
// deleted group is gone, with its memberships.
type Group struct {
	// Tenant is the id of the tenant the group belongs to.
	Tenant string
	// ID is a UUIDv7 the service assigns.
	ID string
	// DisplayName is required; it need not be unique (identity providers
	// such as Microsoft Entra ID allow groups of the same name).
	DisplayName string
	// ExternalID is the identifier an identity provider knows the group
	// by: optional, and unique among the tenant's groups.
	ExternalID  string
	Description string
	// MemberCount is how many users are members. Output only.
	MemberCount int64
	CreateTime  time.Time
	UpdateTime  time.Time
	// Revision counts the changes made to the group (member changes
	// aside); it is the source of the etag.
	Revision int64
}

// Etag returns the group's opaque version string: it changes with every
// update of the group's fields (not with its members).
func (g *Group) Etag() string {
	var buf [64]byte
	sum := sha256.Sum256(binary.BigEndian.AppendUint64(append(append(buf[:0], "group:"...), g.ID...), uint64(g.Revision)))
	return hex.EncodeToString(sum[:8])
}

// GroupNameKey is the form of a display name that ListGroups' display_name
// filter and query compare: case- and accent-folded (Fold).
func GroupNameKey(name string) string { return Fold(name) }

// GroupMember is one membership: the user, and when it was added.
type GroupMember struct {
	UserID     string
	CreateTime time.Time
}

// GroupQuery says which groups ListGroups returns, and in which order: by
// id (the order of creation: ids are UUIDv7), or by name (by
// GroupNameKey, the folded display name, ties by id), each ascending or
// descending.
type GroupQuery struct {
	Tenant string
	// NameKey, when set, keeps the groups whose GroupNameKey equals it;
	// ExternalID, when set, the group with that external id.
	NameKey    string
	ExternalID string
	// Contains, when set, keeps the groups whose GroupNameKey holds it.
	Contains string
	// ByName orders the groups by GroupNameKey, then id; otherwise they
	// are in id order. Desc reverses the order, of both keys.
	ByName bool
	Desc   bool
	// After, when set, is the id of the last group of the previous page,
	// and, in name order, AfterNameKey is its GroupNameKey (which may be
	// empty): the page starts after that group in the order.
	After        string
	AfterNameKey string
	// Limit is the maximum number of groups to return.
	Limit int
}

// GroupOrder is the order of ListGroups: by id (the order of creation,
// the default), or ByName, and Desc or not.
type GroupOrder struct {
	ByName bool
	Desc   bool
}

// String returns the order as order_by spells it in full, for example
// "display_name desc".
func (o GroupOrder) String() string {
	field, dir := "create_time", "asc"
	if o.ByName {
		field = "display_name"
	}
	if o.Desc {
		dir = "desc"
	}
	return field + " " + dir
}

// ParseGroupOrderBy parses ListGroups' order_by: "" or "create_time" (the
// default: id order, which is the order of creation as ids are UUIDv7) or
// "display_name" (by the folded name, GroupNameKey, ties by id), each
// optionally followed by "asc" (the default) or "desc". Errors are
// *InvalidError values naming the field "order_by".
func ParseGroupOrderBy(s string) (GroupOrder, error) {
	byName, desc, err := parseOrder(s, map[string]bool{"create_time": false, "createTime": false, "display_name": true, "displayName": true},
		"cannot order groups by %q (want create_time or display_name, optionally followed by asc or desc)")
	return GroupOrder{ByName: byName, Desc: desc}, err
}

// GroupStore keeps groups and their memberships. Every method acts on the
// tenant's groups only, and returns ErrNotFound while the tenant is deleted
// or does not exist. Every change appends its events (EventGroup…) to the
// outbox in its transaction.
type GroupStore interface {
	// CreateGroup inserts g (its MemberCount is 0) with a GroupCreated
	// event. It returns ErrExternalIDTaken when a group of the tenant has
	// g's ExternalID, ErrIDTaken when one has its ID, and ErrNotFound when
	// the tenant does not exist or is deleted.
	CreateGroup(ctx context.Context, g *Group) (*Group, error)
	// GetGroup returns the tenant's group with the id, or ErrNotFound.
	GetGroup(ctx context.Context, tenant, id string) (*Group, error)
	// ListGroups returns up to q.Limit groups of q.Tenant that match q,
	// in q's order (id, or GroupNameKey then id; ascending or q.Desc),
	// after q.After (and q.AfterNameKey in name order).
	ListGroups(ctx context.Context, q GroupQuery) ([]*Group, error)
	// UpdateGroup reads the tenant's group, locks it, and calls fn with a
	// copy; if fn returns nil it stores the copy with Revision incremented,
	// appends a GroupUpdated event listing the changed fields (when some
	// changed) and returns it. ErrExternalIDTaken when the new external id
	// is another group's; ErrNotFound for an unknown id.
	UpdateGroup(ctx context.Context, tenant, id string, fn func(*Group) error) (*Group, error)
	// DeleteGroup calls check (when not nil) with the group, then removes
	// it and its memberships with a GroupDeleted event carrying the group
	// as it was, and returns that. ErrNotFound for an unknown id.
	DeleteGroup(ctx context.Context, tenant, id string, check func(*Group) error) (*Group, error)
	// AddGroupMembers makes the tenant's users with the ids members of the
	// group, in one transaction: each user not a member yet gets a
	// GroupMemberAdded event, in the order of ids; users that are members
	// already are left as they are (the call is idempotent). It returns
	// the group as it is then. A user that does not exist in the tenant,
	// or is deleted, fails the whole call with an *InvalidError naming
	// "user_ids[i]". ErrNotFound for an unknown group.
	AddGroupMembers(ctx context.Context, tenant, id string, userIDs []string) (*Group, error)
	// RemoveGroupMembers removes the memberships of the users with the
	// ids, each with a GroupMemberRemoved event; ids that are not members
	// are ignored. It returns the group as it is then; ErrNotFound for an
	// unknown group.
	RemoveGroupMembers(ctx context.Context, tenant, id string, userIDs []string) (*Group, error)
	// ListGroupMembers returns up to limit members of the tenant's group,
	// in user id order, after the user id after. ErrNotFound for an
	// unknown group.
	ListGroupMembers(ctx context.Context, tenant, id, after string, limit int) ([]GroupMember, error)
	// ListUserGroups returns up to limit groups the tenant's user is a
	// member of, in group id order, after the group id after. A user that
	// does not exist has none.
	ListUserGroups(ctx context.Context, tenant, userID, after string, limit int) ([]*Group, error)
}

// validateGroup checks the fields of g that a caller sets, named
// "group.<field>".
func validateGroup(vs *violations, g *Group) {
	switch n := utf8.RuneCountInString(g.DisplayName); {
	case strings.TrimSpace(g.DisplayName) == "":
		vs.add("group.display_name", "required")
	case n > MaxGroupDisplayNameLen:
		vs.add("group.display_name", fmt.Sprintf("%d characters, more than %d", n, MaxGroupDisplayNameLen))
	default:
		validateText(vs, "group.display_name", g.DisplayName)
	}
	if g.ExternalID != "" {
		switch {
		case len(g.ExternalID) > MaxExternalIDLen:
			vs.add("group.external_id", fmt.Sprintf("longer than %d bytes", MaxExternalIDLen))
		case strings.TrimSpace(g.ExternalID) != g.ExternalID:
			vs.add("group.external_id", "leading or trailing space")
		default:
			validateText(vs, "group.external_id", g.ExternalID)
		}
	}
	if n := utf8.RuneCountInString(g.Description); n > MaxGroupDescriptionLen {
		vs.add("group.description", fmt.Sprintf("%d characters, more than %d", n, MaxGroupDescriptionLen))
	} else {
		validateText(vs, "group.description", g.Description)
	}
}

// groupFields are the fields of a group a caller sets, in the order events
// list them.
var groupFields = []string{"display_name", "external_id", "description"}

// GroupChangedPaths returns the fields that differ between two versions of
// a group, in the order of groupFields.
func GroupChangedPaths(before, after *Group) []string {
	var paths []string
	if before.DisplayName != after.DisplayName {
		paths = append(paths, "display_name")
	}
	if before.ExternalID != after.ExternalID {
		paths = append(paths, "external_id")
	}
	if before.Description != after.Description {
		paths = append(paths, "description")
	}
	return paths
}

// ParseGroupFilter parses ListGroups' filter: comparisons joined by AND,
// each display_name = "…" (compared case- and accent-insensitively, as
// GroupNameKey) or external_id = "…" (exactly), each field at most once.
// Errors name the field "filter".
func ParseGroupFilter(s string) (nameKey, externalID string, err error) {
	p := &filterParser{src: s}
	seen := map[string]bool{}
	p.skipSpace()
	for !p.eof() {
		start := p.pos
		name := p.name()
		switch name {
		case "display_name", "displayName", "external_id", "externalId":
		case "":
			return "", "", p.errorf(start, "expected a field name")
		default:
			return "", "", p.errorf(start, "unknown field %q (want display_name or external_id)", name)
		}
		canon := "display_name"
		if name == "external_id" || name == "externalId" {
			canon = "external_id"
		}
		if seen[canon] {
			return "", "", p.errorf(start, "%s more than once", canon)
		}
		seen[canon] = true
		opPos := p.pos
		op, err := p.op()
		if err != nil {
			return "", "", err
		}
		if op != OpEq {
			return "", "", p.errorf(opPos, "%s allows only =", canon)
		}
		valPos := p.pos
		v, _, err := p.value()
		if err != nil {
			return "", "", err
		}
		if v == "" {
			return "", "", p.errorf(valPos, "%s needs a value", canon)
		}
		if canon == "display_name" {
			nameKey = GroupNameKey(v)
		} else {
			externalID = v
		}
		p.skipSpace()
		if p.eof() {
			break
		}
		at := p.pos
		if w := p.word(); w != "AND" {
			return "", "", p.errorf(at, "expected AND, found %q", w)
		}
		p.skipSpace()
		if p.eof() {
			return "", "", p.errorf(p.pos, "expected a comparison after AND")
		}
	}
	return nameKey, externalID, nil
}

// groupPageSize returns the page size a request asks for (field
// "page_size"): def for 0, max beyond it.
func groupPageSize(size, def, max int) (int, error) {
	switch {
	case size < 0:
		return 0, Invalid("page_size", "must not be negative")
	case size == 0:
		return def, nil
	case size > max:
		return max, nil
	}
	return size, nil
}

// idPageToken is the page token of the lists of groups and members, which
// page by one id: the id, signed for the list (domain) and its parameters
// (digest), so that a token is valid for the list that made it only.
func (p pageTokens) idToken(domain, digest, id string) string {
	msg := append([]byte(digest+"\x00"), id...)
	return base64.RawURLEncoding.EncodeToString(append(p.sign(domain, msg), id...))
}

// parseIDToken returns the id of a token idToken made for the same list
// and parameters.
func (p pageTokens) parseIDToken(domain, digest, token string) (string, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(b) <= pageTokenMACSize {
		return "", &InvalidError{Violations: []FieldViolation{{Field: "page_token", Description: "malformed page token"}}, Reason: ReasonInvalidPageToken}
	}
	mac, id := b[:pageTokenMACSize], string(b[pageTokenMACSize:])
	if !hmac.Equal(mac, p.sign(domain, append([]byte(digest+"\x00"), id...))) {
		return "", &InvalidError{Violations: []FieldViolation{{Field: "page_token", Description: "the token is not of this list: pass the next_page_token of the same request"}}, Reason: ReasonInvalidPageToken}
	}
	return id, nil
}

// groupListDomain returns the domain that signs ListGroups' page tokens of
// the order o. The default order's is the domain of the tokens made before
// ListGroups had an order_by, so that they stay valid; each other order
// has its own, so that a token of one order is refused in another (its
// MAC does not match: ReasonInvalidPageToken). No tenant, which the signed
// message starts with, begins with ':'.
func groupListDomain(o GroupOrder) string {
	if o == (GroupOrder{}) {
		return "usersd.groups"
	}
	return "usersd.groups:" + o.String()
}

// groupListToken returns ListGroups' token of the page after g, in the
// order o: idToken's, of g's id in id order, and of g's id followed by its
// GroupNameKey in name order (ids are 36 bytes, canonical UUIDs). The name
// key is the one the stores keep, GroupNameKey(DisplayName).
func (p pageTokens) groupListToken(o GroupOrder, digest string, g *Group) string {
	key := g.ID
	if o.ByName {
		key += GroupNameKey(g.DisplayName)
	}
	return p.idToken(groupListDomain(o), digest, key)
}

// parseGroupListToken returns the cursor of a token groupListToken made
// for the same order and digest: the id, and in name order the name key.
func (p pageTokens) parseGroupListToken(o GroupOrder, digest, token string) (id, nameKey string, err error) {
	key, err := p.parseIDToken(groupListDomain(o), digest, token)
	if err != nil {
		return "", "", err
	}
	if o.ByName {
		if len(key) < 36 {
			return "", "", &InvalidError{Violations: []FieldViolation{{Field: "page_token", Description: "malformed page token"}}, Reason: ReasonInvalidPageToken}
		}
		key, nameKey = key[:36], key[36:]
	}
	if _, ok := canonicalID(key); !ok {
		return "", "", &InvalidError{Violations: []FieldViolation{{Field: "page_token", Description: "malformed page token"}}, Reason: ReasonInvalidPageToken}
	}
	return key, nameKey, nil
}

// CreateGroup creates a group in the tenant: DisplayName, ExternalID and
// Description are the caller's; the service assigns the rest.
func (s *Service) CreateGroup(ctx context.Context, tenant string, in *Group) (*Group, error) {
	tenant, err := s.oneTenant(ctx, "parent", tenant)
	if err != nil {
		return nil, err
	}
	var vs violations
	validateGroup(&vs, in)
	if err := vs.err(); err != nil {
		return nil, err
	}
	now := s.clock()
	g := &Group{
		Tenant: tenant, ID: NewID(), DisplayName: in.DisplayName, ExternalID: in.ExternalID,
		Description: in.Description, CreateTime: now, UpdateTime: now,
	}
	return s.store.CreateGroup(ctx, g)
}

// GetGroup returns the tenant's group with the id.
func (s *Service) GetGroup(ctx context.Context, tenant, id string) (*Group, error) {
	tenant, err := s.oneTenant(ctx, "name", tenant)
	if err != nil {
		return nil, err
	}
	if id, err = checkID("id", id); err != nil {
		return nil, err
	}
	return s.store.GetGroup(ctx, tenant, id)
}

// GroupListRequest is the input of ListGroups.
type GroupListRequest struct {
	Tenant    string
	PageSize  int
	PageToken string
	// Filter is ParseGroupFilter's; Query keeps the groups whose display
	// name holds it (case- and accent-insensitively).
	Filter string
	Query  string
	// OrderBy is ParseGroupOrderBy's.
	OrderBy string
}

// GroupListResult is a page of groups.
type GroupListResult struct {
	Groups        []*Group
	NextPageToken string
}

// ListGroups returns a page of the tenant's groups, in the order of
// creation or the order req.OrderBy names. Its page tokens carry the sort
// key of the last group of the page (its id, and in name order its name
// key) and are valid for the same tenant, filter, query and order only.
func (s *Service) ListGroups(ctx context.Context, req GroupListRequest) (*GroupListResult, error) {
	tenant, err := s.oneTenant(ctx, "parent", req.Tenant)
	if err != nil {
		return nil, err
	}
	size, err := groupPageSize(req.PageSize, DefaultGroupPageSize, MaxGroupPageSize)
	if err != nil {
		return nil, err
	}
	q := GroupQuery{Tenant: tenant, Limit: size + 1}
	if q.NameKey, q.ExternalID, err = ParseGroupFilter(req.Filter); err != nil {
		return nil, err
	}
	if req.Query != "" {
		if utf8.RuneCountInString(req.Query) > MaxGroupDisplayNameLen {
			return nil, Invalid("query", fmt.Sprintf("longer than %d characters", MaxGroupDisplayNameLen))
		}
		if problem := textProblem(req.Query); problem != "" {
			return nil, Invalid("query", problem)
		}
		q.Contains = GroupNameKey(req.Query)
	}
	order, err := ParseGroupOrderBy(req.OrderBy)
	if err != nil {
		return nil, err
	}
	q.ByName, q.Desc = order.ByName, order.Desc
	// The order is not in the digest but in the tokens' domain
	// (groupListDomain): the default order's tokens are as they were.
	digest := tenant + "\x00" + req.Filter + "\x00" + req.Query
	if req.PageToken != "" {
		if q.After, q.AfterNameKey, err = s.tokens.parseGroupListToken(order, digest, req.PageToken); err != nil {
			return nil, err
		}
	}
	gs, err := s.store.ListGroups(ctx, q)
	if err != nil {
		return nil, err
	}
	res := &GroupListResult{Groups: gs}
	if len(gs) > size {
		res.Groups = gs[:size]
		res.NextPageToken = s.tokens.groupListToken(order, digest, gs[size-1])
	}
	return res, nil
}

// UpdateGroup changes the fields of the tenant's group named in paths
// (display_name, external_id, description; nil or "*" for all three; the
// output-only fields are ignored) to in's, after checking the caller's
// etag.
func (s *Service) UpdateGroup(ctx context.Context, tenant, id string, in *Group, paths []string, etag string) (*Group, error) {
	tenant, err := s.oneTenant(ctx, "name", tenant)
	if err != nil {
		return nil, err
	}
	if id, err = checkID("id", id); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, p := range paths {
		switch p {
		case "*":
			for _, f := range groupFields {
				set[f] = true
			}
		case "display_name", "external_id", "description":
			set[p] = true
		case "name", "member_count", "create_time", "update_time", "etag":
			// Output only, or the identity: a mask that names them
			// changes nothing of them (AIP-134 lets a client send the
			// whole resource).
		default:
			return nil, Invalid("update_mask", fmt.Sprintf("unknown or unchangeable field %q (want display_name, external_id, description or *)", p))
		}
	}
	if paths == nil {
		for _, f := range groupFields {
			set[f] = true
		}
	}
	etag = normalizeEtag(etag)
	if len(set) == 0 {
		// Nothing to change (the mask named output-only fields alone):
		// the group as it is, if the etag is still its.
		g, err := s.store.GetGroup(ctx, tenant, id)
		if err != nil {
			return nil, err
		}
		return g, checkGroupEtag(g, etag)
	}
	return s.store.UpdateGroup(ctx, tenant, id, func(g *Group) error {
		if err := checkGroupEtag(g, etag); err != nil {
			return err
		}
		if set["display_name"] {
			g.DisplayName = in.DisplayName
		}
		if set["external_id"] {
			g.ExternalID = in.ExternalID
		}
		if set["description"] {
			g.Description = in.Description
		}
		var vs violations
		validateGroup(&vs, g)
		if err := vs.err(); err != nil {
			return err
		}
		g.UpdateTime = s.clock()
		return nil
	})
}

// DeleteGroup deletes the tenant's group and its memberships, after
// checking the caller's etag, and returns the group as it was.
func (s *Service) DeleteGroup(ctx context.Context, tenant, id, etag string) (*Group, error) {
	tenant, err := s.oneTenant(ctx, "name", tenant)
	if err != nil {
		return nil, err
	}
	if id, err = checkID("id", id); err != nil {
		return nil, err
	}
	etag = normalizeEtag(etag)
	return s.store.DeleteGroup(ctx, tenant, id, func(g *Group) error { return checkGroupEtag(g, etag) })
}

// checkGroupEtag fails with ErrEtagMismatch unless etag is "" (any
// version) or g's.
func checkGroupEtag(g *Group, etag string) error {
	if etag != "" && etag != g.Etag() {
		return fmt.Errorf("group %s has changed (etag %q, yours %q): %w", g.ID, g.Etag(), etag, ErrEtagMismatch)
	}
	return nil
}

// memberIDs checks the user ids of a membership change: 1 to
// MaxMembersPerCall UUIDs, named "user_ids[i]".
func memberIDs(ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, Invalid("user_ids", "required: name 1 or more users")
	}
	if len(ids) > MaxMembersPerCall {
		return nil, Invalid("user_ids", fmt.Sprintf("%d users, more than %d", len(ids), MaxMembersPerCall))
	}
	var vs violations
	out := make([]string, len(ids))
	for i, id := range ids {
		c, ok := canonicalID(id)
		if !ok {
			vs.add(fmt.Sprintf("user_ids[%d]", i), fmt.Sprintf("%q is not a UUID", id))
		}
		out[i] = c
	}
	return out, vs.err()
}

// AddGroupMembers makes the tenant's users members of the group; users
// that are members already stay as they are.
func (s *Service) AddGroupMembers(ctx context.Context, tenant, id string, userIDs []string) (*Group, error) {
	return s.changeMembers(ctx, tenant, id, userIDs, s.store.AddGroupMembers)
}

// RemoveGroupMembers ends the memberships of the tenant's users in the
// group; users that are not members are ignored.
func (s *Service) RemoveGroupMembers(ctx context.Context, tenant, id string, userIDs []string) (*Group, error) {
	return s.changeMembers(ctx, tenant, id, userIDs, s.store.RemoveGroupMembers)
}

func (s *Service) changeMembers(ctx context.Context, tenant, id string, userIDs []string,
	change func(ctx context.Context, tenant, id string, userIDs []string) (*Group, error)) (*Group, error) {
	tenant, err := s.oneTenant(ctx, "group", tenant)
	if err != nil {
		return nil, err
	}
	if id, err = checkID("id", id); err != nil {
		return nil, err
	}
	ids, err := memberIDs(userIDs)
	if err != nil {
		return nil, err
	}
	return change(ctx, tenant, id, ids)
}

// ListGroupMembers returns a page of the members of the tenant's group,
// in user id order, and the token of the next page ("" on the last).
func (s *Service) ListGroupMembers(ctx context.Context, tenant, id string, pageSize int, pageToken string) ([]GroupMember, string, error) {
	tenant, err := s.oneTenant(ctx, "parent", tenant)
	if err != nil {
		return nil, "", err
	}
	if id, err = checkID("id", id); err != nil {
		return nil, "", err
	}
	size, err := groupPageSize(pageSize, DefaultMemberPageSize, MaxMemberPageSize)
	if err != nil {
		return nil, "", err
	}
	digest := tenant + "\x00" + id
	var after string
	if pageToken != "" {
		if after, err = s.tokens.parseIDToken("usersd.groups.members", digest, pageToken); err != nil {
			return nil, "", err
		}
	}
	ms, err := s.store.ListGroupMembers(ctx, tenant, id, after, size+1)
	if err != nil || len(ms) <= size {
		return ms, "", err
	}
	return ms[:size], s.tokens.idToken("usersd.groups.members", digest, ms[size-1].UserID), nil
}

// ListUserGroups returns a page of the groups the tenant's user is a
// member of, in group id order, and the token of the next page. A user
// that does not exist is ErrNotFound.
func (s *Service) ListUserGroups(ctx context.Context, tenant, userID string, pageSize int, pageToken string) ([]*Group, string, error) {
	tenant, err := s.oneTenant(ctx, "parent", tenant)
	if err != nil {
		return nil, "", err
	}
	if userID, err = checkID("id", userID); err != nil {
		return nil, "", err
	}
	size, err := groupPageSize(pageSize, DefaultGroupPageSize, MaxGroupPageSize)
	if err != nil {
		return nil, "", err
	}
	digest := tenant + "\x00" + userID
	var after string
	if pageToken != "" {
		if after, err = s.tokens.parseIDToken("usersd.users.groups", digest, pageToken); err != nil {
			return nil, "", err
		}
	}
	if _, err := s.store.GetUser(ctx, tenant, userID); err != nil {
		return nil, "", err
	}
	gs, err := s.store.ListUserGroups(ctx, tenant, userID, after, size+1)
	if err != nil || len(gs) <= size {
		return gs, "", err
	}
	return gs[:size], s.tokens.idToken("usersd.users.groups", digest, gs[size-1].ID), nil
}
