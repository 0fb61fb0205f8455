package scim

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/usersd/usersd/internal/users"
)

// fuzzDeadline bounds the time of one input: the bounds of filters and
// PATCHes keep each far below it (a millisecond or so), and a fuzzer that
// finds a slow input reports it here rather than as a hang.
const fuzzDeadline = 2 * time.Second

// clientError fails t unless err is a *Error with status 400 (or 413 for
// a body over MaxBodyBytes): whatever a client sends, it is never the
// server's fault.
func clientError(t *testing.T, input string, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%q: err = %v (%T), not a *scim.Error", input, err, err)
	}
	if e.Status != http.StatusBadRequest && !(e.Status == http.StatusRequestEntityTooLarge && len(input) > MaxBodyBytes) {
		t.Fatalf("%q: status %d (%s): a client's input must be a 400", input, e.Status, e.Detail)
	}
	if e.ScimType == "" || e.Detail == "" {
		t.Fatalf("%q: %d with scimType %q and detail %q", input, e.Status, e.ScimType, e.Detail)
	}
}

// FuzzFilter checks that compiling a filter never panics, takes bounded
// time, fails only with a 400 (invalidFilter), and that what compiles
// runs: the indexed part parses as the users API's filter, and Match
// answers without panicking.
func FuzzFilter(f *testing.F) {
	for _, s := range []string{
		`userName eq "bjensen"`,
		`userName Eq "Barbara.Jensen@example.com" and active eq true`,
		`name.familyName co "O'Malley"`,
		`userName sw "J"`,
		`urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J"`,
		`title pr`,
		`meta.lastModified gt "2011-05-13T04:42:34Z"`,
		`meta.lastModified ge "2011-05-13T04:42:34.123456789+02:00"`,
		`meta.created lt "2011-05-13T04:42:34Z" and meta.created le "2011-05-13T04:42:34Z"`,
		`title pr and userType eq "Employee"`,
		`title pr or userType eq "Intern"`,
		`schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"`,
		`userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")`,
		`userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")`,
		`userType eq "Employee" and (emails.type eq "work")`,
		`userType eq "Employee" and emails[type eq "work" and value co "@example.com"]`,
		`emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]`,
		`externalId eq "00ujl29u0le5T6Aj10h7"`,
		`emails[value eq "a@b.c"] and groups.value eq "0190a5b4-1111-7000-8000-000000000001"`,
		`members.value eq "0190a5b4-0000-7000-8000-00000000000a" and displayName eq "Tour Guides"`,
		`displayName eq "a\"b\\c\u00E9\u00e9"`,
		`active gt true`,
		`id eq "0190a5b4-7c3e-7d2a-9f10-5a1b2c3d4e5f" and id eq "x"`,
		`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "x"`,
		`userName eq 12345678901234567890 or userName eq 1.5e999 or userName eq -0`,
		`userName eq null and userName ne null`,
		`((((((((userName pr))))))))`,
		`emails[not (type eq "work")]`,
		`not(not(not(userName pr)))`,
		strings.Repeat("(", 20),
		`userName eq "` + strings.Repeat("\\u0000", 10) + `"`,
		"",
	} {
		f.Add(s)
	}
	u := babsSCIM(f)
	g := GroupFromDomain(aGroup(), nil, base)
	f.Fuzz(func(t *testing.T, s string) {
		start := time.Now()
		uf, err := CompileUserFilter(s)
		if err != nil {
			clientError(t, s, err)
		} else {
			uf.Match(u)
			if uf.Filter != "" {
				if _, err := users.ParseFilter(uf.Filter); err != nil {
					t.Fatalf("%q: the indexed part %q does not parse: %v", s, uf.Filter, err)
				}
			}
			if uf.Exact && (uf.Query != "" || uf.ID != "" || uf.None) {
				t.Fatalf("%q: exact with a query, an id or no match: %+v", s, uf)
			}
		}
		gf, err := CompileGroupFilter(s)
		if err != nil {
			clientError(t, s, err)
		} else {
			gf.Match(g)
			if _, _, err := users.ParseGroupFilter(gf.Filter); err != nil {
				t.Fatalf("%q: the indexed part %q does not parse: %v", s, gf.Filter, err)
			}
		}
		if d := time.Since(start); d > fuzzDeadline {
			t.Fatalf("%q took %v", s, d)
		}
	})
}

