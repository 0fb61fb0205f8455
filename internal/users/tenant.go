package users

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
)

// DefaultTenant is the id of the tenant that always exists: v1 and the
// unversioned paths act on it. It cannot be deleted.
const DefaultTenant = "default"

// AllTenants stands for every tenant in the calls that read across them
// (the event feed, webhook subscriptions): AIP-159's "-". Only a caller
// that is not bound to a tenant may use it.
const AllTenants = "-"

type boundTenantKey struct{}

// BindTenant returns a copy of ctx for a caller that may act in the tenant
// only: the Service answers its calls about any other tenant, or about
// AllTenants, with ErrNotFound, as if nothing were there, so that what
// exists in another tenant does not show. The API's authentication binds
// each caller that lacks the platform scope.
func BindTenant(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, boundTenantKey{}, tenant)
}

// BoundTenant returns the tenant ctx's caller is bound to, and whether it
// is bound to one.
func BoundTenant(ctx context.Context) (string, bool) {
	t, ok := ctx.Value(boundTenantKey{}).(string)
	return t, ok
}

// inTenant returns the tenant a call acts in: tenant, from the request
// field named field, or DefaultTenant when it is empty. It returns an
// *InvalidError when tenant is not a tenant id, ErrNotFound when the caller
// is bound to another tenant, and the gate's error when the tenant's
// request rate is spent. AllTenants passes for a caller that is not bound;
// the calls that do not read across tenants refuse it with oneTenant.
func (s *Service) inTenant(ctx context.Context, field, tenant string) (string, error) {
	if tenant == "" {
		tenant = DefaultTenant
	}
	if tenant != AllTenants {
		if err := CheckTenantID(field, tenant); err != nil {
			return "", err
		}
	}
	if bound, ok := BoundTenant(ctx); ok && bound != tenant {
		// Nothing of the request in the message: the answer is the same
		// whatever the other tenant holds, and whichever it is.
		return "", ErrNotFound
	}
	if s.gate != nil && tenant != AllTenants {
		if err := s.gate.Admit(ctx, tenant); err != nil {
			return "", err
		}
	}
	return tenant, nil
}

// oneTenant is inTenant for the calls that act in one tenant, which refuse
// AllTenants.
func (s *Service) oneTenant(ctx context.Context, field, tenant string) (string, error) {
	if tenant == AllTenants {
		return "", Invalid(field, `names one tenant; "-" (every tenant) is not allowed here`)
	}
	return s.inTenant(ctx, field, tenant)
}

// TenantGate admits the calls made in a tenant: the per-tenant request
// rate (TenantSettings.RequestsPerSecond). Admit returns nil, or a
// *RateError when the tenant's rate is spent.
type TenantGate interface {
	Admit(ctx context.Context, tenant string) error
}

// Bounds of tenants.
const (
	DefaultTenantPageSize = 50
	MaxTenantPageSize     = 1000
	// MaxTenantRequestsPerSecond bounds TenantSettings.RequestsPerSecond.
	MaxTenantRequestsPerSecond = 1_000_000
)

// Tenant is a customer of the platform: a namespace of users kept apart
// from every other tenant's.
type Tenant struct {
	// ID is chosen by its creator (AIP-122): 3 to 63 lower-case letters,
	// digits and hyphens, starting with a letter and not ending with a
	// hyphen, such as "acme".
	ID          string
	DisplayName string
	// State is StateActive or StateDeleted.
	State    State
	Settings TenantSettings
	// CreateTime, UpdateTime and DeleteTime (zero unless deleted).
	CreateTime time.Time
	UpdateTime time.Time
	DeleteTime time.Time
	// Revision counts the changes made to the tenant, as User.Revision.
	Revision int64
	// SchemaCheck is the id of the latest schema check (SchemaCheck), an
	// operation of the tenant: the one started when Settings.
	// AttributesSchema was last set to a new schema; "" until it first
	// was. Removing the schema leaves it. A tenant stored with a
	// SchemaCheck other than the one it had starts that check
	// (TenantStore).
	SchemaCheck string
}

// TenantSettings are a tenant's limits; zero means no limit.
type TenantSettings struct {
	// MaxUsers bounds how many users that are not deleted the tenant may
	// have.
	MaxUsers int64
	// RequestsPerSecond bounds the requests of all the tenant's callers
	// together, on one replica.
	RequestsPerSecond float64
	// AttributesSchema, when not "", is a JSON Schema (draft 2020-12)
	// that the attributes of the tenant's users must satisfy, as JSON
	// text; see AttributeSchemas.
	AttributesSchema string
}

