package users

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Service applies the rules of the users API on top of a Store. It is safe
// for concurrent use.
type Service struct {
	store     Store
	tokens    pageTokens
	now       func() time.Time
	chunkSize int
	retention time.Duration
	// eventRetention is how long PurgeEvents keeps events.
	eventRetention time.Duration
	checkURL       func(string) error
	newSecret      func() string
	disableAfter   int
	backlogs       BacklogReader
	gate           TenantGate
	schemas        AttributeSchemas
	exports        chan struct{} // a slot per export running
}

// Config holds the Service's settings. The zero value is usable.
type Config struct {
	// PageTokenKey signs page tokens; nil means DefaultPageTokenKey.
	PageTokenKey []byte
	// Now is the clock; nil means Now. Tests inject their own.
	Now func() time.Time
	// ImportChunkSize is how many rows of an import one job handles; zero
	// means DefaultImportChunkSize.
	ImportChunkSize int
	// DeletedRetention is how long PurgeDeleted keeps soft-deleted users;
	// zero means DefaultDeletedRetention.
	DeletedRetention time.Duration
	// EventRetention is how long PurgeEvents keeps events; zero means
	// DefaultEventRetention.
	EventRetention time.Duration
	// CheckWebhookURL, when set, vets the URL of a webhook subscription
	// (scheme, and addresses that must not be reached).
	CheckWebhookURL func(string) error
	// NewWebhookSecret makes the secret of a new subscription; nil makes
	// a random "whsec_" secret.
	NewWebhookSecret func() string
	// DisableWebhookAfter is how many failed deliveries in a row disable
	// a subscription; zero means DefaultDisableAfter.
	DisableWebhookAfter int
	// Backlogs reads the subscriptions' backlogs (the job queue); nil:
	// WebhookBacklogs reports none.
	Backlogs BacklogReader
	// TenantGate, when set, admits every call made in a tenant first (the
	// per-tenant request rate).
	TenantGate TenantGate
	// AttributeSchemas, when set, checks tenants' attribute schemas and
	// the attributes of their users; without it a tenant cannot have a
	// schema.
	AttributeSchemas AttributeSchemas
	// MaxExports bounds the exports that run at once; zero means
	// DefaultMaxExports.
	MaxExports int
}

// NewService returns a Service that keeps users in store.
func NewService(store Store, cfg Config) *Service {
	s := &Service{
		store:     store,
		tokens:    pageTokens{key: cfg.PageTokenKey},
		now:       cfg.Now,
		chunkSize: cmp.Or(cfg.ImportChunkSize, DefaultImportChunkSize),
		retention: cmp.Or(cfg.DeletedRetention, DefaultDeletedRetention),

		eventRetention: cmp.Or(cfg.EventRetention, DefaultEventRetention),
		checkURL:       cfg.CheckWebhookURL,
		newSecret:      cfg.NewWebhookSecret,
		disableAfter:   cmp.Or(cfg.DisableWebhookAfter, DefaultDisableAfter),
		backlogs:       cfg.Backlogs,
		gate:           cfg.TenantGate,
		schemas:        cfg.AttributeSchemas,
		exports:        make(chan struct{}, cmp.Or(cfg.MaxExports, DefaultMaxExports)),
	}
	if s.tokens.key == nil {
		s.tokens.key = DefaultPageTokenKey
	}
	if s.newSecret == nil {
		s.newSecret = randomSecret
	}
	if s.now == nil {
		s.now = Now
	}
	return s
}

func (s *Service) clock() time.Time { return Truncate(s.now()) }

// CreateRequest is the input of Create.
type CreateRequest struct {
	// Tenant is the tenant to create the user in; "" is DefaultTenant.
	Tenant string
	// User carries the caller's fields: Email, DisplayName, State (ACTIVE,
	// the default, or SUSPENDED) and Labels. Other fields are ignored.
	User *User
	// RequestID, when set, makes the call idempotent.
	RequestID string
}

// Create creates a user. See Store.CreateUser for the idempotency rules.
func (s *Service) Create(ctx context.Context, req CreateRequest) (*User, error) {
	tenant, err := s.oneTenant(ctx, "parent", req.Tenant)
	if err != nil {
		return nil, err
	}
	if req.User == nil {
		return nil, Invalid("user", "required")
	}
	u, err := newUser(req.User, req.RequestID, s.clock())
	if err != nil {
		return nil, err
	}
	u.Tenant = tenant
	if err := s.checkAttributes(ctx, tenant, u.Attributes); err != nil {
		return nil, err
	}
	var key *IdempotencyKey
	if req.RequestID != "" {
		key = &IdempotencyKey{RequestID: req.RequestID, Fingerprint: fingerprint(u)}
	}
	return s.store.CreateUser(ctx, u, key)
}

