package auth

import (
	"strings"

	"github.com/google/uuid"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/names"
)

// The scopes of the users API.
const (
	// ScopeRead reads any user: GetUser, ListUsers, BatchGetUsers, and the
	// feed of user events (ListUserEvents, WatchUserEvents).
	ScopeRead = "users.read"
	// ScopeWrite creates, changes and deletes any user; it implies
	// ScopeRead.
	ScopeWrite = "users.write"
	// ScopeAdmin imports users, follows imports, undeletes users and
	// manages webhook subscriptions, which can send every user elsewhere;
	// it implies ScopeWrite and ScopeRead.
	ScopeAdmin = "users.admin"
	// ScopeTenantsAdmin is the platform's scope: it manages tenants
	// (TenantService) and implies ScopeAdmin.
	ScopeTenantsAdmin = "tenants.admin"
	// ScopeSCIM provisions a tenant's users and groups over SCIM 2.0
	// (internal/scim, /scim/v2/tenants/{tenant}/), the scope an identity
	// provider's token carries. It implies no other scope and no other
	// scope implies it but ScopeTenantsAdmin: a token of the users API
	// does not provision, and a provisioning token does not call the API.
	ScopeSCIM = "scim"
)

// implies lists the scopes each scope grants besides itself.
var implies = map[string][]string{
	ScopeTenantsAdmin: {ScopeAdmin, ScopeWrite, ScopeRead, ScopeSCIM},
	ScopeAdmin:        {ScopeWrite, ScopeRead},
	ScopeWrite:        {ScopeRead},
}

// rule says who may call one RPC, in every version of the API.
type rule struct {
	// scope lets any caller make the call.
	scope string
	// self, when not nil, reports whether a request, read through the
	// requests of its API version, acts only on the user whose id is sub,
	// in a way that user may act on itself: then no scope is needed.
	self func(sub string, r requests, req any) bool
}

// rules is the one table of who may call what, by method name without the
// API version: "UserService/GetUser" stands for /users.v1.UserService/GetUser
// and /users.v2.UserService/GetUser. An RPC it does not list is denied to
// everyone (TestRulesCoverEveryRPC fails when a method of users.v1 or
// users.v2 is missing). docs/security.md shows the same table.
var rules = map[string]rule{
	"UserService/CreateUser":    {scope: ScopeWrite},
	"UserService/GetUser":       {scope: ScopeRead, self: ownUser},
	"UserService/ListUsers":     {scope: ScopeRead},
	"UserService/UpdateUser":    {scope: ScopeWrite, self: ownProfile},
	"UserService/DeleteUser":    {scope: ScopeWrite},
	"UserService/UndeleteUser":  {scope: ScopeAdmin},
	"UserService/BatchGetUsers": {scope: ScopeRead, self: ownUsers},
	"UserService/LookupUser":    {scope: ScopeRead},
	"UserService/ExportUsers":   {scope: ScopeAdmin},
	"UserService/ImportUsers":   {scope: ScopeAdmin},
	"UserService/GetOperation":  {scope: ScopeAdmin},
	// The feed shows every user: no self rule.
	"UserService/ListUserEvents":  {scope: ScopeRead},
	"UserService/WatchUserEvents": {scope: ScopeRead},
	// A subscription receives every user event.
	"UserService/CreateWebhook":         {scope: ScopeAdmin},
	"UserService/GetWebhook":            {scope: ScopeAdmin},
	"UserService/ListWebhooks":          {scope: ScopeAdmin},
	"UserService/UpdateWebhook":         {scope: ScopeAdmin},
	"UserService/DeleteWebhook":         {scope: ScopeAdmin},
	"UserService/ListWebhookDeliveries": {scope: ScopeAdmin},
	// Tenants are the platform's: v2 only.
	"TenantService/CreateTenant":   {scope: ScopeTenantsAdmin},
	"TenantService/GetTenant":      {scope: ScopeTenantsAdmin},
	"TenantService/ListTenants":    {scope: ScopeTenantsAdmin},
	"TenantService/UpdateTenant":   {scope: ScopeTenantsAdmin},
	"TenantService/DeleteTenant":   {scope: ScopeTenantsAdmin},
	"TenantService/UndeleteTenant": {scope: ScopeTenantsAdmin},
	// Groups are read and changed as users are: v2 only.
	"GroupService/CreateGroup":        {scope: ScopeWrite},
	"GroupService/GetGroup":           {scope: ScopeRead},
	"GroupService/ListGroups":         {scope: ScopeRead},
	"GroupService/UpdateGroup":        {scope: ScopeWrite},
	"GroupService/DeleteGroup":        {scope: ScopeWrite},
	"GroupService/AddGroupMembers":    {scope: ScopeWrite},
	"GroupService/RemoveGroupMembers": {scope: ScopeWrite},
	"GroupService/ListGroupMembers":   {scope: ScopeRead},
	"GroupService/ListUserGroups":     {scope: ScopeRead},
}

