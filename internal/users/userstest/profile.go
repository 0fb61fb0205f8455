package userstest

// The tests of the profile fields (users.Profile): their round trip through
// every read and write of a store (CreateUser, GetUser, ListUsers,
// BatchGetUsers, UpdateUser, ImportChunk, the events' snapshots), the
// uniqueness of the external id, and LookupUser. testProfile runs them on
// one store, each in a tenant of its own.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/usersd/usersd/internal/users"
)

// fullStore is a UserStore that also keeps imports and the event feed, as
// every store that Run tests does. The profile tests of imports and events
// need one; on a store that is not, they are skipped.
type fullStore interface {
	UserStore
	users.ImportStore
	users.EventStore
}

// asFullStore returns s as a fullStore, or skips the test.
func asFullStore(t *testing.T, s UserStore) fullStore {
	t.Helper()
	fs, ok := s.(fullStore)
	if !ok {
		t.Skipf("the store (%T) keeps no imports or events", s)
	}
	return fs
}

// tenantTest is a test that runs in a tenant of its own, which it is given
// created and empty.
type tenantTest struct {
	name   string
	tenant string
	fn     func(t *testing.T, s UserStore, tenant string)
}

// runInTenants runs tests in parallel on the one store s, each in its
// tenant.
func runInTenants(t *testing.T, s UserStore, tests []tenantTest) {
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			createTenant(t, s, tt.tenant, 0)
			tt.fn(t, s, tt.tenant)
		})
	}
}

// testProfile runs the profile tests.
func testProfile(t *testing.T, s UserStore) {
	runInTenants(t, s, []tenantTest{
		{"RoundTrip", "profile-round-trip", testProfileRoundTrip},
		{"AttributeNumbers", "profile-numbers", testProfileAttributeNumbers},
		{"EmptyAttributes", "profile-empty-attrs", testProfileEmptyAttributes},
		{"UpdateSetClear", "profile-update", testProfileUpdateSetClear},
		{"Import", "profile-import", testProfileImport},
		{"Events", "profile-events", testProfileEvents},
		{"ExternalIDUnique", "profile-ext-unique", testExternalIDUnique},
		{"ExternalIDConcurrent", "profile-ext-race", testExternalIDConcurrent},
		{"Lookup", "profile-lookup", testLookupUser},
	})
}

// attributeDocs are attributes as a client may send them: spaced, keys
// out of order (and of different lengths: Postgres's jsonb orders keys by
// length first), every JSON type, nesting, and text that JSON escapes or
// that is not ASCII. The stores must return each in the canonical form of
// users.NormalizeAttributes, byte for byte.
var attributeDocs = []struct{ name, raw string }{
	{"nested", `{ "team": {"name": "core", "lead": {"id": 7, "since": "2020-01-01"}}, "b": 1, "aa": 2, "ccc": {"z": {}, "y": []} }`},
	{"arrays", `{"tags": ["x", "y", "x"], "matrix": [[1, 2], [3, [4, {"k": "v", "a": [true]}]]], "empty": [], "none": {}}`},
	{"numbers", `{"int": 42, "neg": -17, "float": 3.25, "small": 0.1, "one": 1.0, "trailing": 2.50, ` +
		`"big": 12345678901234567890, "precise": 3.141592653589793238462643383279, "zero": 0, "neg_float": -0.5}`},
	{"booleans and null", `{"t": true, "f": false, "n": null, "list": [true, false, null, 0, ""]}`},
	{"unicode", `{"name": "Zoë Ångström", "jp": "日本語", "emoji": "🎉", "é-key": "ü", ` +
		`"escaped": "\u00e9\u4e2d\ud83c\udf89", "html": "<b>&amp;</b>", "quote": "say \"hi\" \\ back /", ` +
		`"separators": "\u2028\u2029", "combining": "Zoe\u0308", "ключ": "значение"}`},
	{"deep", deepAttributes(users.MaxAttributesDepth)},
	{"large", `{"blob": "` + strings.Repeat("abcdefghij", 1500) + `", "n": 1}`},
}