// newUser validates the caller's fields of a new user, and the request id
// that comes with them, and returns the user to insert, created now.
func newUser(in *User, requestID string, now time.Time) (*User, error) {
	state, err := checkNewUser(in, requestID)
	if err != nil {
		return nil, err
	}
	u := &User{
		ID:          NewID(),
		Email:       in.Email,
		DisplayName: in.DisplayName,
		State:       state,
		Labels:      in.Labels,
		Profile:     in.Profile,
		CreateTime:  now,
		UpdateTime:  now,
		Revision:    1,
	}
	if len(u.Labels) == 0 {
		u.Labels = nil
	}
	return u, nil
}

// checkNewUser validates the caller's fields of a new user and the request
// id that comes with them, and returns the user's initial state.
//
// It puts in's profile fields in their canonical forms.
func checkNewUser(in *User, requestID string) (State, error) {
	var vs violations
	validateUser(&vs, in)
	normalizeProfile(&vs, &in.Profile, nil)
	validateRequestID(&vs, requestID)
	state := in.State
	switch state {
	case StateUnspecified:
		state = StateActive
	case StateActive, StateSuspended:
	default:
		vs.add("user.state", "a new user is ACTIVE or SUSPENDED")
	}
	return state, vs.err()
}

// fingerprint identifies a create request by the fields the caller set.
func fingerprint(u *User) []byte {
	h := sha256.New()
	field := func(s string) {
		h.Write(binary.AppendUvarint(nil, uint64(len(s))))
		h.Write([]byte(s))
	}
	field(u.Email)
	field(u.DisplayName)
	field(u.State.String())
	keys := make([]string, 0, len(u.Labels))
	for k := range u.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		field(k)
		field(u.Labels[k])
	}
	// The profile counts only when it is set, so that requests without
	// one keep the fingerprint they had before profiles existed.
	if p := u.Profile; !p.IsZero() {
		field("profile")
		field(p.ExternalID)
		field(p.GivenName)
		field(p.FamilyName)
		field(p.PhoneNumber)
		field(strconv.FormatBool(p.EmailVerified))
		field(strconv.FormatBool(p.PhoneVerified))
		field(p.Locale)
		field(p.TimeZone)
		field(string(p.Attributes))
	}
	return h.Sum(nil)
}

func checkID(field, id string) (string, error) {
	if id == "" {
		return "", Invalid(field, "required")
	}
	c, ok := canonicalID(id)
	if !ok {
		return "", Invalid(field, fmt.Sprintf("%q is not a UUID", id))
	}
	return c, nil
}

// Get returns the tenant's user with the id, deleted or not.
func (s *Service) Get(ctx context.Context, tenant, id string) (*User, error) {
	tenant, err := s.oneTenant(ctx, "name", tenant)
	if err != nil {
		return nil, err
	}
	id, err = checkID("id", id)
	if err != nil {
		return nil, err
	}
	return s.store.GetUser(ctx, tenant, id)
}

// BatchGet returns the tenant's users with the given ids in the same order
// (AIP-231). If any id is unknown in the tenant it returns ErrNotFound and
// no users.
func (s *Service) BatchGet(ctx context.Context, tenant string, ids []string) ([]*User, error) {
	tenant, err := s.oneTenant(ctx, "parent", tenant)
	if err != nil {
		return nil, err
	}
	if len(ids) > MaxBatchGet {
		return nil, Invalid("ids", fmt.Sprintf("%d ids, more than %d", len(ids), MaxBatchGet))
	}
	var vs violations
	canon := make([]string, len(ids))
	for i, id := range ids {
		c, ok := canonicalID(id)
		if !ok {
			vs.add(fmt.Sprintf("ids[%d]", i), fmt.Sprintf("%q is not a UUID", id))
		}
		canon[i] = c
	}
	if err := vs.err(); err != nil {
		return nil, err
	}
	if len(canon) == 0 {
		return nil, nil
	}
	found, err := s.store.BatchGetUsers(ctx, tenant, canon)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*User, len(found))
	for _, u := range found {
		byID[u.ID] = u
	}
	out := make([]*User, len(canon))
	for i, id := range canon {
		u, ok := byID[id]
		if !ok {
			return nil, fmt.Errorf("user %s: %w", id, ErrNotFound)
		}
		out[i] = u
	}
	return out, nil
}

