package grpcserver

import (
	"context"

	"google.golang.org/protobuf/encoding/protojson"

	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/names"
	"github.com/usersd/usersd/internal/users"
)

// TenantServerV2 implements users.v2.TenantService on a users.Service.
type TenantServerV2 struct {
	usersv2.UnimplementedTenantServiceServer
	svc *users.Service
}

var _ usersv2.TenantServiceServer = (*TenantServerV2)(nil)

// NewTenantsV2 returns a TenantServerV2 backed by svc.
func NewTenantsV2(svc *users.Service) *TenantServerV2 { return &TenantServerV2{svc: svc} }

// CreateTenant implements users.v2.TenantService.
func (s *TenantServerV2) CreateTenant(ctx context.Context, req *usersv2.CreateTenantRequest) (*usersv2.Tenant, error) {
	in, err := tenantRequest(req.GetTenant())
	if err != nil {
		return nil, err
	}
	return tenantV2(s.svc.CreateTenant(ctx, req.GetTenantId(), in))
}

// GetTenant implements users.v2.TenantService.
func (s *TenantServerV2) GetTenant(ctx context.Context, req *usersv2.GetTenantRequest) (*usersv2.Tenant, error) {
	id, err := idOf(names.Tenants, "name", req.GetName())
	if err != nil {
		return nil, err
	}
	return tenantV2(s.svc.GetTenant(ctx, id))
}

// ListTenants implements users.v2.TenantService.
func (s *TenantServerV2) ListTenants(ctx context.Context, req *usersv2.ListTenantsRequest) (*usersv2.ListTenantsResponse, error) {
	page, err := s.svc.ListTenants(ctx, int(req.GetPageSize()), req.GetPageToken(), req.GetShowDeleted())
	if err != nil {
		return nil, err
	}
	out := &usersv2.ListTenantsResponse{Tenants: make([]*usersv2.Tenant, len(page.Tenants)), NextPageToken: page.NextPageToken}
	for i, t := range page.Tenants {
		out.Tenants[i] = tenantToProtoV2(t)
	}
	return out, nil
}

// tenantOutputOnly are the update mask paths UpdateTenant ignores: the
// name and the output-only fields, by proto and JSON name.
var tenantOutputOnly = map[string]bool{
	"name": true, "state": true, "etag": true,
	"create_time": true, "createTime": true,
	"update_time": true, "updateTime": true,
	"delete_time": true, "deleteTime": true,
	"attributes_schema_check": true, "attributesSchemaCheck": true,
}

// UpdateTenant implements users.v2.TenantService.
func (s *TenantServerV2) UpdateTenant(ctx context.Context, req *usersv2.UpdateTenantRequest) (*usersv2.Tenant, error) {
	id, err := idOf(names.Tenants, "tenant.name", req.GetTenant().GetName())
	if err != nil {
		return nil, err
	}
	in, err := tenantRequest(req.GetTenant())
	if err != nil {
		return nil, err
	}
	in.Etag, err = orMD(ctx, req.GetTenant().GetEtag(), "tenant.etag", MDIfMatch)
	if err != nil {
		return nil, err
	}
	mask := req.GetUpdateMask().GetPaths()
	if len(mask) == 0 {
		// No mask: the fields set in tenant (AIP-134).
		if req.GetTenant().GetDisplayName() != "" {
			mask = append(mask, "display_name")
		}
		if req.GetTenant().GetSettings() != nil {
			mask = append(mask, "settings")
		}
		if len(mask) == 0 {
			return tenantV2(s.svc.GetTenant(ctx, id))
		}
	}
	for _, p := range mask {
		switch {
		case tenantOutputOnly[p]:
		case p == "*":
			in.Paths = append(in.Paths, "display_name", "settings")
		default:
			in.Paths = append(in.Paths, p)
		}
	}
	if len(in.Paths) == 0 && len(mask) > 0 {
		// Only ignored fields: nothing to change, but the domain's empty
		// mask would mean every field.
		return tenantV2(s.svc.GetTenant(ctx, id))
	}
	return tenantV2(s.svc.UpdateTenant(ctx, id, in))
}

// DeleteTenant implements users.v2.TenantService.
func (s *TenantServerV2) DeleteTenant(ctx context.Context, req *usersv2.DeleteTenantRequest) (*usersv2.Tenant, error) {
	return s.lifecycle(ctx, s.svc.DeleteTenant, req.GetName(), req.GetEtag())
}

// UndeleteTenant implements users.v2.TenantService.
func (s *TenantServerV2) UndeleteTenant(ctx context.Context, req *usersv2.UndeleteTenantRequest) (*usersv2.Tenant, error) {
	return s.lifecycle(ctx, s.svc.UndeleteTenant, req.GetName(), req.GetEtag())
}

// lifecycle calls a delete or undelete of the domain with the tenant's id
// and the etag of the request or of the If-Match metadata.
func (s *TenantServerV2) lifecycle(ctx context.Context, fn func(ctx context.Context, id, etag string) (*users.Tenant, error), name, etag string) (*usersv2.Tenant, error) {
	id, err := idOf(names.Tenants, "name", name)
	if err != nil {
		return nil, err
	}
	etag, err = orMD(ctx, etag, "etag", MDIfMatch)
	if err != nil {
		return nil, err
	}
	return tenantV2(fn(ctx, id, etag))
}

// tenantRequest returns the fields of t that create and update take.
func tenantRequest(t *usersv2.Tenant) (users.TenantRequest, error) {
	var schema string
	if st := t.GetSettings().GetAttributesSchema(); st != nil {
		b, err := protojson.Marshal(st)
		if err != nil {
			return users.TenantRequest{}, users.Invalid("tenant.settings.attributes_schema", err.Error())
		}
		schema = string(b)
	}
	return users.TenantRequest{
		DisplayName: t.GetDisplayName(),
		Settings: users.TenantSettings{
			MaxUsers:          int64(t.GetSettings().GetMaxUsers()),
			RequestsPerSecond: t.GetSettings().GetRequestsPerSecond(),
			AttributesSchema:  schema,
		},
	}, nil
}

func tenantV2(t *users.Tenant, err error) (*usersv2.Tenant, error) {
	if err != nil {
		return nil, err
	}
	return tenantToProtoV2(t), nil
}

// tenantToProtoV2 returns the v2 form of a tenant.
func tenantToProtoV2(t *users.Tenant) *usersv2.Tenant {
	state := usersv2.Tenant_STATE_ACTIVE
	if t.State == users.StateDeleted {
		state = usersv2.Tenant_STATE_DELETED
	}
	var check string
	if t.SchemaCheck != "" {
		check = names.Operations.InTenant(t.ID, t.SchemaCheck)
	}
	return &usersv2.Tenant{
		AttributesSchemaCheck: check,
		Name:                  names.Tenants.Name(t.ID),
		DisplayName:           t.DisplayName,
		State:                 state,
		Settings: &usersv2.TenantSettings{
			MaxUsers:          int32(min(t.Settings.MaxUsers, 1<<31-1)),
			RequestsPerSecond: t.Settings.RequestsPerSecond,
			AttributesSchema:  attributesStruct([]byte(t.Settings.AttributesSchema)),
		},
		CreateTime: timestampOrNil(t.CreateTime),
		UpdateTime: timestampOrNil(t.UpdateTime),
		DeleteTime: timestampOrNil(t.DeleteTime),
		Etag:       t.Etag(),
	}
}
