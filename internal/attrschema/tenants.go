package attrschema

import (
	"context"
	"fmt"

	"github.com/usersd/usersd/internal/users"
)

// SettingsReader reads a tenant's settings, cached (tenantrate.Gate): the
// zero settings for a tenant that does not exist.
type SettingsReader interface {
	Settings(ctx context.Context, tenant string) (users.TenantSettings, error)
	Forget(tenant string)
}

// Tenants is the users.AttributeSchemas of the service: each tenant's
// schema, as its cached settings hold it, compiled once (Cache).
type Tenants struct {
	settings SettingsReader
	cache    *Cache
}

var _ users.AttributeSchemas = (*Tenants)(nil)

// DefaultCacheSize is how many compiled schemas NewTenants keeps.
const DefaultCacheSize = 1000

// NewTenants returns the schemas of the tenants whose settings r reads,
// keeping up to cacheSize compiled (DefaultCacheSize when 0).
func NewTenants(r SettingsReader, cacheSize int) *Tenants {
	if cacheSize <= 0 {
		cacheSize = DefaultCacheSize
	}
	return &Tenants{settings: r, cache: NewCache(cacheSize)}
}

// CheckSchema compiles schema; see users.AttributeSchemas.
func (t *Tenants) CheckSchema(field, schema string) error {
	_, err := t.cache.Get(field, []byte(schema))
	return err
}

// CheckAttributes checks attrs against the tenant's schema; see
// users.AttributeSchemas. When the tenant's settings cannot be read, the
// write is refused with the store's error rather than let through
// unchecked.
func (t *Tenants) CheckAttributes(ctx context.Context, tenant, field string, attrs []byte) error {
	st, err := t.settings.Settings(ctx, tenant)
	if err != nil {
		return fmt.Errorf("tenant %s: attribute schema: %w", tenant, err)
	}
	if st.AttributesSchema == "" {
		return nil
	}
	s, err := t.cache.Get("tenant.settings.attributes_schema", []byte(st.AttributesSchema))
	if err != nil {
		// The schema was checked when it was set; one that no longer
		// compiles (a stricter release) refuses nothing.
		return nil
	}
	return s.Validate(field, attrs)
}

// Forget drops the tenant's cached settings; see users.AttributeSchemas.
func (t *Tenants) Forget(tenant string) { t.settings.Forget(tenant) }

// ValidateAttributes checks attrs against schema, compiled once (the
// cache), whatever the tenant's schema is now: a schema check runs for the
// schema it was started for; see users.AttributeSchemas.
func (t *Tenants) ValidateAttributes(field, schema string, attrs []byte) error {
	s, err := t.cache.Get("tenant.settings.attributes_schema", []byte(schema))
	if err != nil {
		// As in CheckAttributes: a schema that no longer compiles
		// refuses nothing.
		return nil
	}
	return s.Validate(field, attrs)
}