// AttributeSchemas checks tenants' attribute schemas and users'
// attributes against them.
type AttributeSchemas interface {
	// CheckSchema returns nil when schema (TenantSettings.
	// AttributesSchema) is one a tenant may have, or an *InvalidError
	// naming field.
	CheckSchema(field string, schema string) error
	// CheckAttributes returns nil when attrs (normalized; nil for none)
	// satisfy the schema of the tenant, or it has none, or an
	// *InvalidError whose violations name field followed by the JSON
	// pointer of each failing value.
	CheckAttributes(ctx context.Context, tenant, field string, attrs []byte) error
	// Forget drops what is known of the tenant's schema: the tenant has
	// changed.
	Forget(tenant string)
	// ValidateAttributes returns nil when attrs (normalized; nil for
	// none) satisfy schema, a schema CheckSchema accepted, or an
	// *InvalidError as CheckAttributes does. A schema that no longer
	// compiles refuses nothing, as in CheckAttributes.
	ValidateAttributes(field, schema string, attrs []byte) error
}

// Etag returns the tenant's etag (AIP-154), which changes with every
// update.
func (t *Tenant) Etag() string {
	sum := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("tenant/"+t.ID+"/"), uint64(t.Revision)))
	return hex.EncodeToString(sum[:8])
}

// Clone returns a copy of t.
func (t *Tenant) Clone() *Tenant {
	c := *t
	return &c
}

// TenantQuery selects a page of ListTenants: up to Limit tenants by id,
// after the id After, deleted ones only when ShowDeleted is set.
type TenantQuery struct {
	After       string
	Limit       int
	ShowDeleted bool
}

// TenantStore keeps tenants.
//
// A tenant that CreateTenant or UpdateTenant stores with a SchemaCheck
// other than "" and than the one stored before starts that schema check in
// the same transaction: the store inserts the operation of the tenant with
// that id (Kind OperationSchemaCheck, one chunk, created at the tenant's
// UpdateTime) and enqueues on its job queue the SchemaCheck of the
// tenant's Settings.AttributesSchema, so that the check runs if and only
// if the tenant's change commits. A failed enqueue fails the call, which
// then stores nothing.
type TenantStore interface {
	// CreateTenant inserts t; it returns ErrIDTaken when a tenant with
	// t.ID exists, deleted or not.
	CreateTenant(ctx context.Context, t *Tenant) (*Tenant, error)
	// GetTenant returns the tenant with the id, deleted or not, or
	// ErrNotFound.
	GetTenant(ctx context.Context, id string) (*Tenant, error)
	// ListTenants returns the tenants q selects, by id.
	ListTenants(ctx context.Context, q TenantQuery) ([]*Tenant, error)
	// UpdateTenant reads the tenant, locks it, and stores what fn made of
	// a copy with Revision incremented, as UserStore.UpdateUser; it
	// returns ErrNotFound for an unknown id.
	UpdateTenant(ctx context.Context, id string, fn func(*Tenant) error) (*Tenant, error)
}

var tenantID = regexp.MustCompile(`^[a-z][a-z0-9-]{1,61}[a-z0-9]$`)

// CheckTenantID reports whether id is a valid tenant id, with an
// *InvalidError on field otherwise.
func CheckTenantID(field, id string) error {
	switch {
	case id == "":
		return Invalid(field, "required")
	case !tenantID.MatchString(id):
		return Invalid(field, fmt.Sprintf("%q is not a tenant id: 3 to 63 lower-case letters, digits and hyphens, starting with a letter and not ending with a hyphen", id))
	}
	return nil
}

// TenantRequest is the input of CreateTenant and UpdateTenant.
type TenantRequest struct {
	DisplayName string
	Settings    TenantSettings
	// Etag, for UpdateTenant, when set must match the stored tenant's.
	Etag string
	// Paths, for UpdateTenant, are the fields to change: display_name,
	// settings (both limits, and the schema when the request has one),
	// settings.max_users, settings.requests_per_second,
	// settings.attributes_schema (which removes it when the request has
	// none); empty means display_name and settings.
	Paths []string
}

func (s *Service) checkTenant(vs *violations, req TenantRequest, fields map[string]bool) {
	if fields["display_name"] {
		switch n := len([]rune(req.DisplayName)); {
		case strings.TrimSpace(req.DisplayName) == "":
			vs.add("tenant.display_name", "required")
		case n > 200:
			vs.add("tenant.display_name", "at most 200 characters")
		case textProblem(req.DisplayName) != "":
			vs.add("tenant.display_name", textProblem(req.DisplayName))
		}
	}
	if fields["settings.max_users"] && req.Settings.MaxUsers < 0 {
		vs.add("tenant.settings.max_users", "must not be negative (0: no limit)")
	}
	if fields["settings.requests_per_second"] {
		r := req.Settings.RequestsPerSecond
		if math.IsNaN(r) || r < 0 || r > MaxTenantRequestsPerSecond {
			vs.add("tenant.settings.requests_per_second", fmt.Sprintf("must be between 0 (no limit) and %d", MaxTenantRequestsPerSecond))
		}
	}
	if fields["settings.attributes_schema"] && req.Settings.AttributesSchema != "" {
		const field = "tenant.settings.attributes_schema"
		if s.schemas == nil {
			vs.add(field, "this server does not check attribute schemas")
		} else if err := s.schemas.CheckSchema(field, req.Settings.AttributesSchema); err != nil {
			vs.addAll(err)
		}
	}
}

