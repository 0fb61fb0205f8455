package usersql

import "github.com/usersd/usersd/internal/users"

// StoredTenant returns t as a store reads it back: times in UTC at
// microsecond precision, a NULL delete time as the zero time.
func StoredTenant(t *users.Tenant) *users.Tenant {
	t.CreateTime, t.UpdateTime = users.Truncate(t.CreateTime), users.Truncate(t.UpdateTime)
	t.DeleteTime = storedTime(t.DeleteTime)
	return t
}

// Quota is a tenant's limit of users that are not deleted
// (TenantSettings.MaxUsers), 0 for none, and how many it has, counted up
// to the limit.
type Quota struct {
	Tenant string
	Max    int64
	Live   int64
}

// Full reports whether the tenant may have no more users.
func (q Quota) Full() bool { return q.Max > 0 && q.Live >= q.Max }

// Left is how many more users the tenant may have; -1 for no limit.
func (q Quota) Left() int64 {
	if q.Max == 0 {
		return -1
	}
	return max(0, q.Max-q.Live)
}

// Err is the error of a change the quota does not allow.
func (q Quota) Err() error { return &users.QuotaError{Tenant: q.Tenant, MaxUsers: q.Max} }

// LiveUsers is the statement that counts the tenant's users that are not
// deleted (first placeholder) up to a limit (second): a limited tenant's
// count costs at most its limit, whatever else the tenant holds. It reads
// the index of live addresses, which holds exactly those users.
func LiveUsers(d Dialect) string {
	return "SELECT count(*) FROM (SELECT 1 FROM users WHERE tenant_id = " + d.Placeholder(1) +
		" AND state <> 'DELETED' LIMIT " + d.Placeholder(2) + ") AS live"
}

// PurgeTenants are the statements, in order, that remove the tenants
// deleted before the time bound to the first placeholder (a d.Time) and
// left with no users, with their operations, webhook subscriptions and
// groups. The chunks of the operations, the delivery attempts of the
// subscriptions and the memberships of the groups (gone already with the
// tenant's users) follow by cascade. The groups go before the tenant,
// whose row they refer to.
func PurgeTenants(d Dialect) []string {
	gone := "SELECT id FROM tenants WHERE state = 'DELETED' AND delete_time < " + d.Placeholder(1) +
		" AND NOT EXISTS (SELECT 1 FROM users WHERE users.tenant_id = tenants.id)"
	return []string{
		"DELETE FROM webhooks WHERE tenant_id IN (" + gone + ")",
		"DELETE FROM operations WHERE tenant_id IN (" + gone + ")",
		"DELETE FROM groups WHERE tenant_id IN (" + gone + ")",
		"DELETE FROM tenants WHERE id IN (" + gone + ")",
	}
}

// TenantMatch is the condition that a row's tenant_id is the tenant bound
// to the placeholder p, while that tenant is not deleted, or that p is
// users.AllTenants.
func TenantMatch(p string) string {
	return "(" + p + " = '" + users.AllTenants + "' OR (tenant_id = " + p + " AND " + LiveTenant(p) + "))"
}

// NullText is s, or NULL for "".
func NullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}
