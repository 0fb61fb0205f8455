package scim

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usersd/usersd/internal/users"
)

func TestGroupFromDomain(t *testing.T) {
	g := GroupFromDomain(aGroup(), []users.GroupMember{{UserID: memberA, CreateTime: created}, {UserID: memberB}}, base)
	jsonEqual(t, g, `{
		"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
		"id": "`+groupID+`",
		"externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
		"displayName": "Tour Guides",
		"members": [
			{"value": "`+memberA+`", "$ref": "`+base+`/Users/`+memberA+`", "type": "User"},
			{"value": "`+memberB+`", "$ref": "`+base+`/Users/`+memberB+`", "type": "User"}
		],
		"meta": {
			"resourceType": "Group", "created": "2026-03-01T09:00:00Z", "lastModified": "2026-03-02T10:30:15.123456Z",
			"location": "`+base+`/Groups/`+groupID+`", "version": "W/\"`+aGroup().Etag()+`\""
		}
	}`)
	if g := GroupFromDomain(aGroup(), nil, base); g.Members != nil {
		t.Errorf("members without members: %v", g.Members)
	}
}

func TestDecodeGroup(t *testing.T) {
	g, err := DecodeGroup([]byte(`{
		"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
		"DisplayName": "Tour Guides", "externalId": "eg-1", "id": "ignored",
		"members": [{"value": "` + strings.ToUpper(memberA) + `", "display": "Babs"}, {"value": "` + memberB + `", "type": "User", "$ref": null}, {"value": "` + memberA + `"}]
	}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &Group{Schemas: []string{GroupSchema}, DisplayName: "Tour Guides", ExternalID: "eg-1", Members: []Member{
		{Value: strings.ToUpper(memberA), Display: "Babs"}, {Value: memberB, Type: "User"}, {Value: memberA},
	}}
	if d := cmp.Diff(want, g); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	ids, err := g.MemberIDs()
	if err != nil || !slices.Equal(ids, []string{memberA, memberB}) {
		t.Errorf("MemberIDs = %q, %v", ids, err)
	}
	mc, err := g.ReplaceMembers()
	if err != nil || !mc.RemoveAll || !slices.Equal(mc.Add, []string{memberA, memberB}) || mc.Remove != nil {
		t.Errorf("ReplaceMembers = %+v, %v", mc, err)
	}
	d, err := g.ToDomain()
	if err != nil || d.DisplayName != "Tour Guides" || d.ExternalID != "eg-1" {
		t.Errorf("ToDomain = %+v, %v", d, err)
	}

	for _, tc := range []struct {
		body, fragment string
		scimType       string
	}{
		{`{"displayName": "x", "members": [{"value": "not-an-id"}]}`, `members[0].value: "not-an-id" is not a user id`, TypeInvalidValue},
		{`{"displayName": "x", "members": [{"value": "` + memberA + `", "type": "Group"}]}`, "only users can be members", TypeInvalidValue},
		{`{"displayName": "x", "members": [{"display": "Babs"}]}`, "members[0].value: required", TypeInvalidValue},
		{`{"displayName": "x", "description": "no such attribute"}`, `unknown attribute "description"`, TypeInvalidSyntax},
		{`{"displayName": 1}`, "displayName: want a string", TypeInvalidValue},
	} {
		g, err := DecodeGroup([]byte(tc.body))
		if err == nil {
			_, err = g.MemberIDs()
		}
		wantError(t, err, http.StatusBadRequest, tc.scimType, tc.fragment)
	}
	g, err = DecodeGroup([]byte(`{"externalId": "x"}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.ToDomain()
	wantError(t, err, http.StatusBadRequest, TypeInvalidValue, "displayName: required")
}

func TestGroupUpdateRequest(t *testing.T) {
	g := GroupFromDomain(aGroup(), nil, base)
	if _, changed, err := g.UpdateRequest(aGroup()); err != nil || changed {
		t.Fatalf("unchanged: changed = %v, %v", changed, err)
	}
	g.DisplayName, g.ExternalID = "Guides", ""
	up, changed, err := g.UpdateRequest(aGroup())
	if err != nil || !changed {
		t.Fatalf("changed = %v, %v", changed, err)
	}
	want := GroupUpdate{
		Group: &users.Group{Tenant: "acme", ID: groupID, DisplayName: "Guides", Description: "kept as it is"},
		Paths: []string{"display_name", "external_id"}, Etag: aGroup().Etag(),
	}
	if d := cmp.Diff(want, up); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	g.DisplayName = " "
	_, _, err = g.UpdateRequest(aGroup())
	wantError(t, err, http.StatusBadRequest, TypeInvalidValue, "displayName: required")
}

func TestMemberChanges(t *testing.T) {
	var mc MemberChanges
	if !mc.IsZero() {
		t.Error("the zero MemberChanges is not zero")
	}
	mc.add(memberA)
	mc.remove(memberA) // added, then removed: removed
	mc.remove(memberB)
	mc.add(memberB) // removed, then added: added
	mc.finish()
	if !slices.Equal(mc.Add, []string{memberB}) || !slices.Equal(mc.Remove, []string{memberA}) || mc.RemoveAll {
		t.Errorf("got %+v", mc)
	}
	mc.removeAll()
	mc.remove(memberA) // covered by RemoveAll
	mc.add(memberB)
	mc.finish()
	if !slices.Equal(mc.Add, []string{memberB}) || mc.Remove != nil || !mc.RemoveAll || mc.IsZero() {
		t.Errorf("got %+v", mc)
	}
}

// TestMemberChangesScale checks that a PATCH naming 20,000 members, about
// what a 1 MiB body holds, costs time linear in them.
func TestMemberChangesScale(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[`)
	const n = 20000
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"value":"0190a5b4-0000-7000-8000-%012d"}`, i)
	}
	b.WriteString(`]},{"op":"remove","path":"members[value eq \"0190a5b4-0000-7000-8000-000000000000\"]"}]}`)
	start := time.Now()
	p, err := ParsePatch([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	_, mc, err := p.ApplyToGroup(GroupFromDomain(aGroup(), nil, base))
	if err != nil {
		t.Fatal(err)
	}
	if len(mc.Add) != n-1 || len(mc.Remove) != 1 {
		t.Errorf("%d added, %d removed", len(mc.Add), len(mc.Remove))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}