// ListRequest is the input of List.
type ListRequest struct {
	// Tenant is the tenant whose users are listed; "" is DefaultTenant.
	Tenant      string
	PageSize    int
	PageToken   string
	Filter      string
	OrderBy     string
	ShowDeleted bool
	// Query, when set, searches (see Search); OrderBy must then be empty.
	Query string
	// ShowTotalSize asks for TotalSize.
	ShowTotalSize bool
	// BaseFields: the filter is of the fields before profiles
	// (ParseBaseFilter), for the API version without them.
	BaseFields bool
}

// ListResult is a page of users.
type ListResult struct {
	Users []*User
	// NextPageToken is empty on the last page.
	NextPageToken string
	// TotalSize is how many users match, when the request asked: exact up
	// to MaxExactTotal, an estimate beyond (TotalEstimated).
	TotalSize      int64
	TotalEstimated bool
}

// MaxExactTotal is how far List counts the users that match before it
// estimates: a count reads every match, and it is bounded.
const MaxExactTotal = 10000

// List returns a page of users (AIP-132, AIP-158, AIP-160).
func (s *Service) List(ctx context.Context, req ListRequest) (*ListResult, error) {
	tenant, err := s.oneTenant(ctx, "parent", req.Tenant)
	if err != nil {
		return nil, err
	}
	size := req.PageSize
	switch {
	case size < 0:
		return nil, Invalid("page_size", "must not be negative")
	case size == 0:
		size = DefaultPageSize
	case size > MaxPageSize:
		size = MaxPageSize
	}
	parse := ParseFilter
	if req.BaseFields {
		parse = ParseBaseFilter
	}
	filter, err := parse(req.Filter)
	if err != nil {
		return nil, err
	}
	order, err := ParseOrderBy(req.OrderBy)
	if err != nil {
		return nil, err
	}
	var search *Search
	if req.Query != "" {
		if search, err = ParseSearch(req.Query); err != nil {
			return nil, err
		}
		if strings.TrimSpace(req.OrderBy) != "" {
			return nil, Invalid("order_by", "a search (query) is ordered by how well users match: leave order_by empty")
		}
		order = Order{Field: OrderRank}
	}
	q := ListQuery{Tenant: tenant, Filter: filter, Order: order, ShowDeleted: req.ShowDeleted, Search: search, Limit: size + 1}
	digest := queryDigest(tenant, req.Filter, order, req.ShowDeleted, req.Query)
	if req.PageToken != "" {
		if q.After, err = s.tokens.decode(req.PageToken, digest, order.Field); err != nil {
			return nil, &InvalidError{
				Violations: []FieldViolation{{Field: "page_token", Description: err.Error()}},
				Reason:     ReasonInvalidPageToken,
			}
		}
	}
	us, err := s.store.ListUsers(ctx, q)
	if err != nil {
		return nil, err
	}
	res := &ListResult{Users: us}
	if len(us) > size {
		res.Users = us[:size]
		last := us[size-1]
		c := Cursor{CreateTime: last.CreateTime, EmailKey: EmailKey(last.Email), ID: last.ID}
		if search != nil {
			c.Rank = SearchRank(search, SearchKey(last))
		}
		res.NextPageToken = s.tokens.encode(digest, order.Field, c)
	}
	if req.ShowTotalSize {
		n, exact, err := s.store.CountUsers(ctx, q, MaxExactTotal)
		if err != nil {
			return nil, err
		}
		res.TotalSize, res.TotalEstimated = n, !exact
	}
	return res, nil
}

// Lookup returns the tenant's user, not deleted, with the external id.
func (s *Service) Lookup(ctx context.Context, tenant, externalID string) (*User, error) {
	tenant, err := s.oneTenant(ctx, "parent", tenant)
	if err != nil {
		return nil, err
	}
	if externalID == "" {
		return nil, Invalid("external_id", "required")
	}
	var vs violations
	normalizeProfile(&vs, &Profile{ExternalID: externalID}, map[string]bool{"external_id": true})
	if len(vs) > 0 {
		vs[0].Field = "external_id"
		return nil, vs.err()
	}
	return s.store.LookupUser(ctx, tenant, externalID)
}

