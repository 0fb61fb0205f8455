// Package names reads and writes the AIP-122 resource names of the users
// API: "tenants/{tenant}", the resources of a tenant
// ("tenants/{tenant}/users/{id}", "tenants/{tenant}/operations/{id}",
// "tenants/{tenant}/webhooks/{id}", "tenants/{tenant}/groups/{id}", each
// also written without the tenant for the default tenant's), and
// "userEvents/{id}". It is the one parser of
// those names; the API server and the authorization rules both use it.
// Whether an {id} is a UUID or a tenant id is not its concern: the domain
// checks ids.
package names

import (
	"fmt"
	"strings"
)

// Collection is one kind of resource, named "{collection}/{id}".
type Collection struct {
	prefix string // the collection id and "/"
	noun   string // what a name of the collection is called, with its article
}

// The collections of the users API.
var (
	Users      = Collection{prefix: "users/", noun: "a user name"}
	Operations = Collection{prefix: "operations/", noun: "an operation name"}
	UserEvents = Collection{prefix: "userEvents/", noun: "a user event name"}
	Webhooks   = Collection{prefix: "webhooks/", noun: "a webhook name"}
	Groups     = Collection{prefix: "groups/", noun: "a group name"}
	Tenants    = Collection{prefix: "tenants/", noun: "a tenant name"}
)

// Name returns the resource name of the resource with the id.
func (c Collection) Name(id string) string { return c.prefix + id }

// ID returns the id in name, what follows the collection's prefix, and
// true; or "" and false when name is not one of the collection's: the
// prefix followed by something.
func (c Collection) ID(name string) (string, bool) {
	id, ok := strings.CutPrefix(name, c.prefix)
	if !ok || id == "" {
		return "", false
	}
	return id, true
}

// NotOne says that name is not one of the collection's, for an error
// message: `"x" is not a user name (users/{id})`.
func (c Collection) NotOne(name string) string {
	return fmt.Sprintf("%q is not %s (%s{id})", name, c.noun, c.prefix)
}

// InTenant returns the name of the tenant's resource with the id:
// "tenants/{tenant}/{collection}/{id}".
func (c Collection) InTenant(tenant, id string) string {
	return Tenants.prefix + tenant + "/" + c.prefix + id
}

// Scoped reads the name of a tenant's resource: the tenant and the id of
// "tenants/{tenant}/{collection}/{id}", or "" and the id of
// "{collection}/{id}", the default tenant's; false when name is neither.
func (c Collection) Scoped(name string) (tenant, id string, ok bool) {
	rest, scoped := strings.CutPrefix(name, Tenants.prefix)
	if !scoped {
		id, ok = c.ID(name)
		return "", id, ok
	}
	tenant, rest, ok = strings.Cut(rest, "/")
	if !ok || tenant == "" {
		return "", "", false
	}
	id, ok = c.ID(rest)
	return tenant, id, ok
}

// NotScoped says that name is not one of the collection's, for an error
// message: `"x" is not a user name (tenants/{tenant}/users/{id})`.
func (c Collection) NotScoped(name string) string {
	return fmt.Sprintf("%q is not %s (%s{tenant}/%s{id})", name, c.noun, Tenants.prefix, c.prefix)
}
