package scim

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usersd/usersd/internal/users"
)

// TestUserFilterMatch runs every operator, the case and type rules, value
// paths and the logical operators against babs.
func TestUserFilterMatch(t *testing.T) {
	etag := babs().Etag()
	for _, tc := range []struct {
		filter string
		want   bool
	}{
		// eq ne co sw ew gt ge lt le pr on a string that is not caseExact.
		{`userName eq "barbara.jensen@EXAMPLE.com"`, true},
		{`userName eq "barbara.jensen@example.org"`, false},
		{`userName ne "barbara.jensen@example.org"`, true},
		{`userName ne "BARBARA.JENSEN@EXAMPLE.COM"`, false},
		{`userName co "JENSEN@"`, true},
		{`userName co "jensen@example.org"`, false},
		{`userName sw "barbara."`, true},
		{`userName sw "jensen"`, false},
		{`userName ew "EXAMPLE.COM"`, true},
		{`userName ew "example"`, false},
		{`userName gt "barbara"`, true},
		{`userName gt "c"`, false},
		{`userName ge "barbara.jensen@example.com"`, true},
		{`userName lt "BARBARA.JENSEN@EXAMPLE.COM"`, false},
		{`userName le "barbara.jensen@example.com"`, true},
		{`userName lt "c"`, true},
		{`userName pr`, true},
		// Attribute names and operators in any case, with or without URN.
		{`USERNAME EQ "barbara.jensen@example.com"`, true},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "barbara.jensen@example.com"`, true},
		{`URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER:username Eq "barbara.jensen@example.com"`, true},
		// caseExact attributes.
		{`externalId eq "00ujl29u0le5T6Aj10h7"`, true},
		{`externalId eq "00UJL29U0LE5T6AJ10H7"`, false},
		{`id eq "` + babsID + `"`, true},
		{`id eq "` + strings.ToUpper(babsID) + `"`, false},
		{`meta.resourceType eq "User"`, true},
		{`meta.resourceType eq "user"`, false},
		{`meta.version eq "W/\"` + etag + `\""`, true},
		{`meta.location ew "/Users/` + babsID + `"`, true},
		// Other strings.
		{`displayName eq "BABS JENSEN"`, true},
		{`name.givenName eq "barbara"`, true},
		{`name.familyName sw "Jen"`, true},
		{`name.formatted eq "Barbara Jensen"`, true},
		{`name.middleName pr`, false},
		{`name pr`, true},
		{`locale eq "EN-us"`, true},
		{`timezone eq "america/los_angeles"`, true},
		{`displayName eq "Babs \u004aensen"`, true}, // an escape, upper-case hex
		{`displayName eq "Babs \u004aensen"`, true}, // lower-case hex too
		{`displayName eq "Babs \"Jensen\""`, false},
		// Multi-valued attributes: a sub-attribute, or value implied.
		{`emails.value eq "BARBARA.JENSEN@example.com"`, true},
		{`emails eq "barbara.jensen@example.com"`, true},
		{`emails co "@example.com"`, true},
		{`emails.type eq "work"`, true},
		{`emails.primary eq true`, true},
		{`emails.primary eq false`, false},
		{`emails pr`, true},
		{`phoneNumbers.value eq "+14155550100"`, true},
		{`phoneNumbers pr and phoneNumbers.type eq "work"`, true},
		// Value paths.
		{`emails[type eq "work" and value co "@example.com"]`, true},
		{`emails[type eq "work" and value co "@example.org"]`, false},
		{`emails[type eq "home" or primary eq true]`, true},
		{`emails[type eq "home"]`, false},
		{`emails[not (type eq "home")]`, true},
		{`emails[value ew ".COM"]`, true},
		{`name[givenName eq "Barbara"]`, true},
		{`userName eq "x" or emails[type eq "work"]`, true},
		// Booleans.
		{`active eq true`, true},
		{`active eq false`, false},
		{`active ne false`, true},
		{`active pr`, true},
		// dateTimes, compared as instants.
		{`meta.lastModified gt "2026-03-01T00:00:00Z"`, true},
		{`meta.lastModified gt "2026-03-02T10:30:15.123456Z"`, false},
		{`meta.lastModified ge "2026-03-02T10:30:15.123456Z"`, true},
		{`meta.lastModified eq "2026-03-02T11:30:15.123456+01:00"`, true},
		{`meta.lastModified ne "2026-03-02T11:30:15.123456+01:00"`, false},
		{`meta.lastModified lt "2026-03-02T10:30:15.1234561Z"`, true},
		{`meta.lastModified le "2026-03-02T10:30:15Z"`, false},
		{`meta.created lt "2026-03-01T09:00:01Z" and meta.created gt "2026-02-28T23:59:59-08:00"`, true},
		// The enterprise extension, qualified or not.
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "tour operations"`, true},
		{`department eq "Tour Operations"`, true},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "` + managerID + `"`, true},
		{`manager eq "` + managerID + `"`, true},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:costCenter pr`, false},
		// Attributes usersd does not keep are unassigned.
		{`title pr`, false},
		{`title eq "Tour Guide"`, false},
		{`title ne "Tour Guide"`, true},
		{`addresses[type eq "work"]`, false},
		{`addresses.locality eq "Hollywood"`, false},
		{`nickName eq null`, true},
		{`nickName ne null`, false},
		{`x509Certificates.primary eq true`, false},
		{`addresses gt 5`, false},
		{`not (x509Certificates[primary eq true])`, true},
		// null.
		{`userName eq null`, false},
		{`userName ne null`, true},
		{`costCenter eq null`, true},
		// and binds tighter than or; not; parentheses.
		{`userName eq "x" or userName pr and active eq false`, false},
		{`(userName eq "x" or userName pr) and active eq true`, true},
		{`not (active eq false)`, true},
		{`not (userName pr) or not (displayName pr)`, false},
		{`userName pr and displayName pr and active eq true and emails pr`, true},
		{`((((((((userName pr))))))))`, true},
	} {
		f, err := CompileUserFilter(tc.filter)
		if err != nil {
			t.Errorf("%s: %v", tc.filter, err)
			continue
		}
		if got := f.Match(babsSCIM(t)); got != tc.want {
			t.Errorf("%s: Match = %v, want %v", tc.filter, got, tc.want)
		}
	}
}

