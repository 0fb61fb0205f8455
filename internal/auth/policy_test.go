package auth

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
)

// TestRulesCoverEveryRPC fails when a method of users.v1 or users.v2 has no
// rule, or a rule names a method that does not exist.
func TestRulesCoverEveryRPC(t *testing.T) {
	methods := map[string]string{} // full method name: the key of rules
	for _, file := range []protoreflect.FileDescriptor{usersv1.File_users_v1_users_proto, usersv2.File_users_v2_users_proto} {
		services := file.Services()
		for i := range services.Len() {
			svc := services.Get(i)
			for j := range svc.Methods().Len() {
				name := string(svc.Methods().Get(j).Name())
				methods["/"+string(svc.FullName())+"/"+name] = string(svc.Name()) + "/" + name
			}
		}
	}
	if len(methods) < 34 {
		t.Fatalf("found %d methods in users.v1 and users.v2, want at least 34", len(methods))
	}
	keys := map[string]bool{}
	for m, key := range methods {
		keys[key] = true
		r, ok := byMethod[m]
		if !ok {
			t.Errorf("no rule for %s: add %s to rules (and docs/security.md)", m, key)
			continue
		}
		if !slices.Contains([]string{ScopeRead, ScopeWrite, ScopeAdmin, ScopeTenantsAdmin}, r.scope) {
			t.Errorf("rule for %s: scope %q is not one of the API's", m, r.scope)
		}
	}
	for k := range rules {
		if !keys[k] {
			t.Errorf("rule for %s, which is no method of users.v1 or users.v2", k)
		}
	}
	for _, file := range []protoreflect.FileDescriptor{usersv1.File_users_v1_users_proto, usersv2.File_users_v2_users_proto} {
		if versions[string(file.Package())] == nil {
			t.Errorf("no requests accessor for %s in versions", file.Package())
		}
	}
}

type role int

const (
	anyone role = iota // a token without scopes, of another user
	self               // a token without scopes, of the user concerned
	reader
	writer
	admin
	platform // tenants.admin
)

var roles = []role{anyone, self, reader, writer, admin, platform}

func (r role) String() string {
	return [...]string{"no scopes", "self", "users.read", "users.write", "users.admin", "tenants.admin"}[r]
}

func (r role) principal(me string) Principal {
	switch r {
	case self:
		return principal(me)
	case reader:
		return principal(uuid.NewString(), []string{ScopeRead})
	case writer:
		return principal(uuid.NewString(), []string{ScopeWrite})
	case admin:
		return principal(uuid.NewString(), []string{ScopeAdmin})
	case platform:
		return principal(uuid.NewString(), []string{ScopeTenantsAdmin})
	}
	return principal(uuid.NewString(), []string{"openid", "email"})
}

func mask(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }

// TestAuthorize checks the table, role by role, on requests about the
// caller itself and about others.
func TestAuthorize(t *testing.T) {
	me, other := uuid.NewString(), uuid.NewString()
	ME := strings.ToUpper(me)
	v1User := func(id string) *usersv1.User { return &usersv1.User{Id: id, DisplayName: "Me"} }
	v2User := func(id string) *usersv2.User { return &usersv2.User{Name: "users/" + id, DisplayName: "Me"} }
	var (
		write     = []role{writer, admin, platform}
		read      = []role{reader, writer, admin, platform}
		admins    = []role{admin, platform}
		platforms = []role{platform}
		orSelf    = func(rs []role) []role { return append([]role{self}, rs...) }
	)
	tests := []struct {
		name   string
		method string
		req    any
		allow  []role
	}{
		{"v1 create", usersv1.UserService_CreateUser_FullMethodName, &usersv1.CreateUserRequest{}, write},
		{"v1 get self", usersv1.UserService_GetUser_FullMethodName, &usersv1.GetUserRequest{Id: me}, orSelf(read)},
		{"v1 get self in upper case", usersv1.UserService_GetUser_FullMethodName, &usersv1.GetUserRequest{Id: ME}, orSelf(read)},
		{"v1 get other", usersv1.UserService_GetUser_FullMethodName, &usersv1.GetUserRequest{Id: other}, read},
		{"v1 get self as a URN", usersv1.UserService_GetUser_FullMethodName, &usersv1.GetUserRequest{Id: "urn:uuid:" + me}, read},
		{"v1 list", usersv1.UserService_ListUsers_FullMethodName, &usersv1.ListUsersRequest{}, read},
		{"v1 update own display name", usersv1.UserService_UpdateUser_FullMethodName, &usersv1.UpdateUserRequest{User: v1User(me), UpdateMask: mask("display_name")}, orSelf(write)},
		{"v1 update own profile, camelCase, with etag", usersv1.UserService_UpdateUser_FullMethodName, &usersv1.UpdateUserRequest{User: v1User(me), UpdateMask: mask("displayName", "labels", "etag")}, orSelf(write)},
		{"v1 update own labels, empty mask", usersv1.UserService_UpdateUser_FullMethodName, &usersv1.UpdateUserRequest{User: &usersv1.User{Id: me, Labels: map[string]string{"a": "b"}}}, orSelf(write)},
		{"v1 update own email", usersv1.UserService_UpdateUser_FullMethodName, &usersv1.UpdateUserRequest{User: v1User(me), UpdateMask: mask("display_name", "email")}, write},
		{"v1 update own state", usersv1.UserService_UpdateUser_FullMethodName, &usersv1.UpdateUserRequest{User: v1User(me), UpdateMask: mask("state")}, write},
		{"v1 update own, mask *", usersv1.UserService_UpdateUser_FullMethodName, &usersv1.UpdateUserRequest{User: v1User(me), UpdateMask: mask("*")}, write},
		{"v1 update own, empty mask with email", usersv1.UserService_UpdateUser_FullMethodName, &usersv1.UpdateUserRequest{User: &usersv1.User{Id: me, DisplayName: "Me", Email: "me@example.com"}}, write},
		{"v1 update own, empty mask with state", usersv1.UserService_UpdateUser_FullMethodName, &usersv1.UpdateUserRequest{User: &usersv1.User{Id: me, State: usersv1.User_STATE_ACTIVE}}, write},
		{"v1 update own, unknown path", usersv1.UserService_UpdateUser_FullMethodName, &usersv1.UpdateUserRequest{User: v1User(me), UpdateMask: mask("labels.team")}, write},
		{"v1 update other's display name", usersv1.UserService_UpdateUser_FullMethodName, &usersv1.UpdateUserRequest{User: v1User(other), UpdateMask: mask("display_name")}, write},
		{"v1 update, no user", usersv1.UserService_UpdateUser_FullMethodName, &usersv1.UpdateUserRequest{}, write},
		{"v1 delete self", usersv1.UserService_DeleteUser_FullMethodName, &usersv1.DeleteUserRequest{Id: me}, write},
		{"v1 delete other", usersv1.UserService_DeleteUser_FullMethodName, &usersv1.DeleteUserRequest{Id: other}, write},
		{"v1 undelete self", usersv1.UserService_UndeleteUser_FullMethodName, &usersv1.UndeleteUserRequest{Id: me}, admins},
		{"v1 batch get self", usersv1.UserService_BatchGetUsers_FullMethodName, &usersv1.BatchGetUsersRequest{Ids: []string{me, ME}}, orSelf(read)},
		{"v1 batch get self and other", usersv1.UserService_BatchGetUsers_FullMethodName, &usersv1.BatchGetUsersRequest{Ids: []string{me, other}}, read},
		{"v1 batch get none", usersv1.UserService_BatchGetUsers_FullMethodName, &usersv1.BatchGetUsersRequest{}, read},
		{"v1 import", usersv1.UserService_ImportUsers_FullMethodName, &usersv1.ImportUsersRequest{}, admins},
		{"v1 get operation", usersv1.UserService_GetOperation_FullMethodName, &usersv1.GetOperationRequest{Id: me}, admins},
		{"v1 list events", usersv1.UserService_ListUserEvents_FullMethodName, &usersv1.ListUserEventsRequest{}, read},
		{"v1 watch events", usersv1.UserService_WatchUserEvents_FullMethodName, nil, read},
		{"v1 create webhook", usersv1.UserService_CreateWebhook_FullMethodName, &usersv1.CreateWebhookRequest{}, admins},
		{"v1 get webhook", usersv1.UserService_GetWebhook_FullMethodName, &usersv1.GetWebhookRequest{Id: me}, admins},
		{"v1 list webhooks", usersv1.UserService_ListWebhooks_FullMethodName, &usersv1.ListWebhooksRequest{}, admins},
		{"v1 update webhook", usersv1.UserService_UpdateWebhook_FullMethodName, &usersv1.UpdateWebhookRequest{Webhook: &usersv1.Webhook{Id: me}}, admins},
		{"v1 delete webhook", usersv1.UserService_DeleteWebhook_FullMethodName, &usersv1.DeleteWebhookRequest{Id: me}, admins},
		{"v1 list webhook deliveries", usersv1.UserService_ListWebhookDeliveries_FullMethodName, &usersv1.ListWebhookDeliveriesRequest{WebhookId: me}, admins},

		{"v2 create", usersv2.UserService_CreateUser_FullMethodName, &usersv2.CreateUserRequest{}, write},
		{"v2 get self", usersv2.UserService_GetUser_FullMethodName, &usersv2.GetUserRequest{Name: "users/" + me}, orSelf(read)},
		{"v2 get self, bare id", usersv2.UserService_GetUser_FullMethodName, &usersv2.GetUserRequest{Name: me}, read},
		{"v2 get other", usersv2.UserService_GetUser_FullMethodName, &usersv2.GetUserRequest{Name: "users/" + other}, read},
		{"v2 list", usersv2.UserService_ListUsers_FullMethodName, &usersv2.ListUsersRequest{}, read},
		{"v2 update own profile", usersv2.UserService_UpdateUser_FullMethodName, &usersv2.UpdateUserRequest{User: v2User(me), UpdateMask: mask("display_name", "labels", "name")}, orSelf(write)},
		{"v2 update own display name, empty mask", usersv2.UserService_UpdateUser_FullMethodName, &usersv2.UpdateUserRequest{User: v2User(me)}, orSelf(write)},
		{"v2 update own email", usersv2.UserService_UpdateUser_FullMethodName, &usersv2.UpdateUserRequest{User: v2User(me), UpdateMask: mask("email")}, write},
		{"v2 update own, mask *", usersv2.UserService_UpdateUser_FullMethodName, &usersv2.UpdateUserRequest{User: v2User(me), UpdateMask: mask("*")}, write},
		{"v2 update own, empty mask with state", usersv2.UserService_UpdateUser_FullMethodName, &usersv2.UpdateUserRequest{User: &usersv2.User{Name: "users/" + me, State: usersv2.User_STATE_SUSPENDED}}, write},
		{"v2 update other", usersv2.UserService_UpdateUser_FullMethodName, &usersv2.UpdateUserRequest{User: v2User(other), UpdateMask: mask("display_name")}, write},
		{"v2 delete self", usersv2.UserService_DeleteUser_FullMethodName, &usersv2.DeleteUserRequest{Name: "users/" + me}, write},
		{"v2 undelete self", usersv2.UserService_UndeleteUser_FullMethodName, &usersv2.UndeleteUserRequest{Name: "users/" + me}, admins},
		{"v2 batch get self", usersv2.UserService_BatchGetUsers_FullMethodName, &usersv2.BatchGetUsersRequest{Names: []string{"users/" + me}}, orSelf(read)},
		{"v2 batch get self and other", usersv2.UserService_BatchGetUsers_FullMethodName, &usersv2.BatchGetUsersRequest{Names: []string{"users/" + me, "users/" + other}}, read},
		{"v2 import", usersv2.UserService_ImportUsers_FullMethodName, &usersv2.ImportUsersRequest{}, admins},
		{"v2 get operation", usersv2.UserService_GetOperation_FullMethodName, &usersv2.GetOperationRequest{Name: "operations/" + me}, admins},

		{"v2 list events", usersv2.UserService_ListUserEvents_FullMethodName, &usersv2.ListUserEventsRequest{}, read},
		{"v2 watch events", usersv2.UserService_WatchUserEvents_FullMethodName, nil, read},
		{"v2 create webhook", usersv2.UserService_CreateWebhook_FullMethodName, &usersv2.CreateWebhookRequest{}, admins},
		{"v2 get webhook", usersv2.UserService_GetWebhook_FullMethodName, &usersv2.GetWebhookRequest{Name: "webhooks/" + me}, admins},
		{"v2 list webhooks", usersv2.UserService_ListWebhooks_FullMethodName, &usersv2.ListWebhooksRequest{}, admins},
		{"v2 update webhook", usersv2.UserService_UpdateWebhook_FullMethodName, &usersv2.UpdateWebhookRequest{Webhook: &usersv2.Webhook{Name: "webhooks/" + me}}, admins},
		{"v2 delete webhook", usersv2.UserService_DeleteWebhook_FullMethodName, &usersv2.DeleteWebhookRequest{Name: "webhooks/" + me}, admins},
		{"v2 list webhook deliveries", usersv2.UserService_ListWebhookDeliveries_FullMethodName, &usersv2.ListWebhookDeliveriesRequest{Parent: "webhooks/" + me}, admins},
		{"v2 get self, a webhook name", usersv2.UserService_GetUser_FullMethodName, &usersv2.GetUserRequest{Name: "webhooks/" + me}, read},

		{"v2 create tenant", usersv2.TenantService_CreateTenant_FullMethodName, &usersv2.CreateTenantRequest{TenantId: "acme"}, platforms},
		{"v2 get tenant", usersv2.TenantService_GetTenant_FullMethodName, &usersv2.GetTenantRequest{Name: "tenants/acme"}, platforms},
		{"v2 list tenants", usersv2.TenantService_ListTenants_FullMethodName, &usersv2.ListTenantsRequest{}, platforms},
		{"v2 update tenant", usersv2.TenantService_UpdateTenant_FullMethodName, &usersv2.UpdateTenantRequest{Tenant: &usersv2.Tenant{Name: "tenants/acme"}}, platforms},
		{"v2 delete tenant", usersv2.TenantService_DeleteTenant_FullMethodName, &usersv2.DeleteTenantRequest{Name: "tenants/acme"}, platforms},
		{"v2 undelete tenant", usersv2.TenantService_UndeleteTenant_FullMethodName, &usersv2.UndeleteTenantRequest{Name: "tenants/acme"}, platforms},

		{"a v2 request to the v1 method", usersv1.UserService_GetUser_FullMethodName, &usersv2.GetUserRequest{Name: "users/" + me}, read},
		{"unknown version of a known method", "/users.v9.UserService/GetUser", &usersv2.GetUserRequest{Name: "users/" + me}, nil},
		{"a v1 request to the v2 method", usersv2.UserService_GetUser_FullMethodName, &usersv1.GetUserRequest{Id: me}, read},
		{"unknown method", "/users.v3.UserService/GetUser", &usersv1.GetUserRequest{Id: me}, nil},
		{"unknown method of a known service", "/users.v1.UserService/PurgeUsers", &usersv1.GetUserRequest{Id: me}, nil},
	}
	for _, tc := range tests {
		for _, r := range roles {
			p := r.principal(me)
			d := authorize(p, tc.method, tc.req)
			if want := slices.Contains(tc.allow, r); (d == nil) != want {
				t.Errorf("%s as %s: authorize = %v, want allowed %v", tc.name, r, d, want)
			}
		}
	}
}