// deepAttributes returns an object nested depth levels deep (the object
// itself is level 1), with a value at the bottom.
func deepAttributes(depth int) string {
	return strings.Repeat(`{"d":`, depth-1) + `{"leaf":true}` + strings.Repeat("}", depth-1)
}

// attrs returns the canonical form of raw, which must be valid attributes.
func attrs(t *testing.T, raw string) []byte {
	t.Helper()
	a, err := users.NormalizeAttributes("attributes", []byte(raw))
	if err != nil {
		t.Fatalf("NormalizeAttributes(%s) err = %v", raw, err)
	}
	return a
}

// fullProfile returns a profile with every field set, in the stored forms
// that users.Service makes (E.164, canonical language tag), with the
// external id ext and the attributes a.
func fullProfile(ext string, a []byte) users.Profile {
	return users.Profile{
		ExternalID:    ext,
		GivenName:     "Zoë",
		FamilyName:    "Ångström-Nuñez",
		PhoneNumber:   "+14155550100",
		EmailVerified: true,
		PhoneVerified: true,
		Locale:        "en-US",
		TimeZone:      "Europe/Paris",
		Attributes:    a,
	}
}

// userDiff compares users, and names the attributes of each as text when
// they differ, so that a failure shows the two spellings.
func userDiff(want, got *users.User) string {
	if want == nil || got == nil {
		return cmp.Diff(want, got)
	}
	diff := ""
	if !bytes.Equal(want.Attributes, got.Attributes) {
		diff = fmt.Sprintf("Attributes:\n-\t%q\n+\t%q\n", want.Attributes, got.Attributes)
	}
	w, g := *want, *got
	w.Attributes, g.Attributes = nil, nil
	return diff + cmp.Diff(&w, &g)
}

// checkReads checks that every read of the store returns each user of
// want as it is: GetUser, BatchGetUsers, ListUsers and, for a user that is
// not deleted and has an external id, LookupUser.
func checkReads(t *testing.T, s UserStore, what string, want ...*users.User) {
	t.Helper()
	ctx := context.Background()
	if len(want) == 0 {
		return
	}
	tenant := want[0].Tenant
	batch, err := s.BatchGetUsers(ctx, tenant, ids(want))
	if err != nil {
		t.Fatalf("%s: BatchGetUsers err = %v", what, err)
	}
	listed, err := s.ListUsers(ctx, users.ListQuery{Tenant: tenant, ShowDeleted: true, Limit: 10000})
	if err != nil {
		t.Fatalf("%s: ListUsers err = %v", what, err)
	}
	find := func(us []*users.User, id string) *users.User {
		for _, u := range us {
			if u.ID == id {
				return u
			}
		}
		return nil
	}
	for _, w := range want {
		got, err := s.GetUser(ctx, tenant, w.ID)
		if err != nil {
			t.Errorf("%s: GetUser(%s) err = %v", what, w.Email, err)
		} else if diff := userDiff(w, got); diff != "" {
			t.Errorf("%s: GetUser(%s) (-want +got):\n%s", what, w.Email, diff)
		}
		if diff := userDiff(w, find(batch, w.ID)); diff != "" {
			t.Errorf("%s: BatchGetUsers, user %s (-want +got):\n%s", what, w.Email, diff)
		}
		if diff := userDiff(w, find(listed, w.ID)); diff != "" {
			t.Errorf("%s: ListUsers, user %s (-want +got):\n%s", what, w.Email, diff)
		}
		if w.ExternalID == "" || w.State == users.StateDeleted {
			continue
		}
		got, err = s.LookupUser(ctx, tenant, w.ExternalID)
		if err != nil {
			t.Errorf("%s: LookupUser(%q) err = %v", what, w.ExternalID, err)
		} else if diff := userDiff(w, got); diff != "" {
			t.Errorf("%s: LookupUser(%q) (-want +got):\n%s", what, w.ExternalID, diff)
		}
	}
}

// createChecked creates u and checks that CreateUser returned it as it was
// given.
func createChecked(t *testing.T, s users.UserStore, u *users.User) *users.User {
	t.Helper()
	got := create(t, s, u)
	if diff := userDiff(u, got); diff != "" {
		t.Errorf("CreateUser(%s) returned (-want +got):\n%s", u.Email, diff)
	}
	return got
}