// FuzzPatch checks that parsing and applying a PATCH, to a user and to a
// group, and mapping the result back to the domain, never panics, takes
// bounded time, and fails only with a 400.
func FuzzPatch(f *testing.F) {
	for _, body := range []string{
		patchOf(`{"op":"replace","path":"displayName","value":"Babs"}`),
		patchOf(`{"op":"Replace","path":"active","value":"False"}`),
		patchOf(`{"op":"replace","value":{"active":false,"name.givenName":"X","emails[type eq \"work\"].value":"x@y.z"}}`),
		patchOf(`{"op":"add","path":"emails[type eq \"home\"].value","value":"h@example.com"}`),
		patchOf(`{"op":"remove","path":"phoneNumbers[type eq \"work\"]"}`),
		patchOf(`{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"0190a5b4-0000-7000-8000-000000000001"}`),
		patchOf(`{"op":"replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User","value":{"department":"x","manager":{"value":"y"}}}`),
		patchOf(`{"op":"add","path":"members","value":[{"value":"0190a5b4-0000-7000-8000-00000000000a","display":"x"}]}`),
		patchOf(`{"op":"remove","path":"members[value eq \"0190a5b4-0000-7000-8000-00000000000a\" or value eq \"x\"]"}`),
		patchOf(`{"op":"Remove","path":"members","value":[{"$ref":null,"value":"f648f8d5ea4e4cd38e9c"}]}`),
		patchOf(`{"op":"replace","path":"members","value":[]}`),
		patchOf(`{"op":"replace","value":{"id":"0190a5b4-1111-7000-8000-000000000001","displayName":"Test SCIMv2"}}`),
		patchOf(`{"op":"remove","path":"userName"}`),
		patchOf(`{"op":"add","path":"nickName","value":"Babs"}`, `{"op":"remove","path":"name"}`, `{"op":"add","path":"name.givenName","value":"B"}`),
		patchOf(`{"op":"replace","path":"userName","value":"bjensen"}`, `{"op":"remove","path":"emails"}`),
		patchOf(`{"op":"replace","path":"emails","value":[{"value":"a@b.c","primary":true},{"value":"d@e.f","primary":"True"}]}`),
		patchOf(`{"op":"replace","path":"phoneNumbers.primary","value":true}`),
		patchOf(`{"op":"add","path":"emails[type eq \"work\" and primary eq true]","value":{"value":"w@x.y"}}`),
		`{"Operations":[{"op":"add","value":{"urn:ietf:params:scim:schemas:core:2.0:User:name.familyName":"x"}}]}`,
		`{"Operations":[{"op":"add","path":"emails[` + strings.Repeat("(", 9) + `","value":1}]}`,
		`{"Operations":[]}`,
		`{}`,
		`[`,
	} {
		f.Add([]byte(body))
	}
	u := babsSCIM(f)
	prev := babs()
	g := GroupFromDomain(aGroup(), nil, base)
	f.Fuzz(func(t *testing.T, body []byte) {
		start := time.Now()
		p, err := ParsePatch(body)
		if err != nil {
			clientError(t, string(body), err)
			return
		}
		if next, err := p.ApplyToUser(u); err != nil {
			clientError(t, string(body), err)
		} else if _, _, err := next.UpdateRequest(prev); err != nil {
			clientError(t, string(body), err)
		}
		if next, mc, err := p.ApplyToGroup(g); err != nil {
			clientError(t, string(body), err)
		} else {
			if _, _, err := next.UpdateRequest(aGroup()); err != nil {
				clientError(t, string(body), err)
			}
			seen := map[string]bool{}
			for _, id := range append(append([]string(nil), mc.Add...), mc.Remove...) {
				if seen[id] {
					t.Fatalf("%q: %s both added and removed, or twice", body, id)
				}
				seen[id] = true
			}
			if mc.RemoveAll && mc.Remove != nil {
				t.Fatalf("%q: RemoveAll with Remove %q", body, mc.Remove)
			}
		}
		if d := time.Since(start); d > fuzzDeadline {
			t.Fatalf("%q took %v", body, d)
		}
	})
}

// FuzzPatchOperation is FuzzPatch with the fuzzer's input placed in one
// operation's op, path and value, so that it explores paths, filters and
// values rather than JSON syntax.
func FuzzPatchOperation(f *testing.F) {
	for _, c := range []struct{ op, path, value string }{
		{"replace", "displayName", `"Babs"`},
		{"Add", `emails[type eq "work"].value`, `"w@example.com"`},
		{"add", `phoneNumbers[type eq "mobile" and primary eq true]`, `{"value":"+14155550199"}`},
		{"remove", `emails[not (type eq "work")]`, ``},
		{"replace", ``, `{"name.givenName":"B","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":"m"}}`},
		{"replace", `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`, `"x"`},
		{"remove", `members[value eq "0190a5b4-0000-7000-8000-00000000000a" or value eq "b"]`, ``},
		{"add", `members`, `[{"value":"0190a5b4-0000-7000-8000-00000000000A","type":"User"}]`},
		{"replace", `active`, `"True"`},
		{"remove", `name[givenName sw "B"].familyName`, ``},
		{"add", `addresses[type eq "work"].locality`, `"Hollywood"`},
		{"replace", `meta.lastModified`, `"2026-01-01T00:00:00Z"`},
	} {
		f.Add(c.op, c.path, []byte(c.value))
	}
	u := babsSCIM(f)
	prev := babs()
	g := GroupFromDomain(aGroup(), nil, base)
	f.Fuzz(func(t *testing.T, op, path string, value []byte) {
		o := map[string]any{"op": op}
		if path != "" {
			o["path"] = path
		}
		if len(value) > 0 {
			var v any
			if json.Valid(value) {
				o["value"] = json.RawMessage(value)
			} else {
				v = string(value)
				o["value"] = v
			}
		}
		body, err := json.Marshal(map[string]any{"schemas": []string{PatchOpSchema}, "Operations": []any{o}})
		if err != nil {
			return // op or path not valid UTF-8 JSON can carry: FuzzPatch covers such bodies
		}
		start := time.Now()
		p, err := ParsePatch(body)
		if err != nil {
			clientError(t, string(body), err)
			return
		}
		if next, err := p.ApplyToUser(u); err != nil {
			clientError(t, string(body), err)
		} else if _, _, err := next.UpdateRequest(prev); err != nil {
			clientError(t, string(body), err)
		}
		if next, _, err := p.ApplyToGroup(g); err != nil {
			clientError(t, string(body), err)
		} else if _, _, err := next.UpdateRequest(aGroup()); err != nil {
			clientError(t, string(body), err)
		}
		if d := time.Since(start); d > fuzzDeadline {
			t.Fatalf("%s took %v", body, d)
		}
	})
}
