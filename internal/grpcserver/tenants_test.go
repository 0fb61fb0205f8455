package grpcserver_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/grpcserver"
	"github.com/usersd/usersd/internal/users"
)

func newTenantClient(t *testing.T) usersv2.TenantServiceClient {
	t.Helper()
	conn := serveUsers(t, func(r grpc.ServiceRegistrar, svc *users.Service) {
		usersv2.RegisterTenantServiceServer(r, grpcserver.NewTenantsV2(svc))
	})
	return usersv2.NewTenantServiceClient(conn)
}

// TestTenantService follows a tenant through every RPC of TenantService,
// with each error's code and field.
func TestTenantService(t *testing.T) {
	ctx := context.Background()
	c := newTenantClient(t)

	created, err := c.CreateTenant(ctx, &usersv2.CreateTenantRequest{
		TenantId: "acme",
		Tenant: &usersv2.Tenant{
			Name: "tenants/ignored", DisplayName: "Acme", State: usersv2.Tenant_STATE_DELETED,
			Settings: &usersv2.TenantSettings{MaxUsers: 1000, RequestsPerSecond: 25},
		},
	})
	if err != nil {
		t.Fatalf("CreateTenant err = %v", err)
	}
	if created.GetName() != "tenants/acme" || created.GetState() != usersv2.Tenant_STATE_ACTIVE ||
		created.GetSettings().GetMaxUsers() != 1000 || created.GetSettings().GetRequestsPerSecond() != 25 ||
		created.GetCreateTime() == nil || created.GetDeleteTime() != nil || created.GetEtag() == "" {
		t.Errorf("CreateTenant = %v", created)
	}
	_, err = c.CreateTenant(ctx, &usersv2.CreateTenantRequest{TenantId: "acme", Tenant: &usersv2.Tenant{DisplayName: "Again"}})
	checkErr(t, "CreateTenant(taken id)", err, codes.AlreadyExists, "")
	_, err = c.CreateTenant(ctx, &usersv2.CreateTenantRequest{TenantId: "Not_An_Id", Tenant: &usersv2.Tenant{DisplayName: "X"}})
	checkErr(t, "CreateTenant(bad id)", err, codes.InvalidArgument, "tenant_id")
	_, err = c.CreateTenant(ctx, &usersv2.CreateTenantRequest{TenantId: "blank", Tenant: &usersv2.Tenant{}})
	checkErr(t, "CreateTenant(no display name)", err, codes.InvalidArgument, "tenant.display_name")
	_, err = c.CreateTenant(ctx, &usersv2.CreateTenantRequest{TenantId: "neg", Tenant: &usersv2.Tenant{DisplayName: "X", Settings: &usersv2.TenantSettings{MaxUsers: -1}}})
	checkErr(t, "CreateTenant(negative max users)", err, codes.InvalidArgument, "tenant.settings.max_users")

	got, err := c.GetTenant(ctx, &usersv2.GetTenantRequest{Name: "tenants/acme"})
	if err != nil || got.GetEtag() != created.GetEtag() {
		t.Errorf("GetTenant = %v, %v", got, err)
	}
	_, err = c.GetTenant(ctx, &usersv2.GetTenantRequest{Name: "tenants/nowhere"})
	checkErr(t, "GetTenant(unknown)", err, codes.NotFound, "")
	_, err = c.GetTenant(ctx, &usersv2.GetTenantRequest{Name: "users/acme"})
	checkErr(t, "GetTenant(a user name)", err, codes.InvalidArgument, "name")
	def, err := c.GetTenant(ctx, &usersv2.GetTenantRequest{Name: "tenants/default"})
	if err != nil || def.GetState() != usersv2.Tenant_STATE_ACTIVE {
		t.Errorf("GetTenant(default) = %v, %v", def, err)
	}

	// Only the masked field changes; output-only paths are ignored.
	updated, err := c.UpdateTenant(ctx, &usersv2.UpdateTenantRequest{
		Tenant:     &usersv2.Tenant{Name: "tenants/acme", DisplayName: "Acme Corp", Etag: created.GetEtag(), Settings: &usersv2.TenantSettings{MaxUsers: 1}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"display_name", "create_time"}},
	})
	if err != nil || updated.GetDisplayName() != "Acme Corp" || updated.GetSettings().GetMaxUsers() != 1000 || updated.GetEtag() == created.GetEtag() {
		t.Fatalf("UpdateTenant(display_name) = %v, %v", updated, err)
	}
	// Without a mask, the fields set change and the others stay.
	renamed, err := c.UpdateTenant(ctx, &usersv2.UpdateTenantRequest{Tenant: &usersv2.Tenant{Name: "tenants/acme", DisplayName: "Acme Inc", Etag: updated.GetEtag()}})
	if err != nil || renamed.GetDisplayName() != "Acme Inc" || renamed.GetSettings().GetMaxUsers() != 1000 {
		t.Fatalf("UpdateTenant(display name, no mask) = %v, %v; want the settings kept", renamed, err)
	}
	_, err = c.UpdateTenant(ctx, &usersv2.UpdateTenantRequest{Tenant: &usersv2.Tenant{Name: "tenants/acme", DisplayName: "Stale", Etag: created.GetEtag()}})
	checkErr(t, "UpdateTenant(stale etag)", err, codes.Aborted, "")
	_, err = c.UpdateTenant(ctx, &usersv2.UpdateTenantRequest{
		Tenant:     &usersv2.Tenant{Name: "tenants/acme"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"labels"}},
	})
	checkErr(t, "UpdateTenant(unknown path)", err, codes.InvalidArgument, "update_mask")
	limits, err := c.UpdateTenant(ctx, &usersv2.UpdateTenantRequest{
		Tenant:     &usersv2.Tenant{Name: "tenants/acme", Settings: &usersv2.TenantSettings{RequestsPerSecond: 7.5}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"settings.requests_per_second"}},
	})
	if err != nil || limits.GetSettings().GetRequestsPerSecond() != 7.5 || limits.GetSettings().GetMaxUsers() != 1000 {
		t.Errorf("UpdateTenant(settings.requests_per_second) = %v, %v", limits, err)
	}

	_, err = c.DeleteTenant(ctx, &usersv2.DeleteTenantRequest{Name: "tenants/default"})
	checkErr(t, "DeleteTenant(default)", err, codes.FailedPrecondition, "")
	deleted, err := c.DeleteTenant(ctx, &usersv2.DeleteTenantRequest{Name: "tenants/acme", Etag: limits.GetEtag()})
	if err != nil || deleted.GetState() != usersv2.Tenant_STATE_DELETED || deleted.GetDeleteTime() == nil {
		t.Fatalf("DeleteTenant = %v, %v", deleted, err)
	}
	list, err := c.ListTenants(ctx, &usersv2.ListTenantsRequest{})
	if err != nil || len(list.GetTenants()) != 1 || list.GetTenants()[0].GetName() != "tenants/default" {
		t.Errorf("ListTenants = %v, %v; want the default tenant alone", list, err)
	}
	all, err := c.ListTenants(ctx, &usersv2.ListTenantsRequest{ShowDeleted: true, PageSize: 1})
	if err != nil || len(all.GetTenants()) != 1 || all.GetNextPageToken() == "" {
		t.Fatalf("ListTenants(show deleted, page size 1) = %v, %v", all, err)
	}
	next, err := c.ListTenants(ctx, &usersv2.ListTenantsRequest{ShowDeleted: true, PageSize: 1, PageToken: all.GetNextPageToken()})
	if err != nil || len(next.GetTenants()) != 1 || next.GetTenants()[0].GetName() != "tenants/default" {
		t.Errorf("ListTenants page 2 = %v, %v", next, err)
	}
	_, err = c.ListTenants(ctx, &usersv2.ListTenantsRequest{PageToken: all.GetNextPageToken()})
	checkErr(t, "ListTenants(a token of another listing)", err, codes.InvalidArgument, "page_token")

	undeleted, err := c.UndeleteTenant(ctx, &usersv2.UndeleteTenantRequest{Name: "tenants/acme"})
	if err != nil || undeleted.GetState() != usersv2.Tenant_STATE_ACTIVE || undeleted.GetDeleteTime() != nil {
		t.Errorf("UndeleteTenant = %v, %v", undeleted, err)
	}
	_, err = c.UndeleteTenant(ctx, &usersv2.UndeleteTenantRequest{Name: "tenants/acme"})
	checkErr(t, "UndeleteTenant(active)", err, codes.FailedPrecondition, "")
}