// testProfileRoundTrip stores users with every kind of attributes and
// partial profiles, and reads them back through every read.
func testProfileRoundTrip(t *testing.T, s UserStore, tenant string) {
	var want []*users.User
	for i, d := range attributeDocs {
		u := userIn(tenant, i)
		u.Labels = map[string]string{"doc": strings.ReplaceAll(d.name, " ", "-")}
		u.Profile = fullProfile(fmt.Sprintf("ext-%d", i), attrs(t, d.raw))
		want = append(want, createChecked(t, s, u))
	}
	partial := userIn(tenant, 100)
	partial.Profile = users.Profile{GivenName: "Ada", EmailVerified: true}
	phone := userIn(tenant, 101)
	phone.State = users.StateSuspended
	phone.Profile = users.Profile{PhoneNumber: "+442079460958", PhoneVerified: true, TimeZone: "America/New_York", Locale: "fr"}
	onlyAttrs := userIn(tenant, 102)
	onlyAttrs.Profile = users.Profile{Attributes: attrs(t, `{"k":"v"}`)}
	onlyExt := userIn(tenant, 103)
	onlyExt.Profile = users.Profile{ExternalID: "Only Ext/ID:1 é"}
	none := userIn(tenant, 104)
	for _, u := range []*users.User{partial, phone, onlyAttrs, onlyExt, none} {
		want = append(want, createChecked(t, s, u))
	}
	checkReads(t, s, "after CreateUser", want...)
	// The same attributes read the same from every store: the canonical
	// spelling, whatever the client's.
	for i, d := range attributeDocs {
		if w := attrs(t, d.raw); !bytes.Equal(want[i].Attributes, w) {
			t.Errorf("%s: attributes %q, want %q", d.name, want[i].Attributes, w)
		}
	}
}

// testProfileAttributeNumbers stores numbers in the spellings JSON
// allows beyond the plain ones: exponents and a negative zero. The stores
// must return the text users.NormalizeAttributes keeps ("the text of
// every number kept exactly as sent"), the same on both.
func testProfileAttributeNumbers(t *testing.T, s UserStore, tenant string) {
	for i, raw := range []string{
		`{"e":1e2}`,
		`{"E":1E+2}`,
		`{"neg_exp":2.5e-3}`,
		`{"tiny":1e-7}`,
		`{"neg_zero":-0}`,
		`{"neg_zero_float":-0.0}`,
	} {
		u := userIn(tenant, i)
		u.Attributes = attrs(t, raw)
		createChecked(t, s, u)
		got, err := s.GetUser(context.Background(), tenant, u.ID)
		if err != nil {
			t.Fatalf("GetUser err = %v", err)
		}
		if !bytes.Equal(got.Attributes, u.Attributes) {
			t.Errorf("attributes %s read back as %s, want them unchanged", u.Attributes, got.Attributes)
		}
	}
}

// testProfileEmptyAttributes stores the empty object, which
// users.NormalizeAttributes makes no attributes (nil): what CreateUser
// and UpdateUser return must be what the reads return afterwards, and
// setting {} on a user without attributes is no change.
func testProfileEmptyAttributes(t *testing.T, s UserStore, tenant string) {
	ctx := context.Background()
	empty := attrs(t, `{}`)
	u := userIn(tenant, 1)
	u.Attributes = empty
	created := create(t, s, u)
	if created.Attributes != nil && !bytes.Equal(created.Attributes, empty) {
		t.Errorf("CreateUser returned attributes %q, want {} or none", created.Attributes)
	}
	checkReads(t, s, "CreateUser with {}", created)

	v := create(t, s, userIn(tenant, 2))
	updated, err := s.UpdateUser(ctx, tenant, v.ID, func(x *users.User) error { x.Attributes = empty; return nil })
	if err != nil {
		t.Fatalf("UpdateUser err = %v", err)
	}
	checkReads(t, s, "UpdateUser to {}", updated)

	// The events' snapshots are the users as the reads return them.
	fs, ok := s.(fullStore)
	if !ok {
		return
	}
	last := map[string]users.Event{}
	for _, ev := range markIn(t, fs, tenant, users.EventPos{}) {
		last[ev.UserID] = ev
	}
	for _, id := range []string{u.ID, v.ID} {
		got, err := s.GetUser(ctx, tenant, id)
		if err != nil {
			t.Fatalf("GetUser err = %v", err)
		}
		ev := last[id]
		if id == v.ID && ev.Type != users.EventCreated {
			t.Errorf("user %s: attributes none to {} appended %s %v, want no event: {} is no attributes", got.Email, ev.Type, ev.Paths)
		}
		snap := ev.User.Clone()
		// An update that changes nothing appends no event; the store
		// still counts it in the revision.
		snap.Revision = got.Revision
		if diff := userDiff(got, snap); diff != "" {
			t.Errorf("user %s: the snapshot of its last event (%s %v) is not the user read (-read +snapshot):\n%s", got.Email, ev.Type, ev.Paths, diff)
		}
	}
}