// UpdateRequest is the input of Update.
type UpdateRequest struct {
	// Tenant is the user's tenant; "" is DefaultTenant.
	Tenant string
	// User carries the id and the new values.
	User *User
	// Paths are the fields to change (AIP-134) in snake_case or
	// lowerCamelCase: email, display_name, state, labels, the profile
	// fields (external_id, given_name, family_name, phone_number,
	// email_verified, phone_verified, locale, time_zone, attributes), or
	// "*" for all.
	// Empty means every field that is set in User. Output-only fields are
	// ignored.
	Paths []string
	// Etag, when set, must be the user's current etag.
	Etag string
	// BaseFields: Paths name only the fields before profiles (email,
	// display_name, state, labels; "*" is those), for the API version
	// without them.
	BaseFields bool
}

var (
	updatablePaths = map[string]string{
		"email": "email", "display_name": "display_name", "displayName": "display_name",
		"state": "state", "labels": "labels",
		"external_id": "external_id", "externalId": "external_id",
		"given_name": "given_name", "givenName": "given_name",
		"family_name": "family_name", "familyName": "family_name",
		"phone_number": "phone_number", "phoneNumber": "phone_number",
		"email_verified": "email_verified", "emailVerified": "email_verified",
		"phone_verified": "phone_verified", "phoneVerified": "phone_verified",
		"locale": "locale", "time_zone": "time_zone", "timeZone": "time_zone",
		"attributes": "attributes",
	}
	// baseFields are the fields of User before profiles.
	baseFields = map[string]bool{"email": true, "display_name": true, "state": true, "labels": true}

	outputOnlyPaths = map[string]bool{
		"id": true, "create_time": true, "createTime": true, "update_time": true, "updateTime": true,
		"delete_time": true, "deleteTime": true, "etag": true,
	}
)

// Update changes the user's fields named by the request.
func (s *Service) Update(ctx context.Context, req UpdateRequest) (*User, error) {
	tenant, err := s.oneTenant(ctx, "user.name", req.Tenant)
	if err != nil {
		return nil, err
	}
	in := req.User
	if in == nil {
		return nil, Invalid("user", "required")
	}
	id, err := checkID("user.id", in.ID)
	if err != nil {
		return nil, err
	}
	fields, err := updateFields(in, req.Paths, req.BaseFields)
	if err != nil {
		return nil, err
	}
	var vs violations
	if fields["email"] {
		validateEmail(&vs, "user.email", in.Email)
	}
	if fields["display_name"] {
		validateDisplayName(&vs, "user.display_name", in.DisplayName)
	}
	if fields["labels"] {
		validateLabels(&vs, "user.labels", in.Labels)
	}
	if fields["state"] && in.State != StateActive && in.State != StateSuspended {
		vs.add("user.state", "can be set to ACTIVE or SUSPENDED; use DeleteUser and UndeleteUser for the rest")
	}
	normalizeProfile(&vs, &in.Profile, fields)
	if err := vs.err(); err != nil {
		return nil, err
	}
	etag := normalizeEtag(req.Etag)
	return s.store.UpdateUser(ctx, tenant, id, func(u *User) error {
		if err := checkEtag(u, etag); err != nil {
			return err
		}
		if u.State == StateDeleted {
			return fmt.Errorf("user %s is deleted; undelete it first: %w", u.ID, ErrWrongState)
		}
		if fields["email"] {
			u.Email = in.Email
		}
		if fields["display_name"] {
			u.DisplayName = in.DisplayName
		}
		if fields["state"] {
			u.State = in.State
		}
		if fields["labels"] {
			u.Labels = in.Labels
			if len(u.Labels) == 0 {
				u.Labels = nil
			}
		}
		setProfile(&u.Profile, &in.Profile, fields)
		if fields["attributes"] {
			if err := s.checkAttributes(ctx, tenant, u.Attributes); err != nil {
				return err
			}
		}
		u.UpdateTime = s.clock()
		return nil
	})
}