// requests reads what the self rules need from the requests of one API
// version. Each method reports false for a request of another type, which
// then gets no self access.
type requests interface {
	// user returns the id of the user a GetUserRequest is about.
	user(req any) (id string, ok bool)
	// users returns the ids of the users a BatchGetUsersRequest is about.
	users(req any) (ids []string, ok bool)
	// profile returns what an UpdateUserRequest changes.
	profile(req any) (profileUpdate, bool)
}

// versions are the requests of each API version, by proto package.
var versions = map[string]requests{
	"users.v1": v1Requests{},
	"users.v2": v2Requests{},
}

// methodRule is the rule of one full method name, with the requests of
// its version.
type methodRule struct {
	rule
	requests requests
}

// byMethod is rules for every version, by full method name
// ("/users.v2.UserService/GetUser"): an index made once from rules and
// versions, so that a call costs one lookup.
var byMethod = func() map[string]methodRule {
	m := make(map[string]methodRule, len(rules)*len(versions))
	for pkg, reqs := range versions {
		for key, r := range rules {
			m["/"+pkg+"."+key] = methodRule{rule: r, requests: reqs}
		}
	}
	return m
}()

// v1Requests reads users.v1 requests, which name users by id.
type v1Requests struct{}

func (v1Requests) user(req any) (string, bool) {
	r, ok := req.(*usersv1.GetUserRequest)
	return r.GetId(), ok
}

func (v1Requests) users(req any) ([]string, bool) {
	r, ok := req.(*usersv1.BatchGetUsersRequest)
	return r.GetIds(), ok
}

func (v1Requests) profile(req any) (profileUpdate, bool) {
	r, ok := req.(*usersv1.UpdateUserRequest)
	u := r.GetUser()
	return profileUpdate{
		id:    u.GetId(),
		paths: r.GetUpdateMask().GetPaths(),
		more:  u.GetEmail() != "" || u.GetState() != usersv1.User_STATE_UNSPECIFIED,
	}, ok
}

// v2Requests reads users.v2 requests, which name users
// "tenants/{tenant}/users/{id}" or "users/{id}".
type v2Requests struct{}

func (v2Requests) user(req any) (string, bool) {
	r, ok := req.(*usersv2.GetUserRequest)
	return userID(r.GetName()), ok
}

func (v2Requests) users(req any) ([]string, bool) {
	r, ok := req.(*usersv2.BatchGetUsersRequest)
	if !ok {
		return nil, false
	}
	ids := make([]string, len(r.GetNames()))
	for i, n := range r.GetNames() {
		ids[i] = userID(n)
	}
	return ids, true
}

func (v2Requests) profile(req any) (profileUpdate, bool) {
	r, ok := req.(*usersv2.UpdateUserRequest)
	u := r.GetUser()
	return profileUpdate{
		id:    userID(u.GetName()),
		paths: r.GetUpdateMask().GetPaths(),
		more: u.GetEmail() != "" || u.GetState() != usersv2.User_STATE_UNSPECIFIED ||
			u.GetExternalId() != "" || u.GetPhoneNumber() != "" || u.GetEmailVerified() || u.GetPhoneVerified() ||
			u.GetAttributes() != nil,
	}, ok
}