// testProfileUpdateSetClear sets every profile field of a user, changes
// some, and clears them all.
func testProfileUpdateSetClear(t *testing.T, s UserStore, tenant string) {
	ctx := context.Background()
	u := userIn(tenant, 1)
	u.Labels = map[string]string{"keep": "me"}
	u = create(t, s, u)
	update := func(what string, fn func(*users.User)) *users.User {
		t.Helper()
		want := u.Clone()
		fn(want)
		want.UpdateTime = want.UpdateTime.Add(time.Minute)
		got, err := s.UpdateUser(ctx, tenant, u.ID, func(x *users.User) error {
			fn(x)
			x.UpdateTime = x.UpdateTime.Add(time.Minute)
			return nil
		})
		if err != nil {
			t.Fatalf("%s: UpdateUser err = %v", what, err)
		}
		want.Revision++
		if diff := userDiff(want, got); diff != "" {
			t.Errorf("%s: UpdateUser returned (-want +got):\n%s", what, diff)
		}
		checkReads(t, s, what, want)
		u = got
		return got
	}

	update("set every field", func(x *users.User) { x.Profile = fullProfile("upd-1", attrs(t, attributeDocs[0].raw)) })
	update("change some", func(x *users.User) {
		x.GivenName, x.EmailVerified = "Zoe", false
		x.Attributes = attrs(t, attributeDocs[4].raw)
	})
	update("change the external id", func(x *users.User) { x.ExternalID = "upd-2" })
	if _, err := s.LookupUser(ctx, tenant, "upd-1"); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("LookupUser of the external id replaced err = %v, want ErrNotFound", err)
	}
	update("change the others", func(x *users.User) {
		x.FamilyName, x.PhoneNumber, x.PhoneVerified = "Lovelace", "+442079460958", false
		x.Locale, x.TimeZone = "de-DE", "America/New_York"
	})
	got := update("clear every field", func(x *users.User) { x.Profile = users.Profile{} })
	if !got.Profile.IsZero() || got.Attributes != nil {
		t.Errorf("after clearing, profile = %+v, want none (nil attributes)", got.Profile)
	}
	if _, err := s.LookupUser(ctx, tenant, "upd-2"); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("LookupUser of the cleared external id err = %v, want ErrNotFound", err)
	}
	// The cleared external id is free again.
	other := userIn(tenant, 2)
	other.ExternalID = "upd-2"
	createChecked(t, s, other)
	update("set again, other fields too", func(x *users.User) {
		x.DisplayName = "Renamed"
		x.Profile = fullProfile("upd-3", attrs(t, `{"again":[1,2,3]}`))
	})
}

