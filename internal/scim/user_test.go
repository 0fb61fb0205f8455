package scim

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usersd/usersd/internal/users"
)

func TestUserFromDomain(t *testing.T) {
	u, err := UserFromDomain(babs(), base)
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, u, `{
		"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
		"id": "`+babsID+`",
		"externalId": "00ujl29u0le5T6Aj10h7",
		"userName": "Barbara.Jensen@example.com",
		"name": {"formatted": "Barbara Jensen", "familyName": "Jensen", "givenName": "Barbara"},
		"displayName": "Babs Jensen",
		"emails": [{"value": "Barbara.Jensen@example.com", "type": "work", "primary": true}],
		"phoneNumbers": [{"value": "+14155550100", "type": "work", "primary": true}],
		"locale": "en-US",
		"timezone": "America/Los_Angeles",
		"active": true,
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
			"employeeNumber": "701984", "department": "Tour Operations",
			"manager": {"value": "`+managerID+`", "$ref": "`+base+`/Users/`+managerID+`"}
		},
		"meta": {
			"resourceType": "User", "created": "2026-03-01T09:00:00Z", "lastModified": "2026-03-02T10:30:15.123456Z",
			"location": "`+base+`/Users/`+babsID+`", "version": "W/\"`+babs().Etag()+`\""
		}
	}`)
}

func TestUserFromDomainRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*users.User)
		want func(*User)
	}{
		{"suspended is inactive", func(u *users.User) { u.State = users.StateSuspended },
			func(u *User) { u.Active = ptr(false) }},
		{"a userName that is not an address is the one kept", func(u *users.User) {
			u.Attributes = []byte(`{"scim":{"userName":"Test_User_ab6490ee","userNameKey":"test_user_ab6490ee"}}`)
		}, func(u *User) {
			u.UserName = "Test_User_ab6490ee"
			u.Enterprise, u.Schemas = nil, u.Schemas[:1]
			u.PhoneNumbers[0].Type = ""
		}},
		{"no names, no name", func(u *users.User) { u.GivenName, u.FamilyName = "", "" }, func(u *User) { u.Name = nil }},
		{"one name is the formatted name", func(u *users.User) { u.GivenName = "" },
			func(u *User) { u.Name = &Name{Formatted: "Jensen", FamilyName: "Jensen"} }},
		{"no phone, no phoneNumbers", func(u *users.User) { u.PhoneNumber = "" }, func(u *User) { u.PhoneNumbers = nil }},
		{"attributes of the tenant's own are not SCIM's", func(u *users.User) { u.Attributes = []byte(`{"scim":"theirs","level":1}`) },
			func(u *User) { u.Enterprise, u.Schemas = nil, u.Schemas[:1]; u.PhoneNumbers[0].Type = "" }},
		{"no base, no locations", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := babs()
			if tc.edit != nil {
				tc.edit(d)
			}
			b := base
			if tc.name == "no base, no locations" {
				b = ""
			}
			got, err := UserFromDomain(d, b)
			if err != nil {
				t.Fatal(err)
			}
			want, err := UserFromDomain(babs(), b)
			if err != nil {
				t.Fatal(err)
			}
			want.Meta.Version = version(d.Etag())
			if tc.want != nil {
				tc.want(want)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if b == "" && (got.Meta.Location != "" || got.Enterprise.Manager.Ref != "") {
				t.Errorf("locations without a base: %q, %q", got.Meta.Location, got.Enterprise.Manager.Ref)
			}
		})
	}
}

func TestUserFromDomainDeleted(t *testing.T) {
	d := babs()
	d.State = users.StateDeleted
	_, err := UserFromDomain(d, base)
	wantError(t, err, http.StatusNotFound, "")
}