// CreateTenant creates a tenant with the id its caller chose.
func (s *Service) CreateTenant(ctx context.Context, id string, req TenantRequest) (*Tenant, error) {
	var vs violations
	if err := CheckTenantID("tenant_id", id); err != nil {
		vs = append(vs, err.(*InvalidError).Violations...)
	}
	s.checkTenant(&vs, req, map[string]bool{"display_name": true, "settings.max_users": true, "settings.requests_per_second": true, "settings.attributes_schema": true})
	if err := vs.err(); err != nil {
		return nil, err
	}
	now := s.clock()
	t := &Tenant{
		ID: id, DisplayName: req.DisplayName, State: StateActive, Settings: req.Settings,
		CreateTime: now, UpdateTime: now, Revision: 1,
	}
	if t.Settings.AttributesSchema != "" {
		// A new tenant has no users, but its check says so as any other.
		t.SchemaCheck = NewID()
	}
	return s.store.CreateTenant(ctx, t)
}

// GetTenant returns the tenant with the id, deleted or not.
func (s *Service) GetTenant(ctx context.Context, id string) (*Tenant, error) {
	if err := CheckTenantID("name", id); err != nil {
		return nil, err
	}
	return s.store.GetTenant(ctx, id)
}

// TenantPage is a page of ListTenants.
type TenantPage struct {
	Tenants []*Tenant
	// NextPageToken reads the next page; "" on the last.
	NextPageToken string
}

// ListTenants returns a page of tenants by id.
func (s *Service) ListTenants(ctx context.Context, pageSize int, pageToken string, showDeleted bool) (*TenantPage, error) {
	switch {
	case pageSize < 0:
		return nil, Invalid("page_size", "must not be negative")
	case pageSize == 0:
		pageSize = DefaultTenantPageSize
	case pageSize > MaxTenantPageSize:
		pageSize = MaxTenantPageSize
	}
	q := TenantQuery{Limit: pageSize + 1, ShowDeleted: showDeleted}
	if pageToken != "" {
		after, ok := s.tokens.decodeTenants(pageToken, showDeleted)
		if !ok {
			return nil, Invalid("page_token", "not a page token of this list (made with other parameters, or changed)")
		}
		q.After = after
	}
	ts, err := s.store.ListTenants(ctx, q)
	if err != nil {
		return nil, err
	}
	page := &TenantPage{Tenants: ts}
	if len(ts) > pageSize {
		page.Tenants = ts[:pageSize]
		page.NextPageToken = s.tokens.encodeTenants(ts[pageSize-1].ID, showDeleted)
	}
	return page, nil
}

// tenantPaths are the fields UpdateTenant changes, by the mask paths that
// name them, in proto and JSON names.
var tenantPaths = map[string][]string{
	"display_name": {"display_name"}, "displayName": {"display_name"},
	"settings":                   {"settings.max_users", "settings.requests_per_second"},
	"settings.attributes_schema": {"settings.attributes_schema"}, "settings.attributesSchema": {"settings.attributes_schema"},
	"settings.max_users": {"settings.max_users"}, "settings.maxUsers": {"settings.max_users"},
	"settings.requests_per_second": {"settings.requests_per_second"}, "settings.requestsPerSecond": {"settings.requests_per_second"},
}