// testProfileImport imports rows with profiles: every field is stored, a
// row whose external id a live user of the tenant has fails with
// users.ReasonExternalIDTaken while the others import, and the created
// events carry the profiles.
func testProfileImport(t *testing.T, s UserStore, tenant string) {
	fs := asFullStore(t, s)
	ctx := context.Background()
	otherTenant := tenant + "-other"
	createTenant(t, s, otherTenant, 0)
	shared := userIn(otherTenant, 50)
	shared.ExternalID = "shared-ext"
	create(t, s, shared)
	live := userIn(tenant, 50)
	live.ExternalID = "taken-ext"
	live = create(t, s, live)
	gone := userIn(tenant, 51)
	gone.ExternalID = "gone-ext"
	gone = create(t, s, gone)
	if _, err := s.UpdateUser(ctx, tenant, gone.ID, softDelete); err != nil {
		t.Fatalf("UpdateUser(delete) err = %v", err)
	}
	before := 3 // events of the tenant so far: two creates, a delete

	op, chunks := importIn(tenant, tenant+"-req", 9)
	if _, err := fs.CreateImport(ctx, op, importKey(op, "fp"), chunks); err != nil {
		t.Fatalf("CreateImport err = %v", err)
	}
	valid := ImportedUsers(chunks[0])
	profiles := []users.Profile{
		0: fullProfile("imp-0", attrs(t, attributeDocs[0].raw)),
		1: {ExternalID: "taken-ext", GivenName: "Taken"},                    // a live user's: fails
		2: {ExternalID: "gone-ext", Attributes: attrs(t, `{"row":2}`)},      // a deleted user's: free
		3: {ExternalID: "shared-ext", Locale: "fr", TimeZone: "Asia/Tokyo"}, // another tenant's: free
		4: {ExternalID: "imp-dup", PhoneNumber: "+442079460958", PhoneVerified: true},
		5: {ExternalID: "imp-dup", GivenName: "Second"}, // twice in the chunk: the first row wins
		6: {GivenName: "No", FamilyName: "External", EmailVerified: true, Attributes: attrs(t, attributeDocs[4].raw)},
		7: {},                        // no profile: many users may have no external id
		8: {ExternalID: "taken-ext"}, // and the address taken too: see below
	}
	for i := range valid {
		valid[i].User.Profile = profiles[i]
	}
	valid[8].User.Email = strings.ToUpper(live.Email)
	importChunk(t, fs, op.ID, 0, valid, nil)

	got, err := fs.GetOperation(ctx, tenant, op.ID)
	if err != nil {
		t.Fatalf("GetOperation err = %v", err)
	}
	// A row whose address and external id are both taken fails for its
	// address, as ImportChunk's contract lists the reasons.
	wantFailures := []users.RowFailure{
		{Index: 1, Reason: users.ReasonExternalIDTaken},
		{Index: 5, Reason: users.ReasonExternalIDTaken},
		{Index: 8, Reason: users.ReasonEmailTaken},
	}
	if diff := cmp.Diff(wantFailures, got.Failures); diff != "" || got.Imported != 6 || got.Failed != 3 {
		t.Errorf("operation: imported %d, failed %d, want 6, 3; failures (-want +got):\n%s", got.Imported, got.Failed, diff)
	}
	var imported []*users.User
	for _, v := range valid {
		if v.Index == 1 || v.Index == 5 || v.Index == 8 {
			if _, err := s.GetUser(ctx, tenant, v.User.ID); !errors.Is(err, users.ErrNotFound) {
				t.Errorf("row %d with a taken external id: GetUser err = %v, want ErrNotFound", v.Index, err)
			}
			continue
		}
		w := v.User.Clone()
		w.Tenant = tenant
		imported = append(imported, w)
	}
	checkReads(t, s, "imported", imported...)
	checkReads(t, s, "the live user", live)
	// The created events carry the profiles, in row order.
	evs := readTenantN(t, fs, tenant, users.EventPos{}, before+len(imported))[before:]
	want := make([]wantEvent, len(imported))
	for i, u := range imported {
		want[i] = wantEvent{Tenant: tenant, Type: users.EventCreated, UserID: u.ID, User: u}
	}
	checkProfileEvents(t, "ImportChunk", evs, want)
}

