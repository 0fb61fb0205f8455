package scim

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// patchOf wraps operations in a PatchOp request.
func patchOf(ops ...string) string {
	return `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[` + strings.Join(ops, ",") + `]}`
}

// TestPatchUser applies each shape of PATCH to babs and checks the
// resource it makes and the update it maps to.
func TestPatchUser(t *testing.T) {
	const mobile = `{"value":"+14155550199","type":"mobile"}`
	for _, tc := range []struct {
		name  string
		body  string
		want  func(u *User) // the expected resource, as an edit of babs's
		paths []string      // the update mask; nil: nothing changes
	}{
		{"replace a simple attribute", patchOf(`{"op":"replace","path":"displayName","value":"Babs"}`),
			func(u *User) { u.DisplayName = "Babs" }, []string{"display_name"}},
		{"add sets a simple attribute", patchOf(`{"op":"add","path":"externalId","value":"hr-1"}`),
			func(u *User) { u.ExternalID = "hr-1" }, []string{"external_id"}},
		{"remove a simple attribute", patchOf(`{"op":"remove","path":"externalId"}`),
			func(u *User) { u.ExternalID = "" }, []string{"external_id"}},
		{"replace with null removes", patchOf(`{"op":"replace","path":"locale","value":null}`),
			func(u *User) { u.Locale = "" }, []string{"locale"}},
		{"replace with an empty string removes", patchOf(`{"op":"replace","path":"timezone","value":""}`),
			func(u *User) { u.Timezone = "" }, []string{"time_zone"}},
		{"add null adds nothing", patchOf(`{"op":"add","path":"locale","value":null}`), nil, nil},
		{"op and path in any case", patchOf(`{"OP":"Replace","PATH":"DISPLAYNAME","Value":"Babs"}`, `{"op":"REMOVE","path":"Locale"}`),
			func(u *User) { u.DisplayName, u.Locale = "Babs", "" }, []string{"display_name", "locale"}},
		{"a URN-qualified path", patchOf(`{"op":"replace","path":"urn:ietf:params:scim:schemas:core:2.0:User:displayName","value":"Babs"}`),
			func(u *User) { u.DisplayName = "Babs" }, []string{"display_name"}},
		{"a sub-attribute", patchOf(`{"op":"replace","path":"name.givenName","value":"Babs"}`),
			func(u *User) { u.Name.GivenName = "Babs" }, []string{"given_name"}},
		{"a complex value merges", patchOf(`{"op":"replace","path":"name","value":{"givenName":"Babs","middleName":"Jane"}}`),
			func(u *User) { u.Name.GivenName = "Babs" }, []string{"given_name"}},
		{"add to a complex attribute merges too", patchOf(`{"op":"add","path":"name","value":{"familyName":"Smith"}}`),
			func(u *User) { u.Name.FamilyName = "Smith" }, []string{"family_name"}},
		{"remove a complex attribute", patchOf(`{"op":"remove","path":"name"}`),
			func(u *User) { u.Name = nil }, []string{"given_name", "family_name"}},
		{"remove a sub-attribute", patchOf(`{"op":"remove","path":"name.familyName"}`),
			func(u *User) { u.Name.FamilyName = "" }, []string{"family_name"}},
		{"add appends to a multi-valued attribute", patchOf(`{"op":"add","path":"phoneNumbers","value":[` + mobile + `]}`),
			func(u *User) {
				u.PhoneNumbers = append(u.PhoneNumbers, TypedValue{Value: "+14155550199", Type: "mobile"})
			}, nil},
		{"add one value without an array", patchOf(`{"op":"add","path":"phoneNumbers","value":` + mobile + `}`),
			func(u *User) {
				u.PhoneNumbers = append(u.PhoneNumbers, TypedValue{Value: "+14155550199", Type: "mobile"})
			}, nil},
		{"an added primary value takes primary from the others",
			patchOf(`{"op":"add","path":"phoneNumbers","value":[{"value":"+14155550199","type":"mobile","primary":true}]}`),
			func(u *User) {
				u.PhoneNumbers = []TypedValue{{Value: "+14155550100", Type: "work"}, {Value: "+14155550199", Type: "mobile", Primary: true}}
			}, []string{"phone_number", "attributes"}},
		{"add of an equal value adds nothing", patchOf(`{"op":"add","path":"emails","value":[{"value":"Barbara.Jensen@example.com","type":"work","primary":true}]}`),
			nil, nil},
		{"replace a multi-valued attribute", patchOf(`{"op":"replace","path":"phoneNumbers","value":[` + mobile + `]}`),
			func(u *User) { u.PhoneNumbers = []TypedValue{{Value: "+14155550199", Type: "mobile"}} }, []string{"phone_number", "attributes"}},
		{"remove a multi-valued attribute", patchOf(`{"op":"remove","path":"phoneNumbers"}`),
			func(u *User) { u.PhoneNumbers = nil }, []string{"phone_number", "attributes"}},
		{"a value filter and a sub-attribute", patchOf(`{"op":"replace","path":"phoneNumbers[type eq \"work\"].value","value":"+14155550199"}`),
			func(u *User) { u.PhoneNumbers[0].Value = "+14155550199" }, []string{"phone_number"}},
		{"a value filter that matches nothing makes the value", patchOf(`{"op":"add","path":"phoneNumbers[type eq \"mobile\"].value","value":"+14155550199"}`),
			func(u *User) {
				u.PhoneNumbers = append(u.PhoneNumbers, TypedValue{Value: "+14155550199", Type: "mobile"})
			}, nil},
		{"replace through a value filter that matches nothing makes it too", patchOf(`{"op":"replace","path":"phoneNumbers[type eq \"Mobile\" and primary eq true].value","value":"+14155550199"}`),
			func(u *User) {
				u.PhoneNumbers = []TypedValue{{Value: "+14155550100", Type: "work"}, {Value: "+14155550199", Type: "Mobile", Primary: true}}
			}, []string{"phone_number", "attributes"}},
		{"replace the values a filter selects", patchOf(`{"op":"replace","path":"phoneNumbers[type eq \"work\"]","value":` + mobile + `}`),
			func(u *User) { u.PhoneNumbers = []TypedValue{{Value: "+14155550199", Type: "mobile"}} }, []string{"phone_number", "attributes"}},
		{"add to the values a filter selects merges", patchOf(`{"op":"add","path":"phoneNumbers[value eq \"+14155550100\"]","value":{"type":"mobile"}}`),
			func(u *User) { u.PhoneNumbers[0].Type = "mobile" }, []string{"attributes"}},
		{"remove the values a filter selects", patchOf(`{"op":"remove","path":"phoneNumbers[type eq \"work\"]"}`),
			func(u *User) { u.PhoneNumbers = nil }, []string{"phone_number", "attributes"}},
		{"remove a sub-attribute of the values a filter selects", patchOf(`{"op":"remove","path":"phoneNumbers[type eq \"work\"].type"}`),
			func(u *User) { u.PhoneNumbers[0].Type = "" }, []string{"attributes"}},
		{"remove through a filter that matches nothing", patchOf(`{"op":"remove","path":"phoneNumbers[type eq \"fax\"]"}`), nil, nil},
		{"a sub-attribute of every value", patchOf(`{"op":"replace","path":"phoneNumbers.type","value":"mobile"}`),
			func(u *User) { u.PhoneNumbers[0].Type = "mobile" }, []string{"attributes"}},
		{"a sub-attribute of a multi-valued attribute without values", patchOf(`{"op":"remove","path":"phoneNumbers"}`, `{"op":"add","path":"phoneNumbers.value","value":"+14155550199"}`),
			func(u *User) { u.PhoneNumbers = []TypedValue{{Value: "+14155550199"}} }, []string{"phone_number", "attributes"}},
		{"remove the values listed in value", patchOf(`{"op":"remove","path":"phoneNumbers","value":[{"value":"+14155550100"}]}`),
			func(u *User) { u.PhoneNumbers = nil }, []string{"phone_number", "attributes"}},
		{"remove values listed that are not there", patchOf(`{"op":"remove","path":"emails","value":[{"value":"other@example.com"}]}`), nil, nil},
		{"an email value changes nothing while userName is an address",
			patchOf(`{"op":"replace","path":"emails[type eq \"work\"].value","value":"babs@example.org"}`),
			func(u *User) { u.Emails[0].Value = "babs@example.org" }, nil},
		{"userName", patchOf(`{"op":"replace","path":"userName","value":"babs@example.org"}`),
			func(u *User) { u.UserName = "babs@example.org" }, []string{"email"}},
		{"a userName that is not an address is kept beside the email", patchOf(`{"op":"replace","path":"userName","value":"bjensen"}`),
			func(u *User) { u.UserName = "bjensen" }, []string{"attributes"}},
		{"the enterprise extension, URN-qualified", patchOf(`{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department","value":"Sales"}`),
			func(u *User) { u.Enterprise.Department = "Sales" }, []string{"attributes"}},
		{"the manager as a bare id", patchOf(`{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"` + memberA + `"}`),
			func(u *User) { u.Enterprise.Manager.Value = memberA }, []string{"attributes"}},
		{"the manager's value", patchOf(`{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value","value":"` + memberA + `"}`),
			func(u *User) { u.Enterprise.Manager.Value = memberA }, []string{"attributes"}},
		{"remove the manager", patchOf(`{"op":"remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}`),
			func(u *User) { u.Enterprise.Manager = nil }, []string{"attributes"}},
		{"the whole extension merges", patchOf(`{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User","value":{"department":"Sales","costCenter":"4130"}}`),
			func(u *User) { u.Enterprise.Department, u.Enterprise.CostCenter = "Sales", "4130" }, []string{"attributes"}},
		{"remove the whole extension", patchOf(`{"op":"remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"}`),
			func(u *User) { u.Enterprise, u.Schemas = nil, u.Schemas[:1] }, []string{"attributes"}},
		{"remove the extension's last attributes", patchOf(`{"op":"remove","path":"employeeNumber"}`, `{"op":"remove","path":"department"}`, `{"op":"remove","path":"manager"}`),
			func(u *User) { u.Enterprise, u.Schemas = nil, u.Schemas[:1] }, []string{"attributes"}},
		{"a path without its URN finds the extension", patchOf(`{"op":"add","path":"costCenter","value":"4130"}`),
			func(u *User) { u.Enterprise.CostCenter = "4130" }, []string{"attributes"}},
		{"no path: attributes by name, dotted path, value path, URN, and the extension's object",
			patchOf(`{"op":"replace","value":{
				"schemas": ["ignored"],
				"displayName": "Babs",
				"name.familyName": "Smith",
				"phoneNumbers[type eq \"work\"].value": "+14155550199",
				"urn:ietf:params:scim:schemas:core:2.0:User:locale": "en-GB",
				"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:division": "Theme Park",
				"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"organization": "Universal Studios"},
				"active": "False"
			}}`),
			func(u *User) {
				u.DisplayName, u.Name.FamilyName, u.PhoneNumbers[0].Value, u.Locale = "Babs", "Smith", "+14155550199", "en-GB"
				u.Enterprise.Division, u.Enterprise.Organization, u.Active = "Theme Park", "Universal Studios", ptr(false)
			}, []string{"display_name", "state", "family_name", "phone_number", "locale", "attributes"}},
		{"attributes usersd does not keep are accepted", patchOf(
			`{"op":"add","path":"nickName","value":"Babs"}`,
			`{"op":"replace","path":"title","value":"Tour Guide"}`,
			`{"op":"replace","path":"addresses[type eq \"work\"].streetAddress","value":"100 Universal City Plaza"}`,
			`{"op":"remove","path":"x509Certificates"}`,
			`{"op":"replace","value":{"password":"t1meMa$heen","preferredLanguage":"en-US","roles":[]}}`,
			`{"op":"add","path":"emails[type eq \"work\"].display","value":"Babs"}`,
			`{"op":"add","path":"name.honorificPrefix","value":"Ms."}`),
			nil, nil},
		{"the same id changes nothing", patchOf(`{"op":"replace","value":{"id":"` + strings.ToUpper(babsID) + `","displayName":"Babs"}}`),
			func(u *User) { u.DisplayName = "Babs" }, []string{"display_name"}},
		{"meta is the server's", patchOf(`{"op":"replace","path":"meta","value":{"resourceType":"Group"}}`, `{"op":"add","value":{"meta":{"version":"W/\"x\""}}}`),
			nil, nil},
		{"active as a string", patchOf(`{"op":"replace","path":"active","value":"False"}`),
			func(u *User) { u.Active = ptr(false) }, []string{"state"}},
		{"active as a boolean", patchOf(`{"op":"replace","path":"active","value":false}`, `{"op":"replace","path":"active","value":"TRUE"}`),
			nil, nil},
		{"operations apply in order", patchOf(`{"op":"remove","path":"name"}`, `{"op":"add","path":"name.givenName","value":"Babs"}`),
			func(u *User) { u.Name = &Name{GivenName: "Babs"} }, []string{"given_name", "family_name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePatch([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			orig := babsSCIM(t)
			got, err := p.ApplyToUser(orig)
			if err != nil {
				t.Fatal(err)
			}
			want := babsSCIM(t)
			if tc.want != nil {
				tc.want(want)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("resource (-want +got):\n%s", d)
			}
			if d := cmp.Diff(babsSCIM(t), orig); d != "" {
				t.Errorf("the patched resource changed (-was +is):\n%s", d)
			}
			req, changed, err := got.UpdateRequest(babs())
			if err != nil {
				t.Fatal(err)
			}
			if changed != (tc.paths != nil) || !slices.Equal(req.Paths, tc.paths) {
				t.Errorf("paths = %q (changed %v), want %q", req.Paths, changed, tc.paths)
			}
		})
	}
}