// userID returns the id of a user name, "tenants/{tenant}/users/{id}" or
// "users/{id}", or "". The tenant is not the self rules' concern: a caller
// acts in its own tenant only (users.BindTenant).
func userID(name string) string {
	_, id, _ := names.Users.Scoped(name)
	return id
}

// public are the services outside authentication: health checking, which
// load balancers and orchestrators call without credentials and which
// tells only whether the server serves, and reflection, which describes
// the schema (the same as the published .proto files) and reaches no data.
var public = []string{
	"/grpc.health.v1.Health/",
	"/grpc.reflection.v1.ServerReflection/",
	"/grpc.reflection.v1alpha.ServerReflection/",
}

// isPublic reports whether method, a full method name, needs no
// authentication.
func isPublic(method string) bool {
	for _, p := range public {
		if strings.HasPrefix(method, p) {
			return true
		}
	}
	return false
}

// denial is why an authenticated caller may not make a call.
type denial struct {
	scope string // the scope that would allow the call; "" when none does
}

func (d *denial) Error() string {
	if d.scope == "" {
		return "method not allowed"
	}
	return "requires scope " + d.scope
}

// authorize returns nil when p may call method with req, or a *denial. req
// is nil for streams, whose requests are not known when they start: then
// only a scope allows the call.
func authorize(p Principal, method string, req any) *denial {
	r, ok := byMethod[method]
	if !ok {
		return &denial{}
	}
	if p.Has(r.scope) {
		return nil
	}
	if r.self != nil && req != nil && r.self(p.Subject, r.requests, req) {
		return nil
	}
	return &denial{scope: r.scope}
}

// principal returns the caller named sub with the scopes of every list and
// those they imply.
func principal(sub string, lists ...[]string) Principal {
	scopes := map[string]bool{}
	for _, l := range lists {
		for _, s := range l {
			if s == "" {
				continue
			}
			scopes[s] = true
			for _, i := range implies[s] {
				scopes[i] = true
			}
		}
	}
	return Principal{Subject: sub, Scopes: scopes}
}

// sameUser reports whether id, from a request, is the user sub, the
// caller: both are the same UUID in its 36-character form, in any case.
func sameUser(sub, id string) bool {
	if len(sub) != 36 || len(id) != 36 {
		return false
	}
	a, errA := uuid.Parse(sub)
	b, errB := uuid.Parse(id)
	return errA == nil && errB == nil && a == b
}

// ownUser is the self rule of a GetUserRequest: it is about the caller.
func ownUser(sub string, r requests, req any) bool {
	id, ok := r.user(req)
	return ok && sameUser(sub, id)
}

// ownUsers is the self rule of a BatchGetUsersRequest: all of its users
// must be the caller (a BatchGetUsers of oneself).
func ownUsers(sub string, r requests, req any) bool {
	list, ok := r.users(req)
	if !ok {
		return false
	}
	for _, id := range list {
		if !sameUser(sub, id) {
			return false
		}
	}
	return len(list) > 0
}

// profileUpdate is what ownProfile needs of an UpdateUserRequest.
type profileUpdate struct {
	id    string   // the user to change
	paths []string // the update mask
	more  bool     // the request sets a field a user may not change about itself, which an empty mask changes
}

// selfPaths are the update mask paths a user may send about itself: its
// profile fields, and the fields an update ignores (see
// users.UpdateRequest).
var selfPaths = map[string]bool{
	"display_name": true, "displayName": true, "labels": true,
	"given_name": true, "givenName": true, "family_name": true, "familyName": true,
	"locale": true, "time_zone": true, "timeZone": true,
	"id": true, "name": true, "etag": true,
	"create_time": true, "createTime": true, "update_time": true, "updateTime": true,
	"delete_time": true, "deleteTime": true,
}

// ownProfile is the self rule of an UpdateUserRequest: a user may change
// its own display name and labels, and nothing else. "*", or an empty mask
// when the request sets email or state, changes more.
func ownProfile(sub string, r requests, req any) bool {
	u, ok := r.profile(req)
	if !ok || !sameUser(sub, u.id) {
		return false
	}
	if len(u.paths) == 0 {
		return !u.more
	}
	for _, p := range u.paths {
		if !selfPaths[p] {
			return false
		}
	}
	return true
}