// testProfileEvents checks the events of users with profiles: a created
// event's user carries them, and an update's paths name the profile
// fields it changed, in their order.
func testProfileEvents(t *testing.T, s UserStore, tenant string) {
	fs := asFullStore(t, s)
	ctx := context.Background()
	u := userIn(tenant, 1)
	u.Labels = map[string]string{"a": "b"}
	u.Profile = fullProfile("ev-1", attrs(t, attributeDocs[0].raw))
	created := create(t, fs, u)
	bare := create(t, fs, userIn(tenant, 2))
	want := []wantEvent{
		{Tenant: tenant, Type: users.EventCreated, UserID: created.ID, User: created},
		{Tenant: tenant, Type: users.EventCreated, UserID: bare.ID, User: bare},
	}
	update := func(id string, fn func(*users.User), paths ...string) {
		t.Helper()
		got, err := fs.UpdateUser(ctx, tenant, id, func(x *users.User) error { fn(x); return nil })
		if err != nil {
			t.Fatalf("UpdateUser err = %v", err)
		}
		if paths != nil {
			want = append(want, wantEvent{Tenant: tenant, Type: users.EventUpdated, UserID: id, User: got, Paths: paths})
		}
	}
	update(u.ID, func(x *users.User) {
		x.GivenName = "Zoe"
		x.Attributes = attrs(t, attributeDocs[1].raw)
	}, "given_name", "attributes")
	update(bare.ID, func(x *users.User) {
		x.Profile = fullProfile("ev-2", attrs(t, attributeDocs[4].raw))
	}, "external_id", "given_name", "family_name", "phone_number", "email_verified", "phone_verified", "locale", "time_zone", "attributes")
	update(u.ID, func(x *users.User) {
		x.DisplayName = "Renamed"
		x.PhoneVerified = false
		x.TimeZone = "Asia/Tokyo"
	}, "display_name", "phone_verified", "time_zone")
	update(u.ID, func(x *users.User) { x.ExternalID = "ev-1b"; x.Labels = nil }, "labels", "external_id")
	// Nothing an event lists changes: the same attributes, set again
	// from another spelling, and the same fields.
	update(u.ID, func(x *users.User) {
		x.Attributes = attrs(t, attributeDocs[1].raw)
		x.GivenName = "Zoe"
	})
	update(bare.ID, func(x *users.User) { x.Profile = users.Profile{} },
		"external_id", "given_name", "family_name", "phone_number", "email_verified", "phone_verified", "locale", "time_zone", "attributes")
	update(u.ID, func(x *users.User) { x.Attributes = nil; x.EmailVerified = false }, "email_verified", "attributes")

	evs := readTenantN(t, fs, tenant, users.EventPos{}, len(want))
	checkProfileEvents(t, "profile changes", evs, want)
	if extra := markIn(t, fs, tenant, evs[len(evs)-1].Pos); len(extra) != 0 {
		t.Errorf("updates that changed nothing an event lists appended events: %v", summarizeEvents(extra))
	}
}

// checkProfileEvents compares evs with want, one by one, the users with
// userDiff, so that a failure names the attributes of each.
func checkProfileEvents(t *testing.T, what string, evs []users.Event, want []wantEvent) {
	t.Helper()
	if len(evs) != len(want) {
		t.Errorf("%s: %d events, want %d: %v", what, len(evs), len(want), summarizeEvents(evs))
		return
	}
	for i, ev := range evs {
		w := want[i]
		got := wantEvent{Tenant: ev.Tenant, Type: ev.Type, UserID: ev.UserID, Paths: ev.Paths, TraceParent: ev.TraceParent}
		w.User = nil
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("%s: event %d (-want +got):\n%s", what, i, diff)
		}
		if diff := userDiff(want[i].User, ev.User); diff != "" {
			t.Errorf("%s: event %d (%s %v), its user (-want +got):\n%s", what, i, ev.Type, ev.Paths, diff)
		}
	}
}

// wantExtTaken fails the test unless err is users.ErrExternalIDTaken (and
// not ErrEmailTaken: the address was free).
func wantExtTaken(t *testing.T, call string, err error) {
	t.Helper()
	if !errors.Is(err, users.ErrExternalIDTaken) || errors.Is(err, users.ErrEmailTaken) {
		t.Errorf("%s err = %v, want ErrExternalIDTaken", call, err)
	}
}

