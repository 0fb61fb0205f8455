package scim

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usersd/usersd/internal/users"
)

// The request bodies in this file are those Okta and Microsoft Entra ID
// publish in their SCIM documentation, as the comment on each says. They
// run through what a handler does: decode, map to the domain, store (a
// stand-in for the service, below), map back, filter, patch.

// create stands in for Service.Create: it gives u what the store gives a
// user.
func create(t *testing.T, u *users.User) *users.User {
	t.Helper()
	attrs, err := users.NormalizeAttributes("user.attributes", u.Attributes)
	if err != nil {
		t.Fatal(err)
	}
	c := u.Clone()
	c.Tenant, c.ID, c.Attributes = "acme", babsID, attrs
	c.CreateTime, c.UpdateTime, c.Revision = created, created, 1
	return c
}

// update stands in for Service.Update: it sets the fields the mask names.
func update(t *testing.T, prev *users.User, req users.UpdateRequest) *users.User {
	t.Helper()
	if req.Etag != prev.Etag() {
		t.Fatalf("etag %q, want the user's %q", req.Etag, prev.Etag())
	}
	u, in := prev.Clone(), req.User
	for _, p := range req.Paths {
		switch p {
		case "email":
			u.Email = in.Email
		case "display_name":
			u.DisplayName = in.DisplayName
		case "state":
			u.State = in.State
		case "external_id":
			u.ExternalID = in.ExternalID
		case "given_name":
			u.GivenName = in.GivenName
		case "family_name":
			u.FamilyName = in.FamilyName
		case "phone_number":
			u.PhoneNumber = in.PhoneNumber
		case "locale":
			u.Locale = in.Locale
		case "time_zone":
			u.TimeZone = in.TimeZone
		case "attributes":
			attrs, err := users.NormalizeAttributes("user.attributes", in.Attributes)
			if err != nil {
				t.Fatal(err)
			}
			u.Attributes = attrs
		default:
			t.Fatalf("unknown path %q", p)
		}
	}
	u.UpdateTime, u.Revision = modified, u.Revision+1
	return u
}