// UpdateTenant changes the fields of the tenant that req.Paths name.
func (s *Service) UpdateTenant(ctx context.Context, id string, req TenantRequest) (*Tenant, error) {
	if err := CheckTenantID("tenant.name", id); err != nil {
		return nil, err
	}
	paths := req.Paths
	if len(paths) == 0 {
		paths = []string{"display_name", "settings"}
	}
	fields := map[string]bool{}
	for _, p := range paths {
		if strings.HasPrefix(p, "settings.attributes_schema.") || strings.HasPrefix(p, "settings.attributesSchema.") {
			// A path into the schema (the HTTP gateway makes one of
			// each member of the body's object): the schema is
			// replaced whole.
			p = "settings.attributes_schema"
		}
		if p == "settings" && req.Settings.AttributesSchema != "" {
			// The schema too, when the request carries one: a client
			// that knows no schema, sending its limits, keeps it.
			fields["settings.attributes_schema"] = true
		}
		fs, ok := tenantPaths[p]
		if !ok {
			return nil, Invalid("update_mask", fmt.Sprintf("unknown or unchangeable field %q (want display_name, settings, settings.max_users, settings.requests_per_second or settings.attributes_schema)", p))
		}
		for _, f := range fs {
			fields[f] = true
		}
	}
	var vs violations
	s.checkTenant(&vs, req, fields)
	if err := vs.err(); err != nil {
		return nil, err
	}
	return s.changeTenant(ctx, id, req.Etag, func(t *Tenant) error {
		if t.State == StateDeleted {
			return fmt.Errorf("tenant %s is deleted; undelete it first: %w", id, ErrWrongState)
		}
		if fields["display_name"] {
			t.DisplayName = req.DisplayName
		}
		if fields["settings.max_users"] {
			t.Settings.MaxUsers = req.Settings.MaxUsers
		}
		if fields["settings.requests_per_second"] {
			t.Settings.RequestsPerSecond = req.Settings.RequestsPerSecond
		}
		if fields["settings.attributes_schema"] {
			if schema := req.Settings.AttributesSchema; schema != "" && !sameSchema(schema, t.Settings.AttributesSchema) {
				// A new schema: the store starts its check in the
				// transaction that sets it (RunSchemaCheck).
				t.SchemaCheck = NewID()
			}
			t.Settings.AttributesSchema = req.Settings.AttributesSchema
		}
		return nil
	})
}

// DeleteTenant soft-deletes a tenant (AIP-164). The default tenant cannot
// be deleted.
func (s *Service) DeleteTenant(ctx context.Context, id, etag string) (*Tenant, error) {
	if err := CheckTenantID("name", id); err != nil {
		return nil, err
	}
	if id == DefaultTenant {
		return nil, fmt.Errorf("the default tenant cannot be deleted: %w", ErrWrongState)
	}
	return s.changeTenant(ctx, id, etag, func(t *Tenant) error {
		if t.State == StateDeleted {
			return fmt.Errorf("tenant %s is already deleted: %w", id, ErrWrongState)
		}
		t.State, t.DeleteTime = StateDeleted, s.clock()
		return nil
	})
}

// UndeleteTenant restores a soft-deleted tenant.
func (s *Service) UndeleteTenant(ctx context.Context, id, etag string) (*Tenant, error) {
	if err := CheckTenantID("name", id); err != nil {
		return nil, err
	}
	return s.changeTenant(ctx, id, etag, func(t *Tenant) error {
		if t.State != StateDeleted {
			return fmt.Errorf("tenant %s is not deleted: %w", id, ErrWrongState)
		}
		t.State, t.DeleteTime = StateActive, time.Time{}
		return nil
	})
}

// changeTenant applies fn to the tenant under the etag check, and stamps
// the update time.
func (s *Service) changeTenant(ctx context.Context, id, etag string, fn func(*Tenant) error) (*Tenant, error) {
	etag = normalizeEtag(etag)
	if s.schemas != nil {
		// This replica checks the next write against the tenant as
		// changed; the others within their cache's time to live.
		defer s.schemas.Forget(id)
	}
	return s.store.UpdateTenant(ctx, id, func(t *Tenant) error {
		if etag != "" && etag != t.Etag() {
			return fmt.Errorf("tenant %s has changed (etag %q, yours %q): %w", id, t.Etag(), etag, ErrEtagMismatch)
		}
		if err := fn(t); err != nil {
			return err
		}
		t.UpdateTime = s.clock()
		return nil
	})
}

// ListTenants' page tokens hold the last id of a page and whether deleted
// tenants are listed, signed with the page token key.
const tenantTokenDomain = "usersd.users.v2.ListTenants"

func (p pageTokens) encodeTenants(after string, showDeleted bool) string {
	b := []byte{pageTokenVersion, 0}
	if showDeleted {
		b[1] = 1
	}
	b = append(b, after...)
	return base64.RawURLEncoding.EncodeToString(append(b, p.sign(tenantTokenDomain, b)...))
}

func (p pageTokens) decodeTenants(token string, showDeleted bool) (string, bool) {
	if strings.ContainsAny(token, "\r\n") {
		return "", false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(b) < 2+pageTokenMACSize || b[0] != pageTokenVersion {
		return "", false
	}
	msg, sum := b[:len(b)-pageTokenMACSize], b[len(b)-pageTokenMACSize:]
	if !hmac.Equal(sum, p.sign(tenantTokenDomain, msg)) || (msg[1] == 1) != showDeleted {
		return "", false
	}
	after := string(msg[2:])
	return after, tenantID.MatchString(after)
}