func testExternalIDUnique(t *testing.T, s UserStore, tenant string) {
	ctx := context.Background()
	other := tenant + "-other"
	createTenant(t, s, other, 0)

	a := userIn(tenant, 1)
	a.ExternalID = "hr-1"
	a = create(t, s, a)
	dup := userIn(tenant, 2)
	dup.ExternalID = "hr-1"
	_, err := s.CreateUser(ctx, dup, nil)
	wantExtTaken(t, "CreateUser with a taken external id", err)
	if _, err := s.GetUser(ctx, tenant, dup.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("the refused user was stored: GetUser err = %v", err)
	}
	// External ids compare exactly: another case is another id.
	dup.ExternalID = "HR-1"
	create(t, s, dup)
	// In another tenant, the id is free; as is the address.
	elsewhere := userIn(other, 1)
	elsewhere.ExternalID = "hr-1"
	create(t, s, elsewhere)
	// With the address taken too, CreateUser fails for one of the two.
	both := userIn(tenant, 9)
	both.Email, both.ExternalID = strings.ToLower(a.Email), "hr-1"
	if _, err := s.CreateUser(ctx, both, nil); !errors.Is(err, users.ErrEmailTaken) && !errors.Is(err, users.ErrExternalIDTaken) {
		t.Errorf("CreateUser with a taken address and external id err = %v, want ErrEmailTaken or ErrExternalIDTaken", err)
	}
	// Users without an external id are many.
	c := create(t, s, userIn(tenant, 3))
	create(t, s, userIn(tenant, 4))

	// An update to a taken id fails and changes nothing; to its own or a
	// free one it succeeds.
	_, err = s.UpdateUser(ctx, tenant, c.ID, func(x *users.User) error { x.ExternalID = "hr-1"; x.GivenName = "C"; return nil })
	wantExtTaken(t, "UpdateUser to a taken external id", err)
	if got, err := s.GetUser(ctx, tenant, c.ID); err != nil || !cmp.Equal(c, got) {
		t.Errorf("after the failed update GetUser = %+v, %v; want %+v", got, err, c)
	}
	if _, err := s.UpdateUser(ctx, tenant, a.ID, func(x *users.User) error { x.GivenName = "A"; return nil }); err != nil {
		t.Errorf("UpdateUser keeping its own external id err = %v", err)
	}
	if _, err := s.UpdateUser(ctx, tenant, c.ID, func(x *users.User) error { x.ExternalID = "hr-3"; return nil }); err != nil {
		t.Errorf("UpdateUser to a free external id err = %v", err)
	}

	// A deleted user's external id is free.
	if _, err := s.UpdateUser(ctx, tenant, a.ID, softDelete); err != nil {
		t.Fatalf("UpdateUser(delete) err = %v", err)
	}
	e := userIn(tenant, 5)
	e.ExternalID = "hr-1"
	e = create(t, s, e)
	if got, err := s.LookupUser(ctx, tenant, "hr-1"); err != nil || got.ID != e.ID {
		t.Errorf("LookupUser(hr-1) = %v, %v; want the new user %s", got, err, e.ID)
	}
	// Until it is undeleted: taken since, the undelete fails.
	undelete := func(x *users.User) error {
		x.State, x.DeleteTime = users.StateActive, time.Time{}
		return nil
	}
	_, err = s.UpdateUser(ctx, tenant, a.ID, undelete)
	wantExtTaken(t, "undelete with the external id taken", err)
	if got, err := s.GetUser(ctx, tenant, a.ID); err != nil || got.State != users.StateDeleted {
		t.Errorf("after the failed undelete GetUser = %+v, %v; want it still DELETED", got, err)
	}
	// An update of the deleted user that keeps it deleted does not
	// conflict.
	if _, err := s.UpdateUser(ctx, tenant, a.ID, func(x *users.User) error { x.FamilyName = "Deleted"; return nil }); err != nil {
		t.Errorf("UpdateUser of a deleted user with a taken external id err = %v", err)
	}
	// Freed again, it undeletes.
	if _, err := s.UpdateUser(ctx, tenant, e.ID, softDelete); err != nil {
		t.Fatalf("UpdateUser(delete) err = %v", err)
	}
	if _, err := s.UpdateUser(ctx, tenant, a.ID, undelete); err != nil {
		t.Errorf("undelete with the external id free again err = %v", err)
	}
	if got, err := s.LookupUser(ctx, tenant, "hr-1"); err != nil || got.ID != a.ID {
		t.Errorf("LookupUser(hr-1) = %v, %v; want the undeleted user %s", got, err, a.ID)
	}
}