// patchUser applies a PATCH body to the stored user as a handler does and
// returns the user updated, and the mask.
func patchUser(t *testing.T, prev *users.User, body string) (*users.User, []string) {
	t.Helper()
	p, err := ParsePatch([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	cur, err := UserFromDomain(prev, base)
	if err != nil {
		t.Fatal(err)
	}
	next, err := p.ApplyToUser(cur)
	if err != nil {
		t.Fatal(err)
	}
	req, changed, err := next.UpdateRequest(prev)
	if err != nil {
		t.Fatal(err)
	}
	if !changed {
		return prev, nil
	}
	return update(t, prev, req), req.Paths
}

// TestOkta runs the requests of Okta's SCIM 2.0 protocol reference
// (developer.okta.com, "SCIM 2.0 protocol reference": "Determine if the
// user already exists", "Create the user", "Update a specific user (PUT)",
// "Update a specific user (PATCH)" to deactivate and to set the
// password).
func TestOkta(t *testing.T) {
	// Source: Okta, "Determine if the user already exists":
	// GET /scim/v2/Users?filter=userName%20eq%20%22test.user%40okta.local%22&startIndex=1&count=100
	f, err := CompileUserFilter(`userName eq "test.user@okta.local"`)
	if err != nil {
		t.Fatal(err)
	}
	if f.Filter != `email = "test.user@okta.local"` || f.None {
		t.Errorf("lookup filter = %+v", f)
	}

	// Source: Okta, "Create the user": POST /scim/v2/Users.
	u, err := DecodeUser([]byte(`{
		"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
		"userName": "test.user@okta.local",
		"name": {
			"givenName": "Test",
			"familyName": "User"
		},
		"emails": [{
			"primary": true,
			"value": "test.user@okta.local",
			"type": "work"
		}],
		"displayName": "Test User",
		"locale": "en-US",
		"externalId": "00ujl29u0le5T6Aj10h7",
		"groups": [],
		"password": "1mz050nq",
		"active": true
	}`))
	if err != nil {
		t.Fatal(err)
	}
	in, err := u.ToDomain()
	if err != nil {
		t.Fatal(err)
	}
	want := &users.User{Email: "test.user@okta.local", DisplayName: "Test User", State: users.StateActive,
		Profile: users.Profile{ExternalID: "00ujl29u0le5T6Aj10h7", GivenName: "Test", FamilyName: "User", Locale: "en-US"}}
	if d := cmp.Diff(want, in); d != "" {
		t.Fatalf("create (-want +got):\n%s", d)
	}
	stored := create(t, in)
	res, err := UserFromDomain(stored, base)
	if err != nil {
		t.Fatal(err)
	}
	if !f.Match(res) {
		t.Error("the created user does not match Okta's lookup")
	}
	jsonEqual(t, res, `{
		"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
		"id": "`+babsID+`", "externalId": "00ujl29u0le5T6Aj10h7", "userName": "test.user@okta.local",
		"name": {"formatted": "Test User", "givenName": "Test", "familyName": "User"},
		"displayName": "Test User",
		"emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
		"locale": "en-US", "active": true,
		"meta": {"resourceType": "User", "created": "2026-03-01T09:00:00Z", "lastModified": "2026-03-01T09:00:00Z",
			"location": "`+base+`/Users/`+babsID+`", "version": "W/\"`+stored.Etag()+`\""}
	}`)

	// Source: Okta, "Update a specific user (PUT)": the user sent back
	// with its id and meta, a new given name and an empty middle name.
	put, err := DecodeUser([]byte(`{
		"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
		"id": "` + babsID + `",
		"userName": "test.user@okta.local",
		"name": {
			"givenName": "Another",
			"middleName": "",
			"familyName": "User"
		},
		"emails": [{
			"primary": true,
			"value": "test.user@okta.local",
			"type": "work",
			"display": "test.user@okta.local"
		}],
		"locale": "en-US",
		"externalId": "00ujl29u0le5T6Aj10h7",
		"groups": [],
		"active": true,
		"meta": {
			"resourceType": "User",
			"created": "2010-01-23T04:56:22Z",
			"lastModified": "2011-05-13T04:42:34Z"
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	req, changed, err := put.UpdateRequest(stored)
	if err != nil || !changed {
		t.Fatalf("PUT: changed %v, %v", changed, err)
	}
	// displayName is not in the body: it is made again from the name.
	if want := []string{"display_name", "given_name"}; !slices.Equal(req.Paths, want) || req.User.DisplayName != "Another User" {
		t.Errorf("PUT paths = %q, display name %q", req.Paths, req.User.DisplayName)
	}
	stored = update(t, stored, req)

	// Source: Okta, "Update a specific user (PATCH)", deactivation.
	stored, paths := patchUser(t, stored, `{
		"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations": [{
			"op": "replace",
			"value": {
				"active": false
			}
		}]
	}`)
	if stored.State != users.StateSuspended || !slices.Equal(paths, []string{"state"}) {
		t.Errorf("deactivate: state %v, paths %q", stored.State, paths)
	}
	// Source: Okta, the same with "active": true, reactivation; and the
	// password sync PATCH, whose password usersd does not keep.
	stored, _ = patchUser(t, stored, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":true}}]}`)
	if stored.State != users.StateActive {
		t.Errorf("reactivate: state %v", stored.State)
	}
	if _, paths := patchUser(t, stored, `{
		"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		"Operations": [{
			"op": "replace",
			"value": {
				"password": "t1meMa$heen"
			}
		}]
	}`); paths != nil {
		t.Errorf("password: paths %q", paths)
	}
}

// TestOktaGroups runs the group requests of Okta's SCIM 2.0 protocol
// reference ("Create groups", "Update a specific group name", "Update
// specific group membership", "Retrieve specific groups" by filter).
func TestOktaGroups(t *testing.T) {
	// Source: Okta, GET /scim/v2/Groups?filter=displayName eq "Test SCIMv2".
	f, err := CompileGroupFilter(`displayName eq "Test SCIMv2"`)
	if err != nil || f.Filter != `display_name = "Test SCIMv2"` {
		t.Fatalf("filter %+v, %v", f, err)
	}

	// Source: Okta, "Create groups": POST /scim/v2/Groups.
	g, err := DecodeGroup([]byte(`{
		"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
		"displayName": "Test SCIMv2",
		"members": []
	}`))
	if err != nil {
		t.Fatal(err)
	}
	in, err := g.ToDomain()
	if err != nil || in.DisplayName != "Test SCIMv2" {
		t.Fatalf("ToDomain = %+v, %v", in, err)
	}
	if ids, err := g.MemberIDs(); err != nil || ids != nil {
		t.Errorf("MemberIDs = %q, %v", ids, err)
	}
	stored := &users.Group{Tenant: "acme", ID: "abf4dd94-a4c0-4f67-89c9-76b03340cb9b", DisplayName: in.DisplayName, CreateTime: created, UpdateTime: created, Revision: 1}
	if !f.Match(GroupFromDomain(stored, nil, base)) {
		t.Error("the group does not match Okta's lookup")
	}

	for _, tc := range []struct {
		source, body string
		paths        []string
		changes      MemberChanges
	}{
		{"Okta, \"Update a specific group name\"", `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{
				"op": "replace",
				"value": {
					"id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b",
					"displayName": "Test SCIMv2 renamed"
				}
			}]
		}`, []string{"display_name"}, MemberChanges{}},
		{"Okta, \"Update specific group membership\", add", `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{
				"op": "add",
				"path": "members",
				"value": [{
					"value": "23a35c27-23d3-4c03-b4c5-6443c09e7173",
					"display": "test.user@okta.local"
				}]
			}]
		}`, nil, MemberChanges{Add: []string{"23a35c27-23d3-4c03-b4c5-6443c09e7173"}}},
		{"Okta, \"Update specific group membership\", remove", `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{
				"op": "remove",
				"path": "members[value eq \"89bb1940-b905-4575-9e7f-6f887cfb368e\"]"
			}]
		}`, nil, MemberChanges{Remove: []string{"89bb1940-b905-4575-9e7f-6f887cfb368e"}}},
		{"Okta, group push replacing the members", `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{
				"op": "replace",
				"path": "members",
				"value": [
					{"value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local"},
					{"value": "89bb1940-b905-4575-9e7f-6f887cfb368e", "display": "test.user2@okta.local"}
				]
			}]
		}`, nil, MemberChanges{RemoveAll: true, Add: []string{"23a35c27-23d3-4c03-b4c5-6443c09e7173", "89bb1940-b905-4575-9e7f-6f887cfb368e"}}},
	} {
		t.Run(tc.source, func(t *testing.T) {
			checkGroupPatch(t, stored, tc.body, tc.paths, tc.changes)
		})
	}
}

// checkGroupPatch applies a PATCH body to a stored group as a handler
// does and checks the mask and the member changes.
func checkGroupPatch(t *testing.T, stored *users.Group, body string, paths []string, changes MemberChanges) {
	t.Helper()
	p, err := ParsePatch([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	g, mc, err := p.ApplyToGroup(GroupFromDomain(stored, nil, base))
	if err != nil {
		t.Fatal(err)
	}
	up, changed, err := g.UpdateRequest(stored)
	if err != nil {
		t.Fatal(err)
	}
	if changed != (paths != nil) || !slices.Equal(up.Paths, paths) {
		t.Errorf("paths %q, want %q", up.Paths, paths)
	}
	if mc.RemoveAll != changes.RemoveAll || !slices.Equal(mc.Add, changes.Add) || !slices.Equal(mc.Remove, changes.Remove) {
		t.Errorf("member changes %+v, want %+v", mc, changes)
	}
}

// TestEntra runs the user requests of Microsoft Entra ID's "Tutorial:
// Develop and plan provisioning for a SCIM endpoint" (learn.microsoft.com,
// "User Operations"), and of its "Known issues and resolutions with SCIM
// 2.0 protocol compliance" (the PATCH bodies sent with and without the
// aadOptscim062020 flag).
func TestEntra(t *testing.T) {
	// Source: Entra tutorial, "Create User", request.
	u, err := DecodeUser([]byte(`{
		"schemas": [
			"urn:ietf:params:scim:schemas:core:2.0:User",
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
		"externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
		"userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
		"active": true,
		"emails": [{
			"primary": true,
			"type": "work",
			"value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"
		}],
		"meta": {
			"resourceType": "User"
		},
		"name": {
			"formatted": "givenName familyName",
			"familyName": "familyName",
			"givenName": "givenName"
		},
		"roles": []
	}`))
	if err != nil {
		t.Fatal(err)
	}
	in, err := u.ToDomain()
	if err != nil {
		t.Fatal(err)
	}
	// The userName is not an address: the work email is the user's, and
	// the userName is kept in the attributes.
	want := &users.User{Email: "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com", DisplayName: "givenName familyName",
		State: users.StateActive, Profile: users.Profile{ExternalID: "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef", GivenName: "givenName", FamilyName: "familyName",
			Attributes: []byte(`{"scim":{"userName":"Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1","userNameKey":"test_user_ab6490ee-1e48-479e-a20b-2d77186b5dd1"}}`)}}
	if d := cmp.Diff(want, in); d != "" {
		t.Fatalf("create (-want +got):\n%s", d)
	}
	stored := create(t, in)

	// Source: Entra tutorial, "Create User", response (the attributes
	// Entra reads back).
	res, err := UserFromDomain(stored, base)
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, res, `{
		"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
		"id": "`+babsID+`",
		"externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
		"meta": {"resourceType": "User", "created": "2026-03-01T09:00:00Z", "lastModified": "2026-03-01T09:00:00Z",
			"location": "`+base+`/Users/`+babsID+`", "version": "W/\"`+stored.Etag()+`\""},
		"userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
		"name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
		"displayName": "givenName familyName",
		"active": true,
		"emails": [{"value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com", "type": "work", "primary": true}]
	}`)

	// Source: Entra tutorial, "Get User by query":
	// GET /Users?filter=userName eq "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081"
	// (here with the userName created above, in another case).
	f, err := CompileUserFilter(`userName eq "TEST_USER_AB6490EE-1e48-479e-a20b-2d77186b5dd1"`)
	if err != nil {
		t.Fatal(err)
	}
	if f.Filter != `attributes.scim.userNameKey = "test_user_ab6490ee-1e48-479e-a20b-2d77186b5dd1"` || !f.Exact || !f.Match(res) {
		t.Errorf("query: %+v, Match %v", f, f.Match(res))
	}
	// Source: Entra tutorial, "Get User by query - Zero results".
	if f, err := CompileUserFilter(`userName eq "non-existent user"`); err != nil || f.Match(res) {
		t.Errorf("zero results: %+v, %v", f, err)
	}

	// A GET sent back as a PUT changes nothing.
	if again, err := DecodeUser(mustJSON(t, res)); err != nil {
		t.Fatal(err)
	} else if _, changed, err := again.UpdateRequest(stored); err != nil || changed {
		t.Errorf("round trip: changed %v, %v", changed, err)
	}

	for _, tc := range []struct {
		source, body string
		paths        []string
		check        func(*users.User) bool
	}{
		{"Entra tutorial, \"Update User [Multi-valued properties]\"", `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [
				{
				"op": "Replace",
				"path": "emails[type eq \"work\"].value",
				"value": "updatedEmail@microsoft.com"
				},
				{
				"op": "Replace",
				"path": "name.familyName",
				"value": "updatedFamilyName"
				}
			]
		}`, []string{"email", "family_name"}, func(u *users.User) bool {
			return u.Email == "updatedEmail@microsoft.com" && u.FamilyName == "updatedFamilyName"
		}},
		{"Entra tutorial, \"Update User [Single-valued properties]\"", `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{
				"op": "Replace",
				"path": "userName",
				"value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"
			}]
		}`, []string{"email", "attributes"}, func(u *users.User) bool {
			// An address: the email, and no userName of its own.
			return u.Email == "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com" && u.Attributes == nil
		}},
		{"Entra tutorial, \"Disable User\"", `{
			"Operations": [
				{
					"op": "Replace",
					"path": "active",
					"value": false
				}
			],
			"schemas": [
				"urn:ietf:params:scim:api:messages:2.0:PatchOp"
			]
		}`, []string{"state"}, func(u *users.User) bool { return u.State == users.StateSuspended }},
		{"Entra known issues, disable user without the flag (\"False\")", `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [
				{
					"op": "Replace",
					"path": "active",
					"value": "False"
				}
			]
		}`, []string{"state"}, func(u *users.User) bool { return u.State == users.StateSuspended }},
		{"Entra known issues, disable user with the flag", `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [
				{
					"op": "replace",
					"value": {
						"active": false
					}
				}
			]
		}`, []string{"state"}, func(u *users.User) bool { return u.State == users.StateSuspended }},
		{"Entra known issues, add a single-value attribute without the flag", `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [
				{
					"op": "Add",
					"path": "nickName",
					"value": "Babs"
				}
			]
		}`, nil, nil},
		{"Entra known issues, add a single-value attribute with the flag", `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [
				{
					"op": "add",
					"value": {
						"nickName": "Babs"
					}
				}
			]
		}`, nil, nil},
		{"Entra known issues, replace multiple attributes without the flag", `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [
				{"op": "Replace", "path": "displayName", "value": "Pvlo"},
				{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "TestBcwqnm@test.microsoft.com"},
				{"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
				{"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
				{"op": "Replace", "path": "externalId", "value": "Eqpj"},
				{"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "Eqpj"}
			]
		}`, []string{"email", "display_name", "external_id", "given_name", "family_name", "attributes"}, checkReplaced},
		{"Entra known issues, replace multiple attributes with the flag", `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [
				{
					"op": "replace",
					"value": {
						"displayName": "Pvlo",
						"emails[type eq \"work\"].value": "TestBcwqnm@test.microsoft.com",
						"name.givenName": "Gtfd",
						"name.familyName": "Pkqf",
						"externalId": "Eqpj",
						"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Eqpj"
					}
				}
			]
		}`, []string{"email", "display_name", "external_id", "given_name", "family_name", "attributes"}, checkReplaced},
		{"Entra, the manager set by id", `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{
				"op": "Add",
				"path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
				"value": "` + managerID + `"
			}]
		}`, []string{"attributes"}, func(u *users.User) bool {
			return readStored(u.Attributes).enterprise.Manager.Value == managerID
		}},
	} {
		t.Run(tc.source, func(t *testing.T) {
			got, paths := patchUser(t, stored, tc.body)
			if !slices.Equal(paths, tc.paths) {
				t.Errorf("paths %q, want %q", paths, tc.paths)
			}
			if tc.check != nil && !tc.check(got) {
				t.Errorf("user %+v", got)
			}
		})
	}
}

func checkReplaced(u *users.User) bool {
	st := readStored(u.Attributes)
	return u.DisplayName == "Pvlo" && u.Email == "TestBcwqnm@test.microsoft.com" && u.GivenName == "Gtfd" &&
		u.FamilyName == "Pkqf" && u.ExternalID == "Eqpj" && st.enterprise.EmployeeNumber == "Eqpj" &&
		st.userName == "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1"
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEntraGroups runs the group requests of Microsoft Entra ID's
// tutorial ("Group Operations") and of its known issues.
func TestEntraGroups(t *testing.T) {
	// Source: Entra tutorial, "Create Group", request: the schemas list
	// one of Microsoft's own.
	g, err := DecodeGroup([]byte(`{
		"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
		"externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
		"displayName": "displayName",
		"meta": {
			"resourceType": "Group"
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	in, err := g.ToDomain()
	if err != nil || in.DisplayName != "displayName" || in.ExternalID != "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159" {
		t.Fatalf("ToDomain = %+v, %v", in, err)
	}
	stored := &users.Group{Tenant: "acme", ID: groupID, DisplayName: in.DisplayName, ExternalID: in.ExternalID, CreateTime: created, UpdateTime: created, Revision: 1}

	// Source: Entra tutorial, "Get Group by displayName":
	// GET /Groups?excludedAttributes=members&filter=displayName eq "displayName".
	f, err := CompileGroupFilter(`displayName eq "displayName"`)
	if err != nil || f.Filter != `display_name = "displayName"` || !f.Match(GroupFromDomain(stored, nil, base)) {
		t.Errorf("filter %+v, %v", f, err)
	}

	for _, tc := range []struct {
		source, body string
		paths        []string
		changes      MemberChanges
		err          string
	}{
		{source: "Entra tutorial, \"Update Group [Non-member attributes]\"", body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{
				"op": "Replace",
				"path": "displayName",
				"value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
			}]
		}`, paths: []string{"display_name"}},
		// The tutorial's member ids are not UUIDs, as usersd's user ids
		// are: adding one is refused, removing one removes nothing.
		{source: "Entra tutorial, \"Update Group [Add Members]\"", body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{
				"op": "Add",
				"path": "members",
				"value": [{
					"$ref": null,
					"value": "f648f8d5ea4e4cd38e9c"
				}]
			}]
		}`, err: `"f648f8d5ea4e4cd38e9c" is not a user id`},
		{source: "Entra tutorial, \"Update Group [Add Members]\", with a usersd id", body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{
				"op": "Add",
				"path": "members",
				"value": [{
					"$ref": null,
					"value": "` + memberA + `"
				}]
			}]
		}`, changes: MemberChanges{Add: []string{memberA}}},
		{source: "Entra tutorial, \"Update Group [Remove Members]\"", body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [{
				"op": "Remove",
				"path": "members",
				"value": [{
					"$ref": null,
					"value": "f648f8d5ea4e4cd38e9c"
				}]
			}]
		}`},
		{source: "Entra known issues, remove a member without the flag", body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [
				{
					"op": "Remove",
					"path": "members",
					"value": [
						{
							"value": "` + memberA + `"
						}
					]
				}
			]
		}`, changes: MemberChanges{Remove: []string{memberA}}},
		{source: "Entra known issues, remove a member with the flag", body: `{
			"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
			"Operations": [
				{
					"op": "remove",
					"path": "members[value eq \"` + memberA + `\"]"
				}
			]
		}`, changes: MemberChanges{Remove: []string{memberA}}},
	} {
		t.Run(tc.source, func(t *testing.T) {
			if tc.err != "" {
				p, err := ParsePatch([]byte(tc.body))
				if err == nil {
					_, _, err = p.ApplyToGroup(GroupFromDomain(stored, nil, base))
				}
				wantError(t, err, http.StatusBadRequest, TypeInvalidValue, tc.err)
				return
			}
			checkGroupPatch(t, stored, tc.body, tc.paths, tc.changes)
		})
	}
}
