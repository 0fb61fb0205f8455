package scim

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/usersd/usersd/internal/users"
)

// User is a SCIM User resource: the core schema and the enterprise
// extension, as usersd keeps them. It is what a handler renders (its JSON
// is the resource) and what it decodes requests into (DecodeUser). The
// attributes usersd does not keep have no field; docs/scim.md lists them.
type User struct {
	Schemas      []string        `json:"schemas"`
	ID           string          `json:"id,omitempty"`
	ExternalID   string          `json:"externalId,omitempty"`
	UserName     string          `json:"userName,omitempty"`
	Name         *Name           `json:"name,omitempty"`
	DisplayName  string          `json:"displayName,omitempty"`
	Emails       []TypedValue    `json:"emails,omitempty"`
	PhoneNumbers []TypedValue    `json:"phoneNumbers,omitempty"`
	Locale       string          `json:"locale,omitempty"`
	Timezone     string          `json:"timezone,omitempty"`
	Active       *bool           `json:"active,omitempty"`
	Groups       []GroupRef      `json:"groups,omitempty"`
	Enterprise   *EnterpriseUser `json:"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User,omitempty"`
	Meta         *Meta           `json:"meta,omitempty"`
}

// Name is a user's name. Formatted is read on create (it makes the display
// name when none is given) and written as the given and family names
// joined, since usersd keeps those two.
type Name struct {
	Formatted  string `json:"formatted,omitempty"`
	FamilyName string `json:"familyName,omitempty"`
	GivenName  string `json:"givenName,omitempty"`
}

// TypedValue is one value of emails or phoneNumbers.
type TypedValue struct {
	Value   string `json:"value,omitempty"`
	Type    string `json:"type,omitempty"`
	Primary bool   `json:"primary,omitempty"`
}

// GroupRef is one of the groups a user is a member of (read-only: a
// handler fills it from ListUserGroups when it wants to).
type GroupRef struct {
	Value   string `json:"value"`
	Ref     string `json:"$ref,omitempty"`
	Display string `json:"display,omitempty"`
	Type    string `json:"type,omitempty"`
}

// EnterpriseUser is the enterprise extension
// (urn:ietf:params:scim:schemas:extension:enterprise:2.0:User), kept in
// the user's attributes under scim.enterprise.
type EnterpriseUser struct {
	EmployeeNumber string   `json:"employeeNumber,omitempty"`
	CostCenter     string   `json:"costCenter,omitempty"`
	Organization   string   `json:"organization,omitempty"`
	Division       string   `json:"division,omitempty"`
	Department     string   `json:"department,omitempty"`
	Manager        *Manager `json:"manager,omitempty"`
}

func (e *EnterpriseUser) isZero() bool {
	return e.EmployeeNumber == "" && e.CostCenter == "" && e.Organization == "" && e.Division == "" &&
		e.Department == "" && (e.Manager == nil || e.Manager.Value == "")
}