// TestAuthorizeStreams checks that a stream, whose requests are unknown,
// needs the scope even for the user concerned.
func TestAuthorizeStreams(t *testing.T) {
	me := uuid.NewString()
	if d := authorize(principal(me), usersv1.UserService_GetUser_FullMethodName, nil); d == nil || d.scope != ScopeRead {
		t.Errorf("authorize(self, GetUser, no request) = %v, want a denial naming %s", d, ScopeRead)
	}
	if d := authorize(principal(me, []string{ScopeRead}), usersv1.UserService_GetUser_FullMethodName, nil); d != nil {
		t.Errorf("authorize(users.read, GetUser, no request) = %v, want nil", d)
	}
}

func TestIsPublic(t *testing.T) {
	for _, m := range []string{"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"} {
		if !isPublic(m) {
			t.Errorf("isPublic(%s) = false, want true", m)
		}
	}
	for _, m := range []string{usersv1.UserService_GetUser_FullMethodName, "/grpc.health.v1.HealthX/Check", "/grpc.health.v1.Health", "grpc.health.v1.Health/Check"} {
		if isPublic(m) {
			t.Errorf("isPublic(%s) = true, want false", m)
		}
	}
}

func TestScope(t *testing.T) {
	for method, want := range map[string]string{
		"/users.v2.UserService/GetUser":      ScopeRead,
		"/users.v1.UserService/CreateUser":   ScopeWrite,
		"/users.v2.UserService/ImportUsers":  ScopeAdmin,
		"/users.v2.UserService/FrobnicateMe": "",
		"/users.v9.UserService/GetUser":      "",
	} {
		got, ok := Scope(method)
		if got != want || ok != (want != "") {
			t.Errorf("Scope(%q) = %q, %v; want %q, %v", method, got, ok, want, want != "")
		}
	}
}
