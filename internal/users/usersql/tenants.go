package usersql

import "github.com/usersd/usersd/internal/users"

// StoredTenant returns t as a store reads it back: times in UTC at
// microsecond precision, a NULL delete time as the zero time.
func StoredTenant(t *users.Tenant) *users.Tenant {
	t.CreateTime, t.UpdateTime = users.Truncate(t.CreateTime), users.Truncate(t.UpdateTime)
	t.DeleteTime = storedTime(t.DeleteTime)
	return t
}