func TestPatchErrors(t *testing.T) {
	many := make([]string, MaxPatchOperations+1)
	for i := range many {
		many[i] = `{"op":"add","path":"title","value":"x"}`
	}
	for _, tc := range []struct {
		name     string
		body     string
		status   int
		scimType string
		fragment string
	}{
		// The request.
		{"not an object", `[]`, 400, TypeInvalidSyntax, "not a JSON object"},
		{"no Operations", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}`, 400, TypeInvalidSyntax, "Operations: required"},
		{"Operations not an array", `{"Operations":{}}`, 400, TypeInvalidSyntax, "want an array"},
		{"Operations twice", `{"Operations":[],"operations":[]}`, 400, TypeInvalidSyntax, "given twice"},
		{"no operation", patchOf(), 400, TypeInvalidValue, "at least one"},
		{"too many operations", patchOf(many...), 400, TypeInvalidValue, "1001 operations, more than 1000"},
		{"another message", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"Operations":[{"op":"remove","path":"title"}]}`, 400, TypeInvalidSyntax, "schemas"},
		{"an operation not an object", patchOf(`"add"`), 400, TypeInvalidSyntax, "Operations[0]: want an object"},
		{"no op", patchOf(`{"path":"title","value":"x"}`), 400, TypeInvalidSyntax, "op: required"},
		{"an unknown op", patchOf(`{"op":"move","path":"title"}`), 400, TypeInvalidSyntax, `op: want add, replace or remove, got "move"`},
		{"op not a string", patchOf(`{"op":1,"path":"title"}`), 400, TypeInvalidSyntax, "got a number"},
		{"path not a string", patchOf(`{"op":"remove","path":1}`), 400, TypeInvalidPath, "path: want a string"},
		{"remove without a path", patchOf(`{"op":"remove"}`), 400, TypeNoTarget, "remove needs a path"},
		{"add without a value", patchOf(`{"op":"add","path":"title"}`), 400, TypeInvalidValue, "add needs a value"},
		{"a path that does not parse", patchOf(`{"op":"remove","path":"emails[type eq]"}`), 400, TypeInvalidPath, "is not a SCIM path"},
		{"a path too long", patchOf(`{"op":"remove","path":"` + strings.Repeat("a", MaxFilterBytes+1) + `"}`), 400, TypeInvalidPath, "longer than 1024 bytes"},
		{"a path too deep", patchOf(`{"op":"remove","path":"emails` + strings.Repeat("[", 9) + `"}`), 400, TypeInvalidPath, "nested deeper"},
		{"a body too long", `{"Operations":[` + strings.Repeat(" ", MaxBodyBytes) + `]}`, 413, "", "longer than"},
		// Applying it.
		{"an unknown attribute", patchOf(`{"op":"replace","path":"shoeSize","value":42}`), 400, TypeInvalidPath, `Operations[0] (replace shoeSize): unknown attribute "shoeSize"`},
		{"an unknown sub-attribute", patchOf(`{"op":"replace","path":"name.nick","value":"x"}`), 400, TypeInvalidPath, `unknown attribute "name.nick"`},
		{"an unknown extension", patchOf(`{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:custom:2.0:User:x","value":"y"}`), 400, TypeInvalidPath, "unknown attribute"},
		{"an unknown attribute in an extension's object", patchOf(`{"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User","value":{"shoeSize":1}}`), 400, TypeInvalidPath, "unknown attribute"},
		{"an unknown attribute without a path", patchOf(`{"op":"replace","value":{"displayName":"x","shoeSize":42}}`), 400, TypeInvalidPath, `(replace (no path)): unknown attribute "shoeSize"`},
		{"a bad key without a path", patchOf(`{"op":"replace","value":{"emails[":"x"}}`), 400, TypeInvalidPath, "not a SCIM path"},
		{"an unknown sub-attribute in a value", patchOf(`{"op":"add","path":"emails","value":[{"value":"a@b.c","shoe":1}]}`), 400, TypeInvalidValue, `unknown sub-attribute "shoe"`},
		{"no path and no object", patchOf(`{"op":"replace","value":[{"active":false}]}`), 400, TypeInvalidValue, "must be an object of attributes"},
		{"remove a required attribute", patchOf(`{"op":"remove","path":"userName"}`), 400, TypeInvalidValue, "userName is required"},
		{"replace a required attribute with null", patchOf(`{"op":"replace","value":{"userName":null}}`), 400, TypeInvalidValue, "userName is required"},
		{"replace a required attribute with an empty string", patchOf(`{"op":"replace","path":"userName","value":""}`), 400, TypeInvalidValue, "userName is required"},
		{"remove active", patchOf(`{"op":"remove","path":"active"}`), 400, TypeInvalidValue, "active cannot be removed"},
		{"another id", patchOf(`{"op":"replace","path":"id","value":"` + memberA + `"}`), 400, TypeMutability, "id is read-only"},
		{"remove id", patchOf(`{"op":"remove","path":"id"}`), 400, TypeMutability, "id is read-only"},
		{"remove meta", patchOf(`{"op":"remove","path":"meta"}`), 400, TypeMutability, "meta is read-only"},
		{"groups are read-only", patchOf(`{"op":"add","path":"groups","value":[{"value":"` + groupID + `"}]}`), 400, TypeMutability, "groups is read-only"},
		{"the manager's displayName is read-only", patchOf(`{"op":"replace","path":"manager.displayName","value":"x"}`), 400, TypeMutability, EnterpriseSchema + ":manager is read-only"},
		{"a wrong type", patchOf(`{"op":"replace","path":"active","value":5}`), 400, TypeInvalidValue, "active: want a boolean, got a number"},
		{"a string that is no boolean", patchOf(`{"op":"replace","path":"active","value":"no"}`), 400, TypeInvalidValue, "want a boolean"},
		{"a complex value that is not", patchOf(`{"op":"replace","path":"name","value":["x"]}`), 400, TypeInvalidValue, "name: want an object"},
		{"a filter on a simple attribute", patchOf(`{"op":"replace","path":"userName[value eq \"x\"]","value":"y"}`), 400, TypeInvalidPath, "not complex"},
		{"a filter after a sub-attribute", patchOf(`{"op":"replace","path":"name.givenName[value eq \"x\"]","value":"y"}`), 400, TypeInvalidPath, "a value filter applies to an attribute, not to a sub-attribute"},
		{"a sub-attribute of a simple attribute", patchOf(`{"op":"replace","path":"userName.value","value":"y"}`), 400, TypeInvalidPath, "userName has no sub-attributes"},
		{"a filter that does not compile", patchOf(`{"op":"replace","path":"emails[shoe eq \"x\"].value","value":"y"}`), 400, TypeInvalidFilter, `emails has no sub-attribute "shoe"`},
		{"a filter that matches nothing and describes nothing", patchOf(`{"op":"replace","path":"emails[type co \"x\"].value","value":"y"}`), 400, TypeNoTarget, "no value matches the filter"},
		{"a complex filter that matches nothing", patchOf(`{"op":"replace","path":"name[givenName eq \"x\"].familyName","value":"y"}`), 400, TypeNoTarget, "no value matches"},
		{"an error names its operation", patchOf(`{"op":"add","path":"title","value":"x"}`, `{"op":"replace","path":"active","value":1}`), 400, TypeInvalidValue, "Operations[1] (replace active): "},
		{"members are a group's", patchOf(`{"op":"add","path":"members","value":[{"value":"` + memberA + `"}]}`), 400, TypeInvalidPath, `unknown attribute "members"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePatch([]byte(tc.body))
			if err == nil {
				_, err = p.ApplyToUser(babsSCIM(t))
			}
			wantError(t, err, tc.status, tc.scimType, tc.fragment)
		})
	}
}

// TestPatchGroup applies each shape of a group PATCH: fields, and member
// changes returned as ids.
func TestPatchGroup(t *testing.T) {
	for _, tc := range []struct {
		name      string
		body      string
		want      func(g *Group)
		changes   MemberChanges
		paths     []string
		errStatus int
		errType   string
		fragment  string
	}{
		{name: "replace displayName", body: patchOf(`{"op":"replace","path":"displayName","value":"Guides"}`),
			want: func(g *Group) { g.DisplayName = "Guides" }, paths: []string{"display_name"}},
		{name: "no path", body: patchOf(`{"op":"replace","value":{"displayName":"Guides","externalId":"eg-2"}}`),
			want: func(g *Group) { g.DisplayName, g.ExternalID = "Guides", "eg-2" }, paths: []string{"display_name", "external_id"}},
		{name: "remove externalId", body: patchOf(`{"op":"remove","path":"externalId"}`),
			want: func(g *Group) { g.ExternalID = "" }, paths: []string{"external_id"}},
		{name: "add members", body: patchOf(`{"op":"add","path":"members","value":[{"value":"` + memberA + `"},{"value":"` + strings.ToUpper(memberB) + `","type":"User"}]}`),
			changes: MemberChanges{Add: []string{memberA, memberB}}},
		{name: "add one member without an array", body: patchOf(`{"op":"add","path":"members","value":{"value":"` + memberA + `"}}`),
			changes: MemberChanges{Add: []string{memberA}}},
		{name: "add members by bare ids", body: patchOf(`{"op":"add","path":"members","value":["` + memberA + `"]}`),
			changes: MemberChanges{Add: []string{memberA}}},
		{name: "add members without a path", body: patchOf(`{"op":"add","value":{"members":[{"value":"` + memberA + `"}]}}`),
			changes: MemberChanges{Add: []string{memberA}}},
		{name: "remove a member by filter", body: patchOf(`{"op":"remove","path":"members[value eq \"` + memberA + `\"]"}`),
			changes: MemberChanges{Remove: []string{memberA}}},
		{name: "remove members by filter with or", body: patchOf(`{"op":"remove","path":"members[value eq \"` + memberA + `\" or value eq \"` + memberB + `\"]"}`),
			changes: MemberChanges{Remove: []string{memberA, memberB}}},
		{name: "remove a member that cannot be one", body: patchOf(`{"op":"remove","path":"members[value eq \"nobody\"]"}`)},
		{name: "remove members listed in value", body: patchOf(`{"op":"remove","path":"members","value":[{"value":"` + memberA + `"},{"value":"nobody"}]}`),
			changes: MemberChanges{Remove: []string{memberA}}},
		{name: "remove every member", body: patchOf(`{"op":"remove","path":"members"}`),
			changes: MemberChanges{RemoveAll: true}},
		{name: "replace the members", body: patchOf(`{"op":"replace","path":"members","value":[{"value":"` + memberA + `"}]}`),
			changes: MemberChanges{RemoveAll: true, Add: []string{memberA}}},
		{name: "replace the members with none", body: patchOf(`{"op":"replace","path":"members","value":[]}`),
			changes: MemberChanges{RemoveAll: true}},
		{name: "net effect in order", body: patchOf(
			`{"op":"add","path":"members","value":[{"value":"`+memberA+`"},{"value":"`+memberB+`"}]}`,
			`{"op":"remove","path":"members[value eq \"`+memberA+`\"]"}`,
			`{"op":"add","path":"members","value":[{"value":"`+memberB+`"}]}`),
			changes: MemberChanges{Add: []string{memberB}, Remove: []string{memberA}}},
		{name: "remove every member, then add", body: patchOf(
			`{"op":"remove","path":"members","value":[{"value":"`+memberB+`"}]}`,
			`{"op":"remove","path":"members"}`,
			`{"op":"add","path":"members","value":[{"value":"`+memberA+`"}]}`),
			changes: MemberChanges{RemoveAll: true, Add: []string{memberA}}},
		{name: "fields and members together", body: patchOf(
			`{"op":"replace","path":"displayName","value":"Guides"}`,
			`{"op":"add","path":"members","value":[{"value":"`+memberA+`"}]}`),
			want: func(g *Group) { g.DisplayName = "Guides" }, paths: []string{"display_name"}, changes: MemberChanges{Add: []string{memberA}}},
		{name: "add a member that is no user id", body: patchOf(`{"op":"add","path":"members","value":[{"value":"f648f8d5ea4e4cd38e9c"}]}`),
			errStatus: 400, errType: TypeInvalidValue, fragment: `members[0].value: "f648f8d5ea4e4cd38e9c" is not a user id`},
		{name: "add a group as a member", body: patchOf(`{"op":"add","path":"members","value":[{"value":"` + memberA + `","type":"Group"}]}`),
			errStatus: 400, errType: TypeInvalidValue, fragment: "only users can be members"},
		{name: "add through a filter", body: patchOf(`{"op":"add","path":"members[value eq \"` + memberA + `\"]","value":{"value":"` + memberA + `"}}`),
			errStatus: 400, errType: TypeInvalidPath, fragment: "a filter selects members to remove"},
		{name: "change a member's sub-attribute", body: patchOf(`{"op":"replace","path":"members[value eq \"` + memberA + `\"].display","value":"x"}`),
			errStatus: 400, errType: TypeInvalidPath, fragment: "sub-attributes cannot be changed"},
		{name: "remove by another filter", body: patchOf(`{"op":"remove","path":"members[display eq \"Babs\"]"}`),
			errStatus: 400, errType: TypeInvalidFilter, fragment: `by value eq "<id>", joined by or`},
		{name: "remove by a filter with and", body: patchOf(`{"op":"remove","path":"members[value eq \"` + memberA + `\" and type eq \"User\"]"}`),
			errStatus: 400, errType: TypeInvalidFilter, fragment: "joined by or"},
		{name: "remove displayName", body: patchOf(`{"op":"remove","path":"displayName"}`),
			errStatus: 400, errType: TypeInvalidValue, fragment: "displayName is required"},
		{name: "a user's attribute", body: patchOf(`{"op":"replace","path":"userName","value":"x"}`),
			errStatus: 400, errType: TypeInvalidPath, fragment: `unknown attribute "userName"`},
		{name: "another id", body: patchOf(`{"op":"replace","value":{"id":"` + memberA + `","displayName":"x"}}`),
			errStatus: 400, errType: TypeMutability, fragment: "id is read-only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePatch([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			got, mc, err := p.ApplyToGroup(GroupFromDomain(aGroup(), nil, base))
			if tc.errStatus != 0 {
				wantError(t, err, tc.errStatus, tc.errType, tc.fragment)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := GroupFromDomain(aGroup(), nil, base)
			if tc.want != nil {
				tc.want(want)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("group (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.changes, *mc, cmp.AllowUnexported(MemberChanges{}), cmp.FilterPath(func(p cmp.Path) bool {
				s := p.String()
				return s == "state" || s == "order"
			}, cmp.Ignore())); d != "" {
				t.Errorf("member changes (-want +got):\n%s", d)
			}
			up, changed, err := got.UpdateRequest(aGroup())
			if err != nil {
				t.Fatal(err)
			}
			if changed != (tc.paths != nil) || !slices.Equal(up.Paths, tc.paths) {
				t.Errorf("paths = %q (changed %v), want %q", up.Paths, changed, tc.paths)
			}
		})
	}
}

func TestPatchBounds(t *testing.T) {
	// MaxPatchOperations operations, each through a value filter: cheap.
	ops := make([]string, MaxPatchOperations)
	for i := range ops {
		ops[i] = fmt.Sprintf(`{"op":"add","path":"phoneNumbers[type eq \"t%d\"].value","value":"+1415555%04d"}`, i%10, i)
	}
	p, err := ParsePatch([]byte(patchOf(ops...)))
	if err != nil {
		t.Fatal(err)
	}
	u, err := p.ApplyToUser(babsSCIM(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(u.PhoneNumbers) != 11 {
		t.Errorf("%d phone numbers, want 11", len(u.PhoneNumbers))
	}
}
