package grpcserver_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/grpcserver"
	"github.com/usersd/usersd/internal/users"
)

// groupClients serves users.v1, users.v2 and GroupService on one
// users.Service, as usersd does.
func groupClients(t *testing.T) (usersv1.UserServiceClient, usersv2.UserServiceClient, usersv2.GroupServiceClient) {
	t.Helper()
	conn := serveUsers(t, func(s grpc.ServiceRegistrar, svc *users.Service) {
		usersv1.RegisterUserServiceServer(s, grpcserver.New(svc))
		usersv2.RegisterUserServiceServer(s, grpcserver.NewV2(svc))
		usersv2.RegisterGroupServiceServer(s, grpcserver.NewGroupsV2(svc))
	})
	return usersv1.NewUserServiceClient(conn), usersv2.NewUserServiceClient(conn), usersv2.NewGroupServiceClient(conn)
}

// TestGroupService follows a group through every RPC of GroupService,
// with each error's code and field.
func TestGroupService(t *testing.T) {
	ctx := context.Background()
	v1, uc, gc := groupClients(t)

	created, err := gc.CreateGroup(ctx, &usersv2.CreateGroupRequest{Group: &usersv2.Group{
		Name: "groups/" + users.NewID(), DisplayName: "Engineering", ExternalId: "okta-eng", Description: "Builders", MemberCount: 7,
	}})
	if err != nil {
		t.Fatalf("CreateGroup err = %v", err)
	}
	if created.GetDisplayName() != "Engineering" || created.GetExternalId() != "okta-eng" || created.GetMemberCount() != 0 ||
		created.GetCreateTime() == nil || created.GetEtag() == "" || len(created.GetName()) != len("tenants/default/groups/")+36 {
		t.Errorf("CreateGroup = %v", created)
	}
	_, err = gc.CreateGroup(ctx, &usersv2.CreateGroupRequest{Group: &usersv2.Group{DisplayName: "Again", ExternalId: "okta-eng"}})
	checkErr(t, "CreateGroup(taken external id)", err, codes.AlreadyExists, "")
	_, err = gc.CreateGroup(ctx, &usersv2.CreateGroupRequest{Group: &usersv2.Group{DisplayName: "  "}})
	checkErr(t, "CreateGroup(blank name)", err, codes.InvalidArgument, "group.display_name")
	_, err = gc.CreateGroup(ctx, &usersv2.CreateGroupRequest{Group: &usersv2.Group{DisplayName: "x\x00y"}})
	checkErr(t, "CreateGroup(NUL)", err, codes.InvalidArgument, "group.display_name")
	_, err = gc.CreateGroup(ctx, &usersv2.CreateGroupRequest{Parent: "tenants/nowhere", Group: &usersv2.Group{DisplayName: "X"}})
	checkErr(t, "CreateGroup(unknown tenant)", err, codes.NotFound, "")
	// Two groups may share a display name.
	twin, err := gc.CreateGroup(ctx, &usersv2.CreateGroupRequest{Parent: "tenants/default", Group: &usersv2.Group{DisplayName: "Engineering"}})
	if err != nil {
		t.Fatalf("CreateGroup(same display name) err = %v", err)
	}

	got, err := gc.GetGroup(ctx, &usersv2.GetGroupRequest{Name: created.GetName()})
	if err != nil || got.GetEtag() != created.GetEtag() || got.GetDescription() != "Builders" {
		t.Errorf("GetGroup = %v, %v", got, err)
	}
	_, err = gc.GetGroup(ctx, &usersv2.GetGroupRequest{Name: "groups/" + users.NewID()})
	checkErr(t, "GetGroup(unknown)", err, codes.NotFound, "")
	_, err = gc.GetGroup(ctx, &usersv2.GetGroupRequest{Name: "users/" + users.NewID()})
	checkErr(t, "GetGroup(a user name)", err, codes.InvalidArgument, "name")

	// List: filters, query, pages.
	list, err := gc.ListGroups(ctx, &usersv2.ListGroupsRequest{Filter: `display_name = "ENGINEERING"`})
	if err != nil || len(list.GetGroups()) != 2 {
		t.Errorf("ListGroups(display_name) = %v, %v; want both Engineering groups", list, err)
	}
	list, err = gc.ListGroups(ctx, &usersv2.ListGroupsRequest{Filter: `externalId = "okta-eng"`})
	if err != nil || len(list.GetGroups()) != 1 || list.GetGroups()[0].GetName() != created.GetName() {
		t.Errorf("ListGroups(externalId) = %v, %v", list, err)
	}
	list, err = gc.ListGroups(ctx, &usersv2.ListGroupsRequest{Query: "gineer", PageSize: 1})
	if err != nil || len(list.GetGroups()) != 1 || list.GetNextPageToken() == "" {
		t.Fatalf("ListGroups(query, page 1) = %v, %v", list, err)
	}
	next, err := gc.ListGroups(ctx, &usersv2.ListGroupsRequest{Query: "gineer", PageSize: 1, PageToken: list.GetNextPageToken()})
	if err != nil || len(next.GetGroups()) != 1 || next.GetGroups()[0].GetName() != twin.GetName() || next.GetNextPageToken() != "" {
		t.Errorf("ListGroups(query, page 2) = %v, %v", next, err)
	}
	_, err = gc.ListGroups(ctx, &usersv2.ListGroupsRequest{Query: "other", PageToken: list.GetNextPageToken()})
	checkErr(t, "ListGroups(token of another query)", err, codes.InvalidArgument, "page_token")
	_, err = gc.ListGroups(ctx, &usersv2.ListGroupsRequest{Filter: `description = "x"`})
	checkErr(t, "ListGroups(unknown field)", err, codes.InvalidArgument, "filter")
	_, err = gc.ListGroups(ctx, &usersv2.ListGroupsRequest{Filter: `display_name != "x"`})
	checkErr(t, "ListGroups(!=)", err, codes.InvalidArgument, "filter")

	// order_by: by the folded name, ties by creation, either way; a page
	// token is of its order alone.
	alpha, err := gc.CreateGroup(ctx, &usersv2.CreateGroupRequest{Group: &usersv2.Group{DisplayName: "Ältere"}})
	if err != nil {
		t.Fatalf("CreateGroup(Ältere) err = %v", err)
	}
	wantByName := []string{alpha.GetName(), created.GetName(), twin.GetName()} // altere, engineering (created first), engineering
	var byName []string
	list = &usersv2.ListGroupsResponse{}
	for {
		list, err = gc.ListGroups(ctx, &usersv2.ListGroupsRequest{OrderBy: "display_name", PageSize: 2, PageToken: list.GetNextPageToken()})
		if err != nil {
			t.Fatalf("ListGroups(order_by display_name) err = %v", err)
		}
		for _, g := range list.GetGroups() {
			byName = append(byName, g.GetName())
		}
		if list.GetNextPageToken() == "" {
			break
		}
		if len(byName) > 10 {
			t.Fatalf("ListGroups(order_by display_name) pages on: %v", byName)
		}
	}
	if !slices.Equal(byName, wantByName) {
		t.Errorf("ListGroups(order_by display_name) = %v, want %v", byName, wantByName)
	}
	list, err = gc.ListGroups(ctx, &usersv2.ListGroupsRequest{OrderBy: "display_name desc", PageSize: 1})
	if err != nil || len(list.GetGroups()) != 1 || list.GetGroups()[0].GetName() != twin.GetName() || list.GetNextPageToken() == "" {
		t.Fatalf("ListGroups(order_by display_name desc, page 1) = %v, %v", list, err)
	}
	next, err = gc.ListGroups(ctx, &usersv2.ListGroupsRequest{OrderBy: "display_name desc", PageSize: 1, PageToken: list.GetNextPageToken()})
	if err != nil || len(next.GetGroups()) != 1 || next.GetGroups()[0].GetName() != created.GetName() {
		t.Errorf("ListGroups(order_by display_name desc, page 2) = %v, %v", next, err)
	}
	newest, err := gc.ListGroups(ctx, &usersv2.ListGroupsRequest{OrderBy: "createTime DESC", PageSize: 1})
	if err != nil || len(newest.GetGroups()) != 1 || newest.GetGroups()[0].GetName() != alpha.GetName() {
		t.Errorf("ListGroups(order_by createTime DESC) = %v, %v; want the newest group", newest, err)
	}
	for _, orderBy := range []string{"", "create_time", "display_name"} {
		_, err = gc.ListGroups(ctx, &usersv2.ListGroupsRequest{OrderBy: orderBy, PageSize: 1, PageToken: list.GetNextPageToken()})
		checkErr(t, "ListGroups(order_by "+orderBy+", the token of display_name desc)", err, codes.InvalidArgument, "page_token")
		if got := errorReason(t, err); got != users.ReasonInvalidPageToken {
			t.Errorf("ListGroups(order_by %q, the token of display_name desc) reason = %q, want %q", orderBy, got, users.ReasonInvalidPageToken)
		}
	}
	_, err = gc.ListGroups(ctx, &usersv2.ListGroupsRequest{OrderBy: "member_count desc"})
	checkErr(t, "ListGroups(order_by member_count)", err, codes.InvalidArgument, "order_by")
	_, err = gc.ListGroups(ctx, &usersv2.ListGroupsRequest{OrderBy: "display_name sideways"})
	checkErr(t, "ListGroups(order_by display_name sideways)", err, codes.InvalidArgument, "order_by")
	_, err = gc.ListGroups(ctx, &usersv2.ListGroupsRequest{OrderBy: strings.Repeat("display_name ", 6)})
	checkErr(t, "ListGroups(order_by of 78 characters)", err, codes.InvalidArgument, "order_by")
	if _, err := gc.DeleteGroup(ctx, &usersv2.DeleteGroupRequest{Name: alpha.GetName()}); err != nil {
		t.Fatalf("DeleteGroup(Ältere) err = %v", err)
	}

	// Update: the mask, output-only paths, etags.
	updated, err := gc.UpdateGroup(ctx, &usersv2.UpdateGroupRequest{
		Group:      &usersv2.Group{Name: created.GetName(), DisplayName: "Platform", Description: "ignored", Etag: created.GetEtag()},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"display_name", "member_count"}},
	})
	if err != nil || updated.GetDisplayName() != "Platform" || updated.GetDescription() != "Builders" || updated.GetEtag() == created.GetEtag() {
		t.Fatalf("UpdateGroup(display_name) = %v, %v", updated, err)
	}
	_, err = gc.UpdateGroup(ctx, &usersv2.UpdateGroupRequest{Group: &usersv2.Group{Name: created.GetName(), DisplayName: "Stale", Etag: created.GetEtag()}})
	checkErr(t, "UpdateGroup(stale etag)", err, codes.Aborted, "")
	_, err = gc.UpdateGroup(ctx, &usersv2.UpdateGroupRequest{
		Group:      &usersv2.Group{Name: created.GetName()},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"members"}},
	})
	checkErr(t, "UpdateGroup(unknown path)", err, codes.InvalidArgument, "update_mask")
	_, err = gc.UpdateGroup(ctx, &usersv2.UpdateGroupRequest{Group: &usersv2.Group{Name: twin.GetName(), ExternalId: "okta-eng"}})
	checkErr(t, "UpdateGroup(taken external id)", err, codes.AlreadyExists, "")
	same, err := gc.UpdateGroup(ctx, &usersv2.UpdateGroupRequest{
		Group:      &usersv2.Group{Name: created.GetName()},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"create_time"}},
	})
	if err != nil || same.GetEtag() != updated.GetEtag() {
		t.Errorf("UpdateGroup(output-only paths) = %v, %v; want the group unchanged", same, err)
	}

	// Members.
	var names []string
	for i := range 5 {
		u, err := uc.CreateUser(ctx, &usersv2.CreateUserRequest{User: userV2(fmt.Sprintf("member%d@example.com", i), "Member")})
		if err != nil {
			t.Fatalf("CreateUser err = %v", err)
		}
		names = append(names, u.GetName())
	}
	g, err := gc.AddGroupMembers(ctx, &usersv2.AddGroupMembersRequest{Group: created.GetName(), Users: append(names[:3:3], names[0])})
	if err != nil || g.GetMemberCount() != 3 || g.GetEtag() != updated.GetEtag() {
		t.Fatalf("AddGroupMembers = %v, %v; want 3 members and the etag kept", g, err)
	}
	g, err = gc.AddGroupMembers(ctx, &usersv2.AddGroupMembersRequest{Group: created.GetName(), Users: names})
	if err != nil || g.GetMemberCount() != 5 {
		t.Fatalf("AddGroupMembers(again, and more) = %v, %v; want 5", g, err)
	}
	_, err = gc.AddGroupMembers(ctx, &usersv2.AddGroupMembersRequest{Group: created.GetName(), Users: []string{names[0], "users/" + users.NewID()}})
	checkErr(t, "AddGroupMembers(unknown user)", err, codes.InvalidArgument, "users[1]")
	_, err = gc.AddGroupMembers(ctx, &usersv2.AddGroupMembersRequest{Group: created.GetName(), Users: []string{"tenants/acme/users/" + users.NewID()}})
	checkErr(t, "AddGroupMembers(another tenant's user)", err, codes.InvalidArgument, "users[0]")
	_, err = gc.AddGroupMembers(ctx, &usersv2.AddGroupMembersRequest{Group: created.GetName()})
	checkErr(t, "AddGroupMembers(no users)", err, codes.InvalidArgument, "users")
	_, err = gc.AddGroupMembers(ctx, &usersv2.AddGroupMembersRequest{Group: "groups/" + users.NewID(), Users: names[:1]})
	checkErr(t, "AddGroupMembers(unknown group)", err, codes.NotFound, "")

	var members []string
	token := ""
	for {
		page, err := gc.ListGroupMembers(ctx, &usersv2.ListGroupMembersRequest{Parent: created.GetName(), PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatalf("ListGroupMembers err = %v", err)
		}
		for _, m := range page.GetMembers() {
			members = append(members, m.GetUser())
		}
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	want := slices.Sorted(slices.Values(names))
	if !slices.Equal(members, want) {
		t.Errorf("ListGroupMembers = %v, want %v (by id)", members, want)
	}

	// A user's groups, and the users of a group.
	if _, err := gc.AddGroupMembers(ctx, &usersv2.AddGroupMembersRequest{Group: twin.GetName(), Users: names[:1]}); err != nil {
		t.Fatal(err)
	}
	ug, err := gc.ListUserGroups(ctx, &usersv2.ListUserGroupsRequest{Parent: names[0]})
	if err != nil || len(ug.GetGroups()) != 2 || ug.GetGroups()[0].GetName() != created.GetName() {
		t.Errorf("ListUserGroups = %v, %v; want both groups, by id", ug, err)
	}
	_, err = gc.ListUserGroups(ctx, &usersv2.ListUserGroupsRequest{Parent: "users/" + users.NewID()})
	checkErr(t, "ListUserGroups(unknown user)", err, codes.NotFound, "")
	byGroup, err := uc.ListUsers(ctx, &usersv2.ListUsersRequest{Filter: `group = "` + twin.GetName()[len("tenants/default/groups/"):] + `"`})
	if err != nil || len(byGroup.GetUsers()) != 1 || byGroup.GetUsers()[0].GetName() != names[0] {
		t.Errorf("ListUsers(group =) = %v, %v", byGroup, err)
	}
	_, err = uc.ListUsers(ctx, &usersv2.ListUsersRequest{Filter: `group = "engineering"`})
	checkErr(t, "ListUsers(group = not an id)", err, codes.InvalidArgument, "filter")

	g, err = gc.RemoveGroupMembers(ctx, &usersv2.RemoveGroupMembersRequest{Group: created.GetName(), Users: []string{names[1], "users/" + users.NewID()}})
	if err != nil || g.GetMemberCount() != 4 {
		t.Errorf("RemoveGroupMembers = %v, %v; want 4 left", g, err)
	}
	// Deleting a user ends its memberships.
	if _, err := uc.DeleteUser(ctx, &usersv2.DeleteUserRequest{Name: names[0]}); err != nil {
		t.Fatal(err)
	}
	if g, err = gc.GetGroup(ctx, &usersv2.GetGroupRequest{Name: twin.GetName()}); err != nil || g.GetMemberCount() != 0 {
		t.Errorf("GetGroup(after the member's delete) = %v, %v; want no members", g, err)
	}

	// Delete: the etag, then gone.
	_, err = gc.DeleteGroup(ctx, &usersv2.DeleteGroupRequest{Name: created.GetName(), Etag: created.GetEtag()})
	checkErr(t, "DeleteGroup(stale etag)", err, codes.Aborted, "")
	if _, err := gc.DeleteGroup(ctx, &usersv2.DeleteGroupRequest{Name: created.GetName(), Etag: updated.GetEtag()}); err != nil {
		t.Fatalf("DeleteGroup err = %v", err)
	}
	_, err = gc.GetGroup(ctx, &usersv2.GetGroupRequest{Name: created.GetName()})
	checkErr(t, "GetGroup(deleted)", err, codes.NotFound, "")
	_, err = gc.ListGroupMembers(ctx, &usersv2.ListGroupMembersRequest{Parent: created.GetName()})
	checkErr(t, "ListGroupMembers(deleted group)", err, codes.NotFound, "")

	// The feed: v2 has the group events, naming the group (and the member
	// of a member event); v1 has the user events alone.
	feed, err := uc.ListUserEvents(ctx, &usersv2.ListUserEventsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, ev := range feed.GetEvents() {
		counts[ev.GetType()]++
		switch ev.GetType() {
		case "group.created", "group.updated", "group.deleted":
			if ev.GetGroup() == "" || ev.GetGroupSnapshot().GetName() != ev.GetGroup() || ev.GetUser() != "" {
				t.Errorf("%s event = %v", ev.GetType(), ev)
			}
		case "group.member_added", "group.member_removed":
			if ev.GetGroup() == "" || ev.GetUser() == "" || ev.GetGroupSnapshot() != nil {
				t.Errorf("%s event = %v", ev.GetType(), ev)
			}
		}
	}
	// Three groups created (Ältere, of the order_by case, deleted at
	// once); 5 + 1 members added to the first group, 1 to the twin; 1
	// removed by the call, then names[0] from both groups by its delete.
	wantCounts := map[string]int{"group.created": 3, "group.updated": 1, "group.deleted": 2, "group.member_added": 6, "group.member_removed": 3}
	for typ, n := range wantCounts {
		if counts[typ] != n {
			t.Errorf("%d %s events, want %d (all: %v)", counts[typ], typ, n, counts)
		}
	}
	feed1, err := v1.ListUserEvents(ctx, &usersv1.ListUserEventsRequest{PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range feed1.GetEvents() {
		if ev.GetType() != "user.created" && ev.GetType() != "user.deleted" {
			t.Errorf("v1 feed has a %s event", ev.GetType())
		}
	}
	if len(feed1.GetEvents()) != 6 {
		t.Errorf("v1 feed has %d events, want the 6 of users", len(feed1.GetEvents()))
	}
}