// Manager is the enterprise extension's manager: Value is the manager's
// user id. DisplayName is read-only, and usersd does not fill it (it would
// cost a read of the manager).
type Manager struct {
	Value       string `json:"value,omitempty"`
	Ref         string `json:"$ref,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
}

// The usersd state of a user that SCIM calls active, and the one it calls
// inactive. A deleted user does not exist for SCIM.
const (
	activeState   = users.StateActive
	inactiveState = users.StateSuspended
)

// workType is the type of the one email address a user has, the type
// Microsoft Entra ID's and Okta's mappings address it by.
const workType = "work"

// maxStoredLen bounds the strings kept in the attributes (a userName that
// is not an address, a phone type, the enterprise attributes), in bytes:
// they are identifiers and short names, as the domain's external id.
const maxStoredLen = users.MaxExternalIDLen

// UserFromDomain returns the SCIM resource of a user. base is the URL of
// the tenant's SCIM service ("https://host/scim/v2/tenants/acme"), from
// which meta.location and the manager's $ref are made; "" leaves them out.
// A deleted user is not a SCIM resource: the error is a 404.
func UserFromDomain(u *users.User, base string) (*User, error) {
	if u.State == users.StateDeleted {
		return nil, FromError(fmt.Errorf("user %s is deleted: %w", u.ID, users.ErrNotFound))
	}
	st := readStored(u.Attributes)
	active := u.State == activeState
	out := &User{
		Schemas:     []string{UserSchema},
		ID:          u.ID,
		ExternalID:  u.ExternalID,
		UserName:    u.Email,
		DisplayName: u.DisplayName,
		Emails:      []TypedValue{{Value: u.Email, Type: workType, Primary: true}},
		Locale:      u.Locale,
		Timezone:    u.TimeZone,
		Active:      &active,
		Meta: &Meta{
			ResourceType: userType.name, Created: u.CreateTime.UTC(), LastModified: u.UpdateTime.UTC(),
			Location: location(base, userType, u.ID), Version: version(u.Etag()),
		},
	}
	if st.userName != "" {
		out.UserName = st.userName
	}
	if u.GivenName != "" || u.FamilyName != "" {
		out.Name = &Name{
			Formatted:  strings.TrimSpace(u.GivenName + " " + u.FamilyName),
			FamilyName: u.FamilyName, GivenName: u.GivenName,
		}
	}
	if u.PhoneNumber != "" {
		out.PhoneNumbers = []TypedValue{{Value: u.PhoneNumber, Type: st.phoneType, Primary: true}}
	}
	if e := st.enterprise; e != nil {
		if e.Manager != nil {
			e.Manager.Ref = location(base, userType, e.Manager.Value)
		}
		out.Enterprise = e
		out.Schemas = append(out.Schemas, EnterpriseSchema)
	}
	return out, nil
}

// DecodeUser reads a User from a POST or PUT body. Attribute names match in
// any case and may carry their schema's URN; the attributes usersd does
// not keep, and the read-only ones, are dropped; an unknown attribute is a
// 400 invalidSyntax and a value of the wrong type a 400 invalidValue.
func DecodeUser(body []byte) (*User, error) {
	doc, err := decodeResource(userType, body)
	if err != nil {
		return nil, err
	}
	return userFromDoc(doc), nil
}

// ToDomain returns the user that u describes, as Service.Create takes it
// (CreateRequest.User): see docs/scim.md for each field's rule. It checks
// what the domain does not (that an email address can be found, the
// strings kept in the attributes); the service checks the rest.
func (u *User) ToDomain() (*users.User, error) { return u.domain(nil) }

// UpdateRequest returns the Service.Update request that makes prev the
// user u describes: the fields of a PUT's body, or the resource a PATCH
// made (Patch.ApplyToUser). Its mask names the fields that change, and it
// carries prev's etag, so that a change made meanwhile fails with 412
// rather than being overwritten. changed is false when nothing would
// change: the handler then answers prev as it is, without an update (an
// empty mask would mean every field to Service.Update).
func (u *User) UpdateRequest(prev *users.User) (req users.UpdateRequest, changed bool, err error) {
	if prev.State == users.StateDeleted {
		return req, false, FromError(fmt.Errorf("user %s is deleted: %w", prev.ID, users.ErrNotFound))
	}
	next, err := u.domain(prev)
	if err != nil {
		return req, false, err
	}
	paths := changedPaths(prev, next)
	if len(paths) == 0 {
		return req, false, nil
	}
	next.ID, next.Tenant = prev.ID, prev.Tenant
	return users.UpdateRequest{Tenant: prev.Tenant, User: next, Paths: paths, Etag: prev.Etag()}, true, nil
}

// domain maps u to a users.User. prev, when not nil, is the user being
// replaced: its state is kept when u leaves active unassigned, and its
// attributes other than SCIM's are kept.
func (u *User) domain(prev *users.User) (*users.User, error) {
	email, err := u.email()
	if err != nil {
		return nil, err
	}
	out := &users.User{Email: email, State: activeState}
	if prev != nil {
		out.State = prev.State
	}
	if u.Active != nil {
		out.State = inactiveState
		if *u.Active {
			out.State = activeState
		}
	}
	if u.Name != nil {
		out.GivenName, out.FamilyName = u.Name.GivenName, u.Name.FamilyName
	}
	out.DisplayName = u.displayName(email)
	out.ExternalID = u.ExternalID
	out.Locale = u.Locale
	out.TimeZone = u.Timezone

	var st stored
	if u.UserName != "" && !isAddress(u.UserName) {
		if err := checkStored("userName", u.UserName); err != nil {
			return nil, err
		}
		st.userName = u.UserName
	}
	if p := primaryOrFirst(u.PhoneNumbers); p != nil {
		out.PhoneNumber = p.Value
		if err := checkStored("phoneNumbers.type", p.Type); err != nil {
			return nil, err
		}
		st.phoneType = p.Type
	}
	if e := u.Enterprise; e != nil && !e.isZero() {
		kept := &EnterpriseUser{}
		for _, f := range enterpriseFields {
			v := *f.get(e)
			if err := checkStored(EnterpriseSchema+":"+f.name, v); err != nil {
				return nil, err
			}
			*f.get(kept) = v
		}
		if e.Manager != nil && e.Manager.Value != "" {
			if err := checkStored(EnterpriseSchema+":manager.value", e.Manager.Value); err != nil {
				return nil, err
			}
			kept.Manager = &Manager{Value: e.Manager.Value}
		}
		st.enterprise = kept
	}
	var prevAttrs []byte
	if prev != nil {
		prevAttrs = prev.Attributes
	}
	if out.Attributes, err = writeStored(prevAttrs, st); err != nil {
		return nil, &Error{Status: http.StatusInternalServerError, Detail: "internal error", Err: err}
	}
	return out, nil
}

// email is the rule that gives a user its one address (usersd's email):
// the userName when it is an email address (identity providers send the
// UPN or the address there); otherwise the emails value that is primary,
// else the one of type "work", else the first. Other addresses are not
// kept.
func (u *User) email() (string, error) {
	if isAddress(u.UserName) {
		return u.UserName, nil
	}
	e := primaryOrFirst(u.Emails)
	if e == nil {
		if u.UserName == "" {
			return "", invalidValue("userName: required")
		}
		return "", invalidValue("userName: %q is not an email address, and emails holds none: usersd needs an address", u.UserName)
	}
	if !isAddress(e.Value) {
		return "", invalidValue("emails: %q is not an email address", e.Value)
	}
	return e.Value, nil
}

// primaryOrFirst returns the value marked primary, else the first of type
// work, else the first with a value; nil when none has one.
func primaryOrFirst(vs []TypedValue) *TypedValue {
	var work, first *TypedValue
	for i := range vs {
		v := &vs[i]
		switch {
		case v.Value == "":
		case v.Primary:
			return v
		case work == nil && strings.EqualFold(v.Type, workType):
			work = v
		case first == nil:
			first = v
		}
	}
	if work != nil {
		return work
	}
	return first
}

// displayName is the display name a user gets: its displayName, else its
// formatted name, else its given and family names, else its userName,
// else its address. usersd requires one, and SCIM does not.
func (u *User) displayName(email string) string {
	if strings.TrimSpace(u.DisplayName) != "" {
		return u.DisplayName
	}
	if u.Name != nil {
		if f := strings.TrimSpace(u.Name.Formatted); f != "" {
			return f
		}
		if f := strings.TrimSpace(u.Name.GivenName + " " + u.Name.FamilyName); f != "" {
			return f
		}
	}
	if u.UserName != "" {
		return u.UserName
	}
	return email
}

// isAddress reports whether s is an email address as the domain checks one
// (one "@", neither first nor last, no space), so that a userName is taken
// as the address exactly when the domain would take it.
func isAddress(s string) bool {
	at := strings.IndexByte(s, '@')
	return at > 0 && at < len(s)-1 && strings.Count(s, "@") == 1 && strings.IndexFunc(s, unicode.IsSpace) < 0
}

// checkStored checks a string kept in the attributes as the domain checks
// its own text: one line of valid UTF-8, and short.
func checkStored(name, v string) error {
	switch {
	case len(v) > maxStoredLen:
		return invalidValue("%s: longer than %d bytes", name, maxStoredLen)
	case !utf8.ValidString(v):
		return invalidValue("%s: not valid UTF-8", name)
	case strings.IndexFunc(v, unicode.IsControl) >= 0:
		return invalidValue("%s: control characters, tabs and line breaks included, are not allowed", name)
	}
	return nil
}

// changedPaths returns the update mask of the fields that differ between
// prev and next.
func changedPaths(prev, next *users.User) []string {
	var paths []string
	for _, f := range []struct {
		path string
		diff bool
	}{
		{"email", prev.Email != next.Email},
		{"display_name", prev.DisplayName != next.DisplayName},
		{"state", prev.State != next.State},
		{"external_id", prev.ExternalID != next.ExternalID},
		{"given_name", prev.GivenName != next.GivenName},
		{"family_name", prev.FamilyName != next.FamilyName},
		{"phone_number", !samePhone(prev.PhoneNumber, next.PhoneNumber)},
		{"locale", !strings.EqualFold(prev.Locale, next.Locale)},
		{"time_zone", prev.TimeZone != next.TimeZone},
		{"attributes", !sameAttributes(prev.Attributes, next.Attributes)},
	} {
		if f.diff {
			paths = append(paths, f.path)
		}
	}
	return paths
}

// samePhone reports whether two phone numbers are written alike but for
// spaces and punctuation, so that a client that sends the stored E.164
// number formatted ("+1 415-555-0100") changes nothing. Other differences
// are left to the domain, which puts numbers in E.164.
func samePhone(a, b string) bool {
	strip := func(s string) string {
		return strings.Map(func(r rune) rune {
			if strings.ContainsRune(" -().", r) {
				return -1
			}
			return r
		}, s)
	}
	return a == b || strip(a) == strip(b)
}

// sameAttributes compares two users' attributes in the domain's canonical
// form, so that re-encoding them is not a change.
func sameAttributes(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	na, errA := users.NormalizeAttributes("attributes", a)
	nb, errB := users.NormalizeAttributes("attributes", b)
	return errA == nil && errB == nil && bytes.Equal(na, nb)
}

// toDoc returns u as a document (see canon), which filters and PATCH work
// on.
func (u *User) toDoc() map[string]any {
	doc := map[string]any{}
	putString(doc, "id", u.ID)
	putString(doc, "externalId", u.ExternalID)
	putString(doc, "userName", u.UserName)
	if n := u.Name; n != nil {
		m := map[string]any{}
		putString(m, "formatted", n.Formatted)
		putString(m, "familyName", n.FamilyName)
		putString(m, "givenName", n.GivenName)
		putMap(doc, "name", m)
	}
	putString(doc, "displayName", u.DisplayName)
	putList(doc, "emails", typedValuesDoc(u.Emails))
	putList(doc, "phoneNumbers", typedValuesDoc(u.PhoneNumbers))
	putString(doc, "locale", u.Locale)
	putString(doc, "timezone", u.Timezone)
	if u.Active != nil {
		doc["active"] = *u.Active
	}
	var groups []any
	for _, g := range u.Groups {
		m := map[string]any{}
		putString(m, "value", g.Value)
		putString(m, "$ref", g.Ref)
		putString(m, "display", g.Display)
		putString(m, "type", g.Type)
		if len(m) > 0 {
			groups = append(groups, m)
		}
	}
	putList(doc, "groups", groups)
	if e := u.Enterprise; e != nil {
		m := map[string]any{}
		for _, f := range enterpriseFields {
			putString(m, f.name, *f.get(e))
		}
		if mg := e.Manager; mg != nil {
			mm := map[string]any{}
			putString(mm, "value", mg.Value)
			putString(mm, "$ref", mg.Ref)
			putString(mm, "displayName", mg.DisplayName)
			putMap(m, "manager", mm)
		}
		putMap(doc, EnterpriseSchema, m)
	}
	putMap(doc, "meta", u.Meta.toDoc())
	return doc
}

func typedValuesDoc(vs []TypedValue) []any {
	var out []any
	for _, v := range vs {
		m := map[string]any{}
		putString(m, "value", v.Value)
		putString(m, "type", v.Type)
		if v.Primary {
			m["primary"] = true
		}
		if len(m) > 0 {
			out = append(out, m)
		}
	}
	return out
}

// userFromDoc returns the User of a document that canon (or toDoc) made.
func userFromDoc(doc map[string]any) *User {
	u := &User{Schemas: []string{UserSchema}}
	u.ID = getString(doc, "id")
	u.ExternalID = getString(doc, "externalId")
	u.UserName = getString(doc, "userName")
	if m := getMap(doc, "name"); m != nil {
		u.Name = &Name{Formatted: getString(m, "formatted"), FamilyName: getString(m, "familyName"), GivenName: getString(m, "givenName")}
	}
	u.DisplayName = getString(doc, "displayName")
	u.Emails = typedValuesFromDoc(doc["emails"])
	u.PhoneNumbers = typedValuesFromDoc(doc["phoneNumbers"])
	u.Locale = getString(doc, "locale")
	u.Timezone = getString(doc, "timezone")
	if b, ok := doc["active"].(bool); ok {
		u.Active = &b
	}
	for _, e := range getList(doc, "groups") {
		if m, ok := e.(map[string]any); ok {
			u.Groups = append(u.Groups, GroupRef{
				Value: getString(m, "value"), Ref: getString(m, "$ref"), Display: getString(m, "display"), Type: getString(m, "type"),
			})
		}
	}
	if m := getMap(doc, EnterpriseSchema); m != nil {
		e := &EnterpriseUser{}
		for _, f := range enterpriseFields {
			*f.get(e) = getString(m, f.name)
		}
		if mm := getMap(m, "manager"); mm != nil {
			e.Manager = &Manager{Value: getString(mm, "value"), Ref: getString(mm, "$ref"), DisplayName: getString(mm, "displayName")}
		}
		if !e.isZero() {
			u.Enterprise = e
			u.Schemas = append(u.Schemas, EnterpriseSchema)
		}
	}
	u.Meta = metaFromDoc(getMap(doc, "meta"))
	return u
}

func typedValuesFromDoc(v any) []TypedValue {
	list, _ := v.([]any)
	var out []TypedValue
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			p, _ := m["primary"].(bool)
			out = append(out, TypedValue{Value: getString(m, "value"), Type: getString(m, "type"), Primary: p})
		}
	}
	return out
}

// Accessors of documents: a missing member, or one of another type, is
// unassigned.

func putString(m map[string]any, k, v string) {
	if v != "" {
		m[k] = v
	}
}

func putMap(m map[string]any, k string, v map[string]any) {
	if len(v) > 0 {
		m[k] = v
	}
}

func putList(m map[string]any, k string, v []any) {
	if len(v) > 0 {
		m[k] = v
	}
}

func getString(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func getMap(m map[string]any, k string) map[string]any {
	v, _ := m[k].(map[string]any)
	return v
}

func getList(m map[string]any, k string) []any {
	v, _ := m[k].([]any)
	return v
}