// updateFields resolves an update mask into the set of fields to change.
func updateFields(in *User, paths []string, base bool) (map[string]bool, error) {
	fields := make(map[string]bool, 4)
	if len(paths) == 0 {
		fields["email"] = in.Email != ""
		fields["display_name"] = in.DisplayName != ""
		fields["state"] = in.State != StateUnspecified
		fields["labels"] = len(in.Labels) > 0
		p := &in.Profile
		fields["external_id"] = p.ExternalID != ""
		fields["given_name"] = p.GivenName != ""
		fields["family_name"] = p.FamilyName != ""
		fields["phone_number"] = p.PhoneNumber != ""
		fields["email_verified"] = p.EmailVerified
		fields["phone_verified"] = p.PhoneVerified
		fields["locale"] = p.Locale != ""
		fields["time_zone"] = p.TimeZone != ""
		fields["attributes"] = p.Attributes != nil
		return fields, nil
	}
	for _, p := range paths {
		if strings.HasPrefix(p, "attributes.") {
			// A path into the attributes (the HTTP gateway makes one
			// of each member of the body's object): the whole object
			// is replaced by the request's.
			p = "attributes"
		}
		switch {
		case p == "*":
			for _, f := range updatablePaths {
				fields[f] = !base || baseFields[f]
			}
		case base && !baseFields[updatablePaths[p]] && !outputOnlyPaths[p]:
			return nil, Invalid("update_mask", fmt.Sprintf("unknown or unchangeable field %q (want email, display_name, state, labels or *)", p))
		case updatablePaths[p] != "":
			fields[updatablePaths[p]] = true
		case outputOnlyPaths[p]:
		default:
			return nil, Invalid("update_mask", fmt.Sprintf("unknown or unchangeable field %q (want email, display_name, state, labels, a profile field or *)", p))
		}
	}
	return fields, nil
}

func checkEtag(u *User, etag string) error {
	if etag != "" && etag != u.Etag() {
		return fmt.Errorf("user %s has changed (etag %q, yours %q): %w", u.ID, u.Etag(), etag, ErrEtagMismatch)
	}
	return nil
}

// Delete soft-deletes the tenant's user (AIP-164) and returns it.
func (s *Service) Delete(ctx context.Context, tenant, id, etag string) (*User, error) {
	return s.changeUser(ctx, tenant, id, etag, func(u *User) error {
		if u.State == StateDeleted {
			return fmt.Errorf("user %s is already deleted: %w", u.ID, ErrWrongState)
		}
		now := s.clock()
		u.State, u.DeleteTime, u.UpdateTime = StateDeleted, now, now
		return nil
	})
}

// Undelete restores the tenant's soft-deleted user to ACTIVE and returns
// it.
func (s *Service) Undelete(ctx context.Context, tenant, id, etag string) (*User, error) {
	return s.changeUser(ctx, tenant, id, etag, func(u *User) error {
		if u.State != StateDeleted {
			return fmt.Errorf("user %s is not deleted: %w", u.ID, ErrWrongState)
		}
		u.State, u.DeleteTime, u.UpdateTime = StateActive, time.Time{}, s.clock()
		return nil
	})
}

// changeUser runs fn on the tenant's user with the id (a request's "id"
// field) under the store's lock, after checking the caller's etag.
func (s *Service) changeUser(ctx context.Context, tenant, id, etag string, fn func(*User) error) (*User, error) {
	tenant, err := s.oneTenant(ctx, "name", tenant)
	if err != nil {
		return nil, err
	}
	id, err = checkID("id", id)
	if err != nil {
		return nil, err
	}
	etag = normalizeEtag(etag)
	return s.store.UpdateUser(ctx, tenant, id, func(u *User) error {
		if err := checkEtag(u, etag); err != nil {
			return err
		}
		return fn(u)
	})
}

// setProfile copies the profile fields named in fields from in to p.
func setProfile(p, in *Profile, fields map[string]bool) {
	for f, set := range fields {
		if !set {
			continue
		}
		switch f {
		case "external_id":
			p.ExternalID = in.ExternalID
		case "given_name":
			p.GivenName = in.GivenName
		case "family_name":
			p.FamilyName = in.FamilyName
		case "phone_number":
			p.PhoneNumber = in.PhoneNumber
		case "email_verified":
			p.EmailVerified = in.EmailVerified
		case "phone_verified":
			p.PhoneVerified = in.PhoneVerified
		case "locale":
			p.Locale = in.Locale
		case "time_zone":
			p.TimeZone = in.TimeZone
		case "attributes":
			p.Attributes = in.Attributes
		}
	}
}

// checkAttributes checks attrs against the tenant's schema, if it has one.
// A write that sets a user's attributes passes it (a create always does);
// one that leaves them alone does not, so that a new schema does not
// refuse every other change to the users that break it.
func (s *Service) checkAttributes(ctx context.Context, tenant string, attrs []byte) error {
	if s.schemas == nil {
		return nil
	}
	return s.schemas.CheckAttributes(ctx, tenant, "user.attributes", attrs)
}

// IsBaseField reports whether a change's path (Event.Paths) names a field
// users had before profiles: the fields of the API version without them.
func IsBaseField(path string) bool { return baseFields[path] || path == "delete_time" }
