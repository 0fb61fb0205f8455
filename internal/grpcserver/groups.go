package grpcserver

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/names"
	"github.com/usersd/usersd/internal/users"
)

// GroupServerV2 implements users.v2.GroupService on a users.Service.
type GroupServerV2 struct {
	usersv2.UnimplementedGroupServiceServer
	svc *users.Service
}

var _ usersv2.GroupServiceServer = (*GroupServerV2)(nil)

// NewGroupsV2 returns a GroupServerV2 backed by svc.
func NewGroupsV2(svc *users.Service) *GroupServerV2 { return &GroupServerV2{svc: svc} }

// groupName returns the v2 resource name of the tenant's group.
func groupName(tenant, id string) string { return names.Groups.InTenant(tenant, id) }

// groupToProtoV2 returns the v2 form of a group.
func groupToProtoV2(g *users.Group) *usersv2.Group {
	return &usersv2.Group{
		Name:        groupName(g.Tenant, g.ID),
		DisplayName: g.DisplayName,
		ExternalId:  g.ExternalID,
		Description: g.Description,
		MemberCount: g.MemberCount,
		CreateTime:  timestamppb.New(g.CreateTime),
		UpdateTime:  timestamppb.New(g.UpdateTime),
		Etag:        g.Etag(),
	}
}

func groupV2(g *users.Group, err error) (*usersv2.Group, error) {
	if err != nil {
		return nil, err
	}
	return groupToProtoV2(g), nil
}

// groupFromProtoV2 returns the fields of a request's group that the
// domain takes.
func groupFromProtoV2(g *usersv2.Group) *users.Group {
	return &users.Group{DisplayName: g.GetDisplayName(), ExternalID: g.GetExternalId(), Description: g.GetDescription()}
}

// CreateGroup implements users.v2.GroupService.
func (s *GroupServerV2) CreateGroup(ctx context.Context, req *usersv2.CreateGroupRequest) (*usersv2.Group, error) {
	tenant, err := parentOf(req.GetParent())
	if err != nil {
		return nil, err
	}
	return groupV2(s.svc.CreateGroup(ctx, tenant, groupFromProtoV2(req.GetGroup())))
}

// GetGroup implements users.v2.GroupService.
func (s *GroupServerV2) GetGroup(ctx context.Context, req *usersv2.GetGroupRequest) (*usersv2.Group, error) {
	tenant, id, err := scopedOf(names.Groups, "name", req.GetName())
	if err != nil {
		return nil, err
	}
	return groupV2(s.svc.GetGroup(ctx, tenant, id))
}

// ListGroups implements users.v2.GroupService.
func (s *GroupServerV2) ListGroups(ctx context.Context, req *usersv2.ListGroupsRequest) (*usersv2.ListGroupsResponse, error) {
	tenant, err := parentOf(req.GetParent())
	if err != nil {
		return nil, err
	}
	page, err := s.svc.ListGroups(ctx, users.GroupListRequest{
		Tenant: tenant, PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken(),
		Filter: req.GetFilter(), Query: req.GetQuery(), OrderBy: req.GetOrderBy(),
	})
	if err != nil {
		return nil, err
	}
	out := &usersv2.ListGroupsResponse{Groups: make([]*usersv2.Group, len(page.Groups)), NextPageToken: page.NextPageToken}
	for i, g := range page.Groups {
		out.Groups[i] = groupToProtoV2(g)
	}
	return out, nil
}

// groupOutputOnly are the update mask paths UpdateGroup ignores: the name
// and the output-only fields, by proto and JSON name.
var groupOutputOnly = map[string]bool{
	"name": true, "etag": true,
	"member_count": true, "memberCount": true,
	"create_time": true, "createTime": true,
	"update_time": true, "updateTime": true,
}

// groupMaskPaths are the fields of a group a mask may name, by proto and
// JSON name, as the domain names them.
var groupMaskPaths = map[string]string{
	"display_name": "display_name", "displayName": "display_name",
	"external_id": "external_id", "externalId": "external_id",
	"description": "description", "*": "*",
}