func TestFilterErrors(t *testing.T) {
	for _, tc := range []struct {
		filter   string
		fragment string
	}{
		{`active gt true`, "boolean: it compares only with eq and ne"},
		{`active co true`, "boolean"},
		{`active eq "true"`, "compare it with true or false, not a string"},
		{`userName eq true`, "compare it with a string, not a boolean"},
		{`userName eq 5`, "not a number"},
		{`userName eq 12345678901234567890123456789`, "not a number"},
		{`userName gt null`, "null compares only with eq and ne"},
		{`meta.lastModified gt "yesterday"`, "not an RFC 3339"},
		{`meta.lastModified gt 2026`, "dateTime"},
		{`meta.created co "2026-03-01T09:00:00Z"`, "dateTime: it compares with eq"},
		{`name eq "Babs"`, "complex: compare one of its sub-attributes"},
		{`shoeSize eq 42`, `unknown attribute "shoeSize"`},
		{`name.nick eq "x"`, `unknown attribute "name.nick"`},
		{`urn:ietf:params:scim:schemas:extension:custom:2.0:User:x eq "y"`, "unknown attribute"},
		{`urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "y"`, "unknown attribute"},
		{`emails[shoe eq "y"]`, `emails has no sub-attribute "shoe"`},
		{`emails[value.x eq "y"]`, "name a sub-attribute of emails alone"},
		{`userName[value eq "y"]`, "not complex"},
		{`emails.value[type eq "y"]`, "not a sub-attribute's"},
		{`userName eq "x" and`, "syntax error at byte"},
		{`userName eq`, "syntax error"},
		{`userName equals "x"`, "syntax error"},
		{`emails[type eq "work"].value eq "x"`, "syntax error"},
		{`emails[type eq "a" and value eq "b" and primary eq true]`, "syntax error"},
		{"userName eq \"x\ty\"", "syntax error"},
		{`userName eq "\uD83D"`, ""}, // a lone surrogate decodes to U+FFFD: no error
		{`groups.value eq "` + groupID + `" or userName pr`, "groups can be filtered only as groups.value eq"},
		{`groups.value ne "` + groupID + `"`, "groups can be filtered only"},
		{`not (groups.value eq "` + groupID + `")`, "groups can be filtered only"},
		{`groups[value eq "` + groupID + `" and display eq "x"]`, "groups can be filtered only"},
		{`groups pr`, "groups can be filtered only"},
		{`groups.value eq 1`, "groups can be filtered only"},
		{`groups.display eq "\n"`, "groups can be filtered only"},
		{strings.Repeat(`groups.value eq "`+groupID+`" and `, 16) + `groups.value eq "` + groupID + `"`, "more than 16 conditions"},
		{"", ""},
		{strings.Repeat(" ", MaxFilterBytes+1), "longer than 1024 bytes"},
		{`userName eq "` + strings.Repeat("x", MaxFilterBytes) + `"`, "longer than 1024 bytes"},
		{strings.Repeat("(", MaxFilterDepth+1) + "userName pr" + strings.Repeat(")", MaxFilterDepth+1), "nested deeper than 8 levels"},
		{strings.Repeat("not (", 9) + "userName pr" + strings.Repeat(")", 9), "nested deeper"},
		{strings.Repeat("(", 600), "nested deeper"},
		{strings.Repeat("userName pr and ", MaxFilterTerms) + "userName pr", "more than 32 comparisons"},
		{`userName eq "(((((((((((("`, ""}, // brackets in strings do not nest
	} {
		f, err := CompileUserFilter(tc.filter)
		if tc.fragment == "" {
			if err != nil || f == nil {
				t.Errorf("%q: %v", tc.filter, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%q: no error", tc.filter)
			continue
		}
		wantError(t, err, http.StatusBadRequest, TypeInvalidFilter, tc.fragment)
	}
}

// TestUserFilterIndex checks the part of each filter the service answers.
func TestUserFilterIndex(t *testing.T) {
	for _, tc := range []struct {
		filter string
		want   UserFilter // pred and Conditions aside
	}{
		{`userName eq "Barbara.Jensen@example.com"`, UserFilter{Filter: `email = "Barbara.Jensen@example.com"`}},
		{`userName eq "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1"`,
			UserFilter{Filter: `attributes.scim.userNameKey = "test_user_ab6490ee-1e48-479e-a20b-2d77186b5dd1"`, Exact: true}},
		{`externalId eq "00ujl29u0le5T6Aj10h7"`, UserFilter{Filter: `external_id = "00ujl29u0le5T6Aj10h7"`, Exact: true}},
		{`emails.value eq "b@example.com"`, UserFilter{Filter: `email = "b@example.com"`, Exact: true}},
		{`emails eq "b@example.com"`, UserFilter{Filter: `email = "b@example.com"`, Exact: true}},
		{`emails[type eq "work" and value eq "b@example.com"]`, UserFilter{Filter: `email = "b@example.com"`}},
		{`emails[value eq "b@example.com"]`, UserFilter{Filter: `email = "b@example.com"`, Exact: true}},
		{`active eq true`, UserFilter{Filter: `state = ACTIVE`, Exact: true}},
		{`active eq false`, UserFilter{Filter: `state = SUSPENDED`, Exact: true}},
		{`meta.lastModified gt "2026-01-01T00:00:00Z"`, UserFilter{Filter: `update_time > "2026-01-01T00:00:00Z"`, Exact: true}},
		{`meta.lastModified ge "2026-01-01T00:00:00.5+01:00"`, UserFilter{Filter: `update_time >= "2026-01-01T00:00:00.5+01:00"`, Exact: true}},
		{`meta.lastModified lt "2026-01-01T00:00:00Z"`, UserFilter{Filter: `update_time < "2026-01-01T00:00:00Z"`, Exact: true}},
		{`meta.lastModified le "2026-01-01T00:00:00Z"`, UserFilter{Filter: `update_time <= "2026-01-01T00:00:00Z"`, Exact: true}},
		{`meta.lastModified eq "2026-01-01T00:00:00Z"`, UserFilter{Filter: `update_time = "2026-01-01T00:00:00Z"`, Exact: true}},
		{`meta.created gt "2026-01-01T00:00:00Z"`, UserFilter{Filter: `create_time > "2026-01-01T00:00:00Z"`, Exact: true}},
		{`meta.lastModified ne "2026-01-01T00:00:00Z"`, UserFilter{}},
		{`groups.value eq "` + groupID + `"`, UserFilter{Filter: `group = "` + groupID + `"`, Exact: true}},
		{`groups[value eq "` + strings.ToUpper(groupID) + `"]`, UserFilter{Filter: `group = "` + groupID + `"`, Exact: true}},
		{`displayName eq "Babs Jensen"`, UserFilter{Query: "Babs Jensen"}},
		{`displayName eq "Al"`, UserFilter{}},
		{`id eq "` + babsID + `"`, UserFilter{ID: babsID}},
		{`userName eq "a\"b\\c@example.com"`, UserFilter{Filter: `email = "a\"b\\c@example.com"`}},
		{`userName eq "a@example.com" and active eq true and meta.lastModified gt "2026-01-01T00:00:00Z" and name.givenName sw "B"`,
			UserFilter{Filter: `email = "a@example.com" AND state = ACTIVE AND update_time > "2026-01-01T00:00:00Z"`}},
		{`externalId eq "a" and externalId eq "b"`, UserFilter{Filter: `external_id = "a" AND external_id = "b"`, Exact: true}},
		{strings.Repeat(`externalId eq "a" and `, 9) + `groups.value eq "` + groupID + `"`,
			UserFilter{Filter: strings.Repeat(`external_id = "a" AND `, 8) + `group = "` + groupID + `"`}},
		{`userName eq "a@example.com" or externalId eq "x"`, UserFilter{}},
		{`not (userName eq "a@example.com")`, UserFilter{}},
		{`userName co "a"`, UserFilter{}},
		{`title eq "Tour Guide"`, UserFilter{}},
		// Values no stored user has.
		{`userName eq ""`, UserFilter{None: true}},
		{`userName eq "a\tb"`, UserFilter{None: true}},
		{`externalId eq "\u0000"`, UserFilter{None: true}},
		{`groups.value eq "not-a-uuid"`, UserFilter{None: true}},
		{`id eq "not-a-uuid"`, UserFilter{ID: "not-a-uuid", None: true}},
		{`id eq "` + babsID + `" and id eq "` + managerID + `"`, UserFilter{ID: managerID, None: true}},
		{`name.givenName eq "\n" and userName pr`, UserFilter{None: true}},
		// No filter.
		{``, UserFilter{Exact: true}},
		{`  `, UserFilter{Exact: true}},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			f, err := CompileUserFilter(tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			got := *f
			got.pred, got.Conditions = nil, nil
			if d := cmp.Diff(tc.want, got, cmp.AllowUnexported(UserFilter{})); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			want, err := users.ParseFilter(f.Filter)
			if err != nil {
				t.Fatalf("users.ParseFilter(%q): %v", f.Filter, err)
			}
			if d := cmp.Diff(want, f.Conditions); d != "" {
				t.Errorf("Conditions (-want +got):\n%s", d)
			}
		})
	}
}

func TestUserFilterConditions(t *testing.T) {
	f, err := CompileUserFilter(`userName eq "Barbara.Jensen@Example.com" and meta.lastModified gt "2026-01-01T00:00:00.0000005Z"`)
	if err != nil {
		t.Fatal(err)
	}
	want := users.Filter{
		{Field: users.FieldEmail, Op: users.OpEq, Value: "barbara.jensen@example.com"},
		{Field: users.FieldUpdateTime, Op: users.OpGt, Value: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	if d := cmp.Diff(want, f.Conditions); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// TestUserFilterExact checks that when Exact is set, Match holds for what
// the index selects: each filter's index part is the whole of it.
func TestUserFilterExact(t *testing.T) {
	u := babsSCIM(t)
	for _, s := range []string{
		`externalId eq "00ujl29u0le5T6Aj10h7"`, `emails.value eq "barbara.jensen@example.com"`, `active eq true`,
		`meta.lastModified gt "2026-03-02T10:30:15Z" and meta.created le "2026-03-01T09:00:00Z"`,
		`groups.value eq "` + groupID + `"`, // Match leaves it to the index
	} {
		f, err := CompileUserFilter(s)
		if err != nil || !f.Exact {
			t.Fatalf("%s: Exact %v, %v", s, f != nil && f.Exact, err)
		}
		if !f.Match(u) {
			t.Errorf("%s: Match is false", s)
		}
	}
	f, _ := CompileUserFilter(`userName eq ""`)
	if f.Match(u) {
		t.Error("a filter that matches nothing matched")
	}
}

func TestGroupFilter(t *testing.T) {
	g := GroupFromDomain(aGroup(), nil, base)
	for _, tc := range []struct {
		filter string
		want   GroupFilter
		match  bool
	}{
		// Microsoft Entra ID's query of a group: GET /Groups?excludedAttributes=members&filter=displayName eq "…".
		{`displayName eq "tour guides"`, GroupFilter{Filter: `display_name = "tour guides"`}, true},
		{`displayName eq "Tour Guidés"`, GroupFilter{Filter: `display_name = "Tour Guidés"`}, false}, // the index folds accents, Match does not
		{`externalId eq "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"`, GroupFilter{Filter: `external_id = "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"`, Exact: true}, true},
		{`externalId eq "8AA1A0C0-C4C3-4BC0-B4A5-2EF676900159"`, GroupFilter{Filter: `external_id = "8AA1A0C0-C4C3-4BC0-B4A5-2EF676900159"`, Exact: true}, false},
		{`displayName eq "Tour Guides" and externalId eq "x"`, GroupFilter{Filter: `display_name = "Tour Guides" AND external_id = "x"`}, false},
		{`displayName eq "a" and displayName eq "Tour Guides"`, GroupFilter{Filter: `display_name = "a"`}, false},
		{`externalId eq "a" and externalId eq "b"`, GroupFilter{Filter: `external_id = "a"`, None: true}, false},
		{`externalId eq "a" and externalId eq "a"`, GroupFilter{Filter: `external_id = "a"`, Exact: true}, false},
		{`members.value eq "` + memberA + `"`, GroupFilter{MemberID: memberA, Exact: true}, true},
		{`members[value eq "` + strings.ToUpper(memberA) + `"] and displayName sw "Tour"`, GroupFilter{MemberID: memberA}, true},
		{`members eq "` + memberA + `" and members.value eq "` + memberA + `"`, GroupFilter{MemberID: memberA, Exact: true}, true},
		{`members.value eq "nope"`, GroupFilter{None: true, Exact: false}, false},
		{`id eq "` + groupID + `"`, GroupFilter{ID: groupID}, true},
		{`displayName co "Guide"`, GroupFilter{}, true},
		{`displayName eq ""`, GroupFilter{None: true}, false},
		{`meta.lastModified gt "2026-03-01T00:00:00Z"`, GroupFilter{}, true},
		{`displayName eq "Tour Guides" or externalId eq "x"`, GroupFilter{}, true},
		{``, GroupFilter{Exact: true}, true},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			f, err := CompileGroupFilter(tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			got := *f
			got.pred = nil
			if d := cmp.Diff(tc.want, got, cmp.AllowUnexported(GroupFilter{})); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			if m := f.Match(g); m != tc.match {
				t.Errorf("Match = %v, want %v", m, tc.match)
			}
			if _, _, err := users.ParseGroupFilter(f.Filter); err != nil {
				t.Errorf("ParseGroupFilter(%q): %v", f.Filter, err)
			}
		})
	}
	for _, s := range []string{
		`members.value eq "` + memberA + `" and members.value eq "` + memberB + `"`,
		`members.value eq "` + memberA + `" or displayName pr`,
		`members.display eq "Babs"`,
		`members pr`,
		`userName eq "x"`,
		`groups.value eq "x"`,
	} {
		_, err := CompileGroupFilter(s)
		wantError(t, err, http.StatusBadRequest, TypeInvalidFilter)
	}
}

// TestFilterWorstCases checks that the most expensive filters the bounds
// let through are cheap to compile and to match.
func TestFilterWorstCases(t *testing.T) {
	u := babsSCIM(t)
	for _, s := range []string{
		strings.Repeat("(", MaxFilterDepth) + "userName pr" + strings.Repeat(")", MaxFilterDepth),
		strings.Repeat(`emails[type eq "work" or value co "x"] and `, 15) + `userName pr`,
		strings.TrimSuffix(strings.Repeat(`not (userName co "a") or `, 31), " or "),
		strings.Repeat("(((((((( userName pr and ", 30),
		strings.Repeat(`userName eq "\u00E9\u00E9\u00E9\u00E9" or `, 25) + "userName pr",
	} {
		start := time.Now()
		f, err := CompileUserFilter(s)
		if err == nil {
			for range 100 {
				f.Match(u)
			}
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%.40q…: %v", s, d)
		}
	}
}
