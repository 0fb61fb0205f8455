package auth

import (
	"strings"

	"github.com/google/uuid"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
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
)

// implies lists the scopes each scope grants besides itself.
var implies = map[string][]string{
	ScopeAdmin: {ScopeWrite, ScopeRead},
	ScopeWrite: {ScopeRead},
}

// rule says who may call one RPC.
type rule struct {
	// scope lets any caller make the call.
	scope string
	// self, when not nil, reports whether a request acts only on the user
	// whose id is sub, in a way that user may act on itself: then no scope
	// is needed.
	self func(sub string, req any) bool
}

// rules is the one table of who may call what, by full method name. An RPC
// it does not list is denied to everyone (TestRulesCoverEveryRPC fails
// when a method of users.v1 or users.v2 is missing). docs/security.md
// shows the same table.
var rules = map[string]rule{
	usersv1.UserService_CreateUser_FullMethodName: {scope: ScopeWrite},
	usersv1.UserService_GetUser_FullMethodName: {scope: ScopeRead, self: ownUser(func(r *usersv1.GetUserRequest) string {
		return r.GetId()
	})},
	usersv1.UserService_ListUsers_FullMethodName: {scope: ScopeRead},
	usersv1.UserService_UpdateUser_FullMethodName: {scope: ScopeWrite, self: ownProfile(func(r *usersv1.UpdateUserRequest) profileUpdate {
		u := r.GetUser()
		return profileUpdate{
			id:    u.GetId(),
			paths: r.GetUpdateMask().GetPaths(),
			more:  u.GetEmail() != "" || u.GetState() != usersv1.User_STATE_UNSPECIFIED,
		}
	})},
	usersv1.UserService_DeleteUser_FullMethodName:   {scope: ScopeWrite},
	usersv1.UserService_UndeleteUser_FullMethodName: {scope: ScopeAdmin},
	usersv1.UserService_BatchGetUsers_FullMethodName: {scope: ScopeRead, self: ownUsers(func(r *usersv1.BatchGetUsersRequest) []string {
		return r.GetIds()
	})},
	usersv1.UserService_ImportUsers_FullMethodName:  {scope: ScopeAdmin},
	usersv1.UserService_GetOperation_FullMethodName: {scope: ScopeAdmin},
	// The feed shows every user: no self rule.
	usersv1.UserService_ListUserEvents_FullMethodName:  {scope: ScopeRead},
	usersv1.UserService_WatchUserEvents_FullMethodName: {scope: ScopeRead},
	// A subscription receives every user event.
	usersv1.UserService_CreateWebhook_FullMethodName:         {scope: ScopeAdmin},
	usersv1.UserService_GetWebhook_FullMethodName:            {scope: ScopeAdmin},
	usersv1.UserService_ListWebhooks_FullMethodName:          {scope: ScopeAdmin},
	usersv1.UserService_UpdateWebhook_FullMethodName:         {scope: ScopeAdmin},
	usersv1.UserService_DeleteWebhook_FullMethodName:         {scope: ScopeAdmin},
	usersv1.UserService_ListWebhookDeliveries_FullMethodName: {scope: ScopeAdmin},

	usersv2.UserService_CreateUser_FullMethodName: {scope: ScopeWrite},
	usersv2.UserService_GetUser_FullMethodName: {scope: ScopeRead, self: ownUser(func(r *usersv2.GetUserRequest) string {
		return idOfName(r.GetName())
	})},
	usersv2.UserService_ListUsers_FullMethodName: {scope: ScopeRead},
	usersv2.UserService_UpdateUser_FullMethodName: {scope: ScopeWrite, self: ownProfile(func(r *usersv2.UpdateUserRequest) profileUpdate {
		u := r.GetUser()
		return profileUpdate{
			id:    idOfName(u.GetName()),
			paths: r.GetUpdateMask().GetPaths(),
			more:  u.GetEmail() != "" || u.GetState() != usersv2.User_STATE_UNSPECIFIED,
		}
	})},
	usersv2.UserService_DeleteUser_FullMethodName:   {scope: ScopeWrite},
	usersv2.UserService_UndeleteUser_FullMethodName: {scope: ScopeAdmin},
	usersv2.UserService_BatchGetUsers_FullMethodName: {scope: ScopeRead, self: ownUsers(func(r *usersv2.BatchGetUsersRequest) []string {
		ids := make([]string, len(r.GetNames()))
		for i, n := range r.GetNames() {
			ids[i] = idOfName(n)
		}
		return ids
	})},
	usersv2.UserService_ImportUsers_FullMethodName:  {scope: ScopeAdmin},
	usersv2.UserService_GetOperation_FullMethodName: {scope: ScopeAdmin},
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
	r, ok := rules[method]
	if !ok {
		return &denial{}
	}
	if p.Has(r.scope) {
		return nil
	}
	if r.self != nil && req != nil && r.self(p.Subject, req) {
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

// idOfName returns the id of a v2 user name, "users/{id}", or "".
func idOfName(name string) string {
	id, ok := strings.CutPrefix(name, "users/")
	if !ok {
		return ""
	}
	return id
}

// ownUser is the self rule of a request of type R about the one user
// whose id returns.
func ownUser[R any](id func(R) string) func(string, any) bool {
	return func(sub string, req any) bool {
		r, ok := req.(R)
		return ok && sameUser(sub, id(r))
	}
}

// ownUsers is the self rule of a request of type R about the users whose
// ids returns: all of them must be the caller (a BatchGetUsers of oneself).
func ownUsers[R any](ids func(R) []string) func(string, any) bool {
	return func(sub string, req any) bool {
		r, ok := req.(R)
		if !ok {
			return false
		}
		list := ids(r)
		for _, id := range list {
			if !sameUser(sub, id) {
				return false
			}
		}
		return len(list) > 0
	}
}

// profileUpdate is what ownProfile needs of an UpdateUserRequest.
type profileUpdate struct {
	id    string   // the user to change
	paths []string // the update mask
	more  bool     // the request sets email or state, which an empty mask changes
}

// selfPaths are the update mask paths a user may send about itself: its
// profile fields, and the fields an update ignores (see
// users.UpdateRequest).
var selfPaths = map[string]bool{
	"display_name": true, "displayName": true, "labels": true,
	"id": true, "name": true, "etag": true,
	"create_time": true, "createTime": true, "update_time": true, "updateTime": true,
	"delete_time": true, "deleteTime": true,
}

// ownProfile is the self rule of an UpdateUserRequest of type R: a user
// may change its own display name and labels, and nothing else. "*", or an
// empty mask when the request sets email or state, changes more.
func ownProfile[R any](update func(R) profileUpdate) func(string, any) bool {
	return func(sub string, req any) bool {
		r, ok := req.(R)
		if !ok {
			return false
		}
		u := update(r)
		if !sameUser(sub, u.id) {
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
}