// UpdateGroup implements users.v2.GroupService.
func (s *GroupServerV2) UpdateGroup(ctx context.Context, req *usersv2.UpdateGroupRequest) (*usersv2.Group, error) {
	g := req.GetGroup()
	tenant, id, err := scopedOf(names.Groups, "group.name", g.GetName())
	if err != nil {
		return nil, err
	}
	etag, err := orMD(ctx, g.GetEtag(), "group.etag", MDIfMatch)
	if err != nil {
		return nil, err
	}
	mask := req.GetUpdateMask().GetPaths()
	if len(mask) == 0 {
		// No mask: the fields set in group (AIP-134).
		if g.GetDisplayName() != "" {
			mask = append(mask, "display_name")
		}
		if g.GetExternalId() != "" {
			mask = append(mask, "external_id")
		}
		if g.GetDescription() != "" {
			mask = append(mask, "description")
		}
	}
	paths := []string{}
	for _, p := range mask {
		switch d, ok := groupMaskPaths[p]; {
		case ok:
			paths = append(paths, d)
		case groupOutputOnly[p]:
		default:
			return nil, users.Invalid("update_mask", fmt.Sprintf("unknown or unchangeable field %q (want display_name, external_id, description or *)", p))
		}
	}
	return groupV2(s.svc.UpdateGroup(ctx, tenant, id, groupFromProtoV2(g), paths, etag))
}

// DeleteGroup implements users.v2.GroupService.
func (s *GroupServerV2) DeleteGroup(ctx context.Context, req *usersv2.DeleteGroupRequest) (*emptypb.Empty, error) {
	tenant, id, err := scopedOf(names.Groups, "name", req.GetName())
	if err != nil {
		return nil, err
	}
	etag, err := orMD(ctx, req.GetEtag(), "etag", MDIfMatch)
	if err != nil {
		return nil, err
	}
	if _, err := s.svc.DeleteGroup(ctx, tenant, id, etag); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// AddGroupMembers implements users.v2.GroupService.
func (s *GroupServerV2) AddGroupMembers(ctx context.Context, req *usersv2.AddGroupMembersRequest) (*usersv2.Group, error) {
	tenant, id, ids, err := memberRequest(req.GetGroup(), req.GetUsers())
	if err != nil {
		return nil, err
	}
	return groupV2(s.svc.AddGroupMembers(ctx, tenant, id, ids))
}

// RemoveGroupMembers implements users.v2.GroupService.
func (s *GroupServerV2) RemoveGroupMembers(ctx context.Context, req *usersv2.RemoveGroupMembersRequest) (*usersv2.Group, error) {
	tenant, id, ids, err := memberRequest(req.GetGroup(), req.GetUsers())
	if err != nil {
		return nil, err
	}
	return groupV2(s.svc.RemoveGroupMembers(ctx, tenant, id, ids))
}

// memberRequest returns the tenant and id of a membership change's group
// and the ids of its users, which must be of the group's tenant.
func memberRequest(group string, userNames []string) (tenant, id string, ids []string, err error) {
	tenant, id, err = scopedOf(names.Groups, "group", group)
	if err != nil {
		return "", "", nil, err
	}
	inv := &users.InvalidError{}
	ids = make([]string, len(userNames))
	for i, n := range userNames {
		t, uid, ok := names.Users.Scoped(n)
		switch {
		case !ok:
			inv.Violations = append(inv.Violations, users.FieldViolation{Field: fmt.Sprintf("users[%d]", i), Description: names.Users.NotScoped(n)})
		case orDefault(t) != orDefault(tenant):
			inv.Violations = append(inv.Violations, users.FieldViolation{Field: fmt.Sprintf("users[%d]", i),
				Description: fmt.Sprintf("%q is not a user of %s, the group's tenant", n, tenantName(orDefault(tenant)))})
		}
		ids[i] = uid
	}
	if len(inv.Violations) > 0 {
		return "", "", nil, inv
	}
	return tenant, id, ids, nil
}

// ListGroupMembers implements users.v2.GroupService.
func (s *GroupServerV2) ListGroupMembers(ctx context.Context, req *usersv2.ListGroupMembersRequest) (*usersv2.ListGroupMembersResponse, error) {
	tenant, id, err := scopedOf(names.Groups, "parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	ms, next, err := s.svc.ListGroupMembers(ctx, tenant, id, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &usersv2.ListGroupMembersResponse{Members: make([]*usersv2.GroupMember, len(ms)), NextPageToken: next}
	for i, m := range ms {
		out.Members[i] = &usersv2.GroupMember{User: userName(orDefault(tenant), m.UserID), CreateTime: timestamppb.New(m.CreateTime)}
	}
	return out, nil
}

// ListUserGroups implements users.v2.GroupService.
func (s *GroupServerV2) ListUserGroups(ctx context.Context, req *usersv2.ListUserGroupsRequest) (*usersv2.ListUserGroupsResponse, error) {
	tenant, id, err := scopedOf(names.Users, "parent", req.GetParent())
	if err != nil {
		return nil, err
	}
	gs, next, err := s.svc.ListUserGroups(ctx, tenant, id, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &usersv2.ListUserGroupsResponse{Groups: make([]*usersv2.Group, len(gs)), NextPageToken: next}
	for i, g := range gs {
		out.Groups[i] = groupToProtoV2(g)
	}
	return out, nil
}