// testExternalIDConcurrent creates users with one external id at once:
// one is stored, the others fail with ErrExternalIDTaken.
func testExternalIDConcurrent(t *testing.T, s UserStore, tenant string) {
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			u := userIn(tenant, i)
			u.ExternalID = "race"
			_, errs[i] = s.CreateUser(context.Background(), u, nil)
		})
	}
	wg.Wait()
	stored := 0
	for i, err := range errs {
		switch {
		case err == nil:
			stored++
		case !errors.Is(err, users.ErrExternalIDTaken):
			t.Errorf("CreateUser #%d err = %v, want nil or ErrExternalIDTaken", i, err)
		}
	}
	if stored != 1 {
		t.Errorf("%d users stored with one external id, want 1", stored)
	}
	if got := tenantUserIDs(t, s, tenant, true); len(got) != 1 {
		t.Errorf("users of the tenant = %v, want 1", got)
	}
}

func testLookupUser(t *testing.T, s UserStore, tenant string) {
	ctx := context.Background()
	other := tenant + "-other"
	gone := tenant + "-gone"
	createTenant(t, s, other, 0)
	createTenant(t, s, gone, 0)
	mk := func(tenant string, n int, ext string) *users.User {
		u := userIn(tenant, n)
		u.ExternalID = ext
		u.Profile.Attributes = attrs(t, fmt.Sprintf(`{"n":%d}`, n))
		return create(t, s, u)
	}
	live := mk(tenant, 1, "lk-1")
	susp := userIn(tenant, 2)
	susp.State, susp.ExternalID = users.StateSuspended, "lk-susp"
	susp = create(t, s, susp)
	create(t, s, userIn(tenant, 3)) // no external id
	del := mk(tenant, 4, "lk-del")
	if _, err := s.UpdateUser(ctx, tenant, del.ID, softDelete); err != nil {
		t.Fatalf("UpdateUser(delete) err = %v", err)
	}
	mine := mk(other, 5, "lk-other")
	mk(gone, 6, "lk-gone")
	deleteTenant(t, s, gone, base.Add(time.Hour))

	for _, tt := range []struct {
		tenant, ext string
		want        *users.User
	}{
		{tenant, "lk-1", live},
		{tenant, "lk-susp", susp},
		{other, "lk-other", mine},
		{tenant, "lk-404", nil},
		{tenant, "", nil},       // no user has the empty id: it is none
		{tenant, "LK-1", nil},   // compared exactly
		{tenant, "lk-", nil},    // not a prefix
		{tenant, "lk-del", nil}, // deleted
		{tenant, "lk-other", nil},
		{other, "lk-1", nil},
		{gone, "lk-gone", nil}, // the tenant is deleted
		{tenantNowhere, "lk-1", nil},
	} {
		got, err := s.LookupUser(ctx, tt.tenant, tt.ext)
		call := fmt.Sprintf("LookupUser(%s, %q)", tt.tenant, tt.ext)
		switch {
		case tt.want == nil && !errors.Is(err, users.ErrNotFound):
			t.Errorf("%s = %v, %v; want ErrNotFound", call, got, err)
		case tt.want == nil:
		case err != nil:
			t.Errorf("%s err = %v", call, err)
		default:
			if diff := userDiff(tt.want, got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", call, diff)
			}
		}
	}
	// The deleted user's id, taken by a new user, finds that one.
	again := mk(tenant, 7, "lk-del")
	if got, err := s.LookupUser(ctx, tenant, "lk-del"); err != nil || got.ID != again.ID {
		t.Errorf("LookupUser(lk-del) = %v, %v; want the new user %s", got, err, again.ID)
	}
}
