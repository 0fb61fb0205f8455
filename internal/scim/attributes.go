package scim

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// The member of a user's attributes (users.Profile.Attributes) that holds
// the SCIM attributes usersd has no field for, and its members. They live
// in the attributes, rather than in columns, because they matter to SCIM
// clients alone; the attributes are kept, indexed (Postgres's GIN index
// answers attributes.scim.userNameKey = "…") and exported with the user.
// docs/scim.md documents the layout, which is a contract: tenants' own
// tools may read it.
const (
	attrKey = "scim"
	// attrUserName is the userName as the client wrote it, kept only when
	// it is not an email address (which would be the user's email).
	attrUserName = "userName"
	// attrUserNameKey is attrUserName in lower case, so that a filter
	// userName eq "…" finds it from an index although userName compares
	// case-insensitively.
	attrUserNameKey = "userNameKey"
	// attrPhoneType is the type of the one phone number kept (work,
	// mobile, …), so that a client that addresses it by type finds it.
	attrPhoneType = "phoneNumberType"
	// attrEnterprise holds the enterprise extension: employeeNumber,
	// costCenter, organization, division, department as strings, and
	// manager as the manager's user id.
	attrEnterprise = "enterprise"
)

// stored is what the scim member of a user's attributes holds.
type stored struct {
	userName   string
	phoneType  string
	enterprise *EnterpriseUser
}

// enterpriseFields are the string attributes of the enterprise extension
// with their accessors, in the order the schema lists them.
var enterpriseFields = []struct {
	name string
	get  func(*EnterpriseUser) *string
}{
	{"employeeNumber", func(e *EnterpriseUser) *string { return &e.EmployeeNumber }},
	{"costCenter", func(e *EnterpriseUser) *string { return &e.CostCenter }},
	{"organization", func(e *EnterpriseUser) *string { return &e.Organization }},
	{"division", func(e *EnterpriseUser) *string { return &e.Division }},
	{"department", func(e *EnterpriseUser) *string { return &e.Department }},
}

// parseAttributes decodes a user's attributes into an object, numbers kept
// as written. nil or empty attributes are an empty object.
func parseAttributes(attrs []byte) (map[string]any, error) {
	m := map[string]any{}
	if len(attrs) == 0 {
		return m, nil
	}
	dec := json.NewDecoder(bytes.NewReader(attrs))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("scim: the user's attributes are not a JSON object: %w", err)
	}
	return m, nil
}

// readStored returns what a user's attributes keep for SCIM. Members of
// the wrong type (a tenant's own data under the same name) are read as
// absent.
func readStored(attrs []byte) stored {
	var st stored
	m, err := parseAttributes(attrs)
	if err != nil {
		return st
	}
	sm, _ := m[attrKey].(map[string]any)
	if sm == nil {
		return st
	}
	st.userName, _ = sm[attrUserName].(string)
	st.phoneType, _ = sm[attrPhoneType].(string)
	if em, ok := sm[attrEnterprise].(map[string]any); ok {
		e := &EnterpriseUser{}
		for _, f := range enterpriseFields {
			*f.get(e), _ = em[f.name].(string)
		}
		if id, ok := em["manager"].(string); ok && id != "" {
			e.Manager = &Manager{Value: id}
		}
		if !e.isZero() {
			st.enterprise = e
		}
	}
	return st
}

// writeStored returns prev, a user's attributes, with the SCIM members set
// to st's: the other members of the attributes, and any other member of
// the scim object, are kept as they are. It returns nil when nothing is
// left.
func writeStored(prev []byte, st stored) ([]byte, error) {
	m, err := parseAttributes(prev)
	if err != nil {
		return nil, err
	}
	sm, isObject := m[attrKey].(map[string]any)
	if _, present := m[attrKey]; present && !isObject && st.isZero() {
		// The tenant's own data under the name, and nothing of SCIM's
		// to keep: it stays. (With something to keep, the member, which
		// docs/scim.md reserves, becomes SCIM's.)
		return prev, nil
	}
	if sm == nil {
		sm = map[string]any{}
	}
	setOrDelete(sm, attrUserName, st.userName)
	setOrDelete(sm, attrUserNameKey, lowerKey(st.userName))
	setOrDelete(sm, attrPhoneType, st.phoneType)
	delete(sm, attrEnterprise)
	if e := st.enterprise; e != nil && !e.isZero() {
		em := map[string]any{}
		for _, f := range enterpriseFields {
			setOrDelete(em, f.name, *f.get(e))
		}
		if e.Manager != nil {
			setOrDelete(em, "manager", e.Manager.Value)
		}
		sm[attrEnterprise] = em
	}
	if len(sm) == 0 {
		delete(m, attrKey)
	} else {
		m[attrKey] = sm
	}
	if len(m) == 0 {
		return nil, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("scim: encoding the user's attributes: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func (st stored) isZero() bool {
	return st.userName == "" && st.phoneType == "" && (st.enterprise == nil || st.enterprise.isZero())
}

func setOrDelete(m map[string]any, k, v string) {
	if v == "" {
		delete(m, k)
		return
	}
	m[k] = v
}