// TestUserToDomain has a case per rule of the mapping table in
// docs/scim.md.
func TestUserToDomain(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *User
		want *users.User
	}{
		{"userName that is an address is the email",
			&User{UserName: "bjensen@example.com", DisplayName: "Babs"},
			&users.User{Email: "bjensen@example.com", DisplayName: "Babs", State: users.StateActive}},
		{"other emails are not kept when userName is an address",
			&User{UserName: "bjensen@example.com", DisplayName: "Babs", Emails: []TypedValue{{Value: "babs@home.example", Primary: true}}},
			&users.User{Email: "bjensen@example.com", DisplayName: "Babs", State: users.StateActive}},
		{"userName not an address: the primary email, and userName kept",
			&User{UserName: "bjensen", DisplayName: "Babs", Emails: []TypedValue{
				{Value: "w@example.com", Type: "work"}, {Value: "p@example.com", Type: "home", Primary: true}}},
			&users.User{Email: "p@example.com", DisplayName: "Babs", State: users.StateActive,
				Profile: users.Profile{Attributes: []byte(`{"scim":{"userName":"bjensen","userNameKey":"bjensen"}}`)}}},
		{"no primary: the work email",
			&User{UserName: "BJensen", DisplayName: "Babs", Emails: []TypedValue{{Value: "h@example.com", Type: "home"}, {Value: "w@example.com", Type: "Work"}}},
			&users.User{Email: "w@example.com", DisplayName: "Babs", State: users.StateActive,
				Profile: users.Profile{Attributes: []byte(`{"scim":{"userName":"BJensen","userNameKey":"bjensen"}}`)}}},
		{"no primary, no work: the first email",
			&User{DisplayName: "Babs", Emails: []TypedValue{{Value: ""}, {Value: "h@example.com", Type: "home"}, {Value: "o@example.com"}}},
			&users.User{Email: "h@example.com", DisplayName: "Babs", State: users.StateActive}},
		{"displayName from name.formatted",
			&User{UserName: "b@example.com", Name: &Name{Formatted: " Ms. Barbara J Jensen III ", GivenName: "Barbara", FamilyName: "Jensen"}},
			&users.User{Email: "b@example.com", DisplayName: "Ms. Barbara J Jensen III", State: users.StateActive,
				Profile: users.Profile{GivenName: "Barbara", FamilyName: "Jensen"}}},
		{"displayName from given and family names",
			&User{UserName: "b@example.com", Name: &Name{GivenName: "Barbara", FamilyName: "Jensen"}},
			&users.User{Email: "b@example.com", DisplayName: "Barbara Jensen", State: users.StateActive,
				Profile: users.Profile{GivenName: "Barbara", FamilyName: "Jensen"}}},
		{"displayName from a given name alone",
			&User{UserName: "b@example.com", Name: &Name{GivenName: "Barbara"}},
			&users.User{Email: "b@example.com", DisplayName: "Barbara", State: users.StateActive,
				Profile: users.Profile{GivenName: "Barbara"}}},
		{"displayName from userName",
			&User{UserName: "b@example.com", DisplayName: "  "},
			&users.User{Email: "b@example.com", DisplayName: "b@example.com", State: users.StateActive}},
		{"displayName from the email when there is no userName",
			&User{Emails: []TypedValue{{Value: "b@example.com"}}},
			&users.User{Email: "b@example.com", DisplayName: "b@example.com", State: users.StateActive}},
		{"active true", &User{UserName: "b@example.com", Active: ptr(true)},
			&users.User{Email: "b@example.com", DisplayName: "b@example.com", State: users.StateActive}},
		{"active false is suspended", &User{UserName: "b@example.com", Active: ptr(false)},
			&users.User{Email: "b@example.com", DisplayName: "b@example.com", State: users.StateSuspended}},
		{"externalId, locale, timezone",
			&User{UserName: "b@example.com", ExternalID: "00u1", Locale: "en-GB", Timezone: "Europe/London"},
			&users.User{Email: "b@example.com", DisplayName: "b@example.com", State: users.StateActive,
				Profile: users.Profile{ExternalID: "00u1", Locale: "en-GB", TimeZone: "Europe/London"}}},
		{"the primary phone number, and its type",
			&User{UserName: "b@example.com", PhoneNumbers: []TypedValue{{Value: "+1 415 555 0100", Type: "work"}, {Value: "+14155550199", Type: "mobile", Primary: true}}},
			&users.User{Email: "b@example.com", DisplayName: "b@example.com", State: users.StateActive,
				Profile: users.Profile{PhoneNumber: "+14155550199", Attributes: []byte(`{"scim":{"phoneNumberType":"mobile"}}`)}}},
		{"no primary phone: the work one",
			&User{UserName: "b@example.com", PhoneNumbers: []TypedValue{{Value: "+14155550199", Type: "mobile"}, {Value: "+14155550100", Type: "work"}}},
			&users.User{Email: "b@example.com", DisplayName: "b@example.com", State: users.StateActive,
				Profile: users.Profile{PhoneNumber: "+14155550100", Attributes: []byte(`{"scim":{"phoneNumberType":"work"}}`)}}},
		{"enterprise attributes in the attributes",
			&User{UserName: "b@example.com", Enterprise: &EnterpriseUser{
				EmployeeNumber: "701984", CostCenter: "4130", Organization: "Universal Studios", Division: "Theme Park",
				Department: "Tour Operations", Manager: &Manager{Value: managerID, Ref: "ignored", DisplayName: "ignored"}}},
			&users.User{Email: "b@example.com", DisplayName: "b@example.com", State: users.StateActive,
				Profile: users.Profile{Attributes: []byte(`{"scim":{"enterprise":{"costCenter":"4130","department":"Tour Operations",` +
					`"division":"Theme Park","employeeNumber":"701984","manager":"` + managerID + `","organization":"Universal Studios"}}}`)}}},
		{"an empty enterprise extension is none",
			&User{UserName: "b@example.com", Enterprise: &EnterpriseUser{Manager: &Manager{}}},
			&users.User{Email: "b@example.com", DisplayName: "b@example.com", State: users.StateActive}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.ToDomain()
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestUserToDomainErrors(t *testing.T) {
	long := strings.Repeat("x", 256)
	for _, tc := range []struct {
		name     string
		in       *User
		fragment string
	}{
		{"nothing", &User{}, "userName: required"},
		{"no address anywhere", &User{UserName: "bjensen"}, `"bjensen" is not an email address, and emails holds none`},
		{"email not an address", &User{UserName: "bjensen", Emails: []TypedValue{{Value: "bjensen"}}}, `emails: "bjensen" is not an email address`},
		{"two @", &User{Emails: []TypedValue{{Value: "a@b@c"}}}, "not an email address"},
		{"userName too long", &User{UserName: long, Emails: []TypedValue{{Value: "a@b.c"}}}, "userName: longer than 255 bytes"},
		{"userName with a tab", &User{UserName: "a\tb", Emails: []TypedValue{{Value: "a@b.c"}}}, "userName: control characters"},
		{"userName not UTF-8", &User{UserName: "a\xffb", Emails: []TypedValue{{Value: "a@b.c"}}}, "userName: not valid UTF-8"},
		{"phone type with a line break", &User{UserName: "a@b.c", PhoneNumbers: []TypedValue{{Value: "+14155550100", Type: "wo\nrk"}}}, "phoneNumbers.type"},
		{"enterprise attribute too long", &User{UserName: "a@b.c", Enterprise: &EnterpriseUser{Department: long}}, EnterpriseSchema + ":department"},
		{"manager with a NUL", &User{UserName: "a@b.c", Enterprise: &EnterpriseUser{Manager: &Manager{Value: "a\x00"}}}, "manager.value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.in.ToDomain()
			wantError(t, err, http.StatusBadRequest, TypeInvalidValue, tc.fragment)
		})
	}
}

func TestUserUpdateRequest(t *testing.T) {
	t.Run("the resource unchanged changes nothing", func(t *testing.T) {
		_, changed, err := babsSCIM(t).UpdateRequest(babs())
		if err != nil || changed {
			t.Fatalf("changed = %v, %v; want false", changed, err)
		}
	})
	t.Run("changes name their fields and keep the rest", func(t *testing.T) {
		u := babsSCIM(t)
		u.UserName = "babs@example.com"
		u.Active = ptr(false)
		u.Name.GivenName = "Babs"
		u.Enterprise.Department = "Sales"
		u.Timezone = ""
		req, changed, err := u.UpdateRequest(babs())
		if err != nil || !changed {
			t.Fatalf("changed = %v, %v", changed, err)
		}
		if want := []string{"email", "state", "given_name", "time_zone", "attributes"}; !slices.Equal(req.Paths, want) {
			t.Errorf("paths = %q, want %q", req.Paths, want)
		}
		if req.Tenant != "acme" || req.User.ID != babsID || req.Etag != babs().Etag() {
			t.Errorf("tenant %q, id %q, etag %q", req.Tenant, req.User.ID, req.Etag)
		}
		if got, want := string(req.User.Attributes), `{"level":5,"scim":{"enterprise":{"department":"Sales","employeeNumber":"701984","manager":"`+managerID+`"},"phoneNumberType":"work"}}`; got != want {
			t.Errorf("attributes = %s\nwant %s", got, want)
		}
		if req.User.Email != "babs@example.com" || req.User.State != users.StateSuspended || req.User.GivenName != "Babs" || req.User.TimeZone != "" {
			t.Errorf("user = %+v", req.User)
		}
	})
	t.Run("active left out keeps the state", func(t *testing.T) {
		prev := babs()
		prev.State = users.StateSuspended
		u := babsSCIM(t)
		u.Active = nil
		if _, changed, err := u.UpdateRequest(prev); err != nil || changed {
			t.Fatalf("changed = %v, %v; want false", changed, err)
		}
	})
	t.Run("removing the last SCIM attribute keeps the tenant's", func(t *testing.T) {
		u := babsSCIM(t)
		u.Enterprise, u.PhoneNumbers = nil, nil
		req, _, err := u.UpdateRequest(babs())
		if err != nil {
			t.Fatal(err)
		}
		if got := string(req.User.Attributes); got != `{"level":5}` {
			t.Errorf("attributes = %s", got)
		}
	})
	t.Run("a number or a locale written otherwise is no change", func(t *testing.T) {
		u := babsSCIM(t)
		u.PhoneNumbers[0].Value, u.Locale = "+1 (415) 555-0100", "EN-us"
		if _, changed, err := u.UpdateRequest(babs()); err != nil || changed {
			t.Fatalf("changed = %v, %v; want false", changed, err)
		}
	})
	t.Run("a tenant's own scim member stays while SCIM keeps nothing", func(t *testing.T) {
		prev := babs()
		prev.Attributes = []byte(`{"level":5,"scim":"theirs"}`)
		u, err := UserFromDomain(prev, base)
		if err != nil {
			t.Fatal(err)
		}
		if _, changed, err := u.UpdateRequest(prev); err != nil || changed {
			t.Fatalf("changed = %v, %v; want false", changed, err)
		}
		u.Enterprise = &EnterpriseUser{Department: "Sales"}
		req, _, err := u.UpdateRequest(prev)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(req.User.Attributes); got != `{"level":5,"scim":{"enterprise":{"department":"Sales"}}}` {
			t.Errorf("attributes = %s", got)
		}
	})
	t.Run("a deleted user is not found", func(t *testing.T) {
		prev := babs()
		prev.State = users.StateDeleted
		_, _, err := babsSCIM(t).UpdateRequest(prev)
		wantError(t, err, http.StatusNotFound, "")
	})
	t.Run("a mapping error", func(t *testing.T) {
		u := babsSCIM(t)
		u.UserName, u.Emails = "", nil
		_, _, err := u.UpdateRequest(babs())
		wantError(t, err, http.StatusBadRequest, TypeInvalidValue, "userName: required")
	})
}

func TestDecodeUser(t *testing.T) {
	t.Run("names in any case, URNs, ignored and read-only attributes", func(t *testing.T) {
		u, err := DecodeUser([]byte(`{
			"SCHEMAS": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:example:unknown"],
			"id": "client-sent", "meta": {"resourceType": "User"}, "groups": [{"value": "g"}],
			"USERNAME": "bjensen@example.com",
			"Name": {"GivenName": "Barbara", "familyName": "Jensen", "middleName": "Jane", "honorificPrefix": "Ms."},
			"urn:ietf:params:scim:schemas:core:2.0:User:displayName": "Babs",
			"emails": [{"value": "bjensen@example.com", "type": "work", "primary": "True", "display": "b"}, {"value": "", "primary": false}],
			"phoneNumbers": {"value": "+14155550100", "type": "work"},
			"active": "False",
			"nickName": "Babs", "title": "Tour Guide", "userType": "Employee", "preferredLanguage": "en-US", "profileUrl": "https://x",
			"password": "t1meMa$heen", "addresses": [{"streetAddress": "100 Universal City Plaza"}], "ims": [{"value": "x"}],
			"photos": [], "entitlements": null, "roles": [], "x509Certificates": [{"value": "MIIC"}],
			"externalId": "",
			"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"EmployeeNumber": "701984", "manager": {"value": "` + managerID + `", "displayName": "John Smith"}},
			"costCenter": "4130"
		}`))
		if err != nil {
			t.Fatal(err)
		}
		want := &User{
			Schemas:      []string{UserSchema, EnterpriseSchema},
			UserName:     "bjensen@example.com",
			Name:         &Name{GivenName: "Barbara", FamilyName: "Jensen"},
			DisplayName:  "Babs",
			Emails:       []TypedValue{{Value: "bjensen@example.com", Type: "work", Primary: true}},
			PhoneNumbers: []TypedValue{{Value: "+14155550100", Type: "work"}},
			Active:       ptr(false),
			Enterprise:   &EnterpriseUser{EmployeeNumber: "701984", CostCenter: "4130", Manager: &Manager{Value: managerID}},
		}
		if d := cmp.Diff(want, u); d != "" {
			t.Errorf("(-want +got):\n%s", d)
		}
	})
	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			body     string
			status   int
			scimType string
			fragment string
		}{
			{`[]`, 400, TypeInvalidSyntax, "not a JSON object"},
			{`{"userName":`, 400, TypeInvalidSyntax, "not JSON"},
			{`{} {}`, 400, TypeInvalidSyntax, "more than one JSON value"},
			{`{"userName": "a@b.c", "shoeSize": 42}`, 400, TypeInvalidSyntax, `unknown attribute "shoeSize"`},
			{`{"userName": "a@b.c", "userNAME": "b@b.c"}`, 400, TypeInvalidSyntax, "userName given twice"},
			{`{"userName": "a@b.c", "urn:ietf:params:scim:schemas:extension:custom:2.0:User": {"x": 1}}`, 400, TypeInvalidSyntax, "not supported"},
			{`{"userName": "a@b.c", "urn:ietf:params:scim:schemas:extension:custom:2.0:User:x": 1}`, 400, TypeInvalidSyntax, "not supported"},
			{`{"userName": "a@b.c", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": "x"}`, 400, TypeInvalidSyntax, "want an object"},
			{`{"userName": "a@b.c", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"shoeSize": 1}}`, 400, TypeInvalidSyntax, `unknown attribute "shoeSize"`},
			{`{"userName": 42}`, 400, TypeInvalidValue, "userName: want a string, got a number"},
			{`{"userName": "a@b.c", "active": "yes"}`, 400, TypeInvalidValue, "active: want a boolean"},
			{`{"userName": "a@b.c", "name": "Babs"}`, 400, TypeInvalidValue, "name: want an object"},
			{`{"userName": "a@b.c", "name": {"givenName": ["a"]}}`, 400, TypeInvalidValue, "name.givenName: want a string"},
			{`{"userName": "a@b.c", "name": {"nick": "a"}}`, 400, TypeInvalidSyntax, `unknown sub-attribute "nick"`},
			{`{"userName": "a@b.c", "emails": [{"value": "a@b.c", "Value": "b@b.c"}]}`, 400, TypeInvalidSyntax, "value given twice"},
			{`{"userName": "a@b.c", "emails": [{"value": "a@b.c", "primary": 1}]}`, 400, TypeInvalidValue, "emails[0].primary: want a boolean"},
			{`{"userName": "a@b.c", "emails": [true]}`, 400, TypeInvalidValue, "emails[0]: want an object"},
			{`{"userName": "` + strings.Repeat("x", MaxBodyBytes) + `"}`, 413, "", "longer than"},
		} {
			_, err := DecodeUser([]byte(tc.body))
			if t.Failed() {
				return
			}
			wantError(t, err, tc.status, tc.scimType, tc.fragment)
		}
	})
}
