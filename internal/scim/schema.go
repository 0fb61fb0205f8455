package scim

import "strings"

// The URNs of the schemas and messages usersd serves (RFC 7643 section 8.7,
// RFC 7644 section 3).
const (
	UserSchema         = "urn:ietf:params:scim:schemas:core:2.0:User"
	EnterpriseSchema   = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	GroupSchema        = "urn:ietf:params:scim:schemas:core:2.0:Group"
	PatchOpSchema      = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	ErrorSchema        = "urn:ietf:params:scim:api:messages:2.0:Error"
	ListResponseSchema = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
)

// attrType is the data type of an attribute (RFC 7643 section 2.3). usersd's
// schemas have no integer, decimal or binary attributes, so a number in a
// filter or a body is always the wrong type.
type attrType uint8

const (
	typeString attrType = iota
	typeBoolean
	typeDateTime
	typeReference
	typeComplex
)

func (t attrType) String() string {
	switch t {
	case typeBoolean:
		return "boolean"
	case typeDateTime:
		return "dateTime"
	case typeReference:
		return "reference"
	case typeComplex:
		return "complex"
	}
	return "string"
}

// mutability says who may change an attribute (RFC 7643 section 7).
type mutability uint8

const (
	readWrite mutability = iota
	readOnly
)

// attribute describes one attribute of a schema, or one sub-attribute of a
// complex attribute: what filters and PATCH need to know of it (its type,
// whether it is multi-valued, how its strings compare, who may change it).
// The schemas are data rather than code so that a filter, a PATCH path and
// a request body all resolve names and check values the same way.
type attribute struct {
	// name is the canonical spelling; names are matched case-insensitively.
	name string
	typ  attrType
	// multi marks a multi-valued attribute.
	multi bool
	// caseExact: strings compare exactly; otherwise as users.EmailKey
	// compares addresses (lower case), so that a filter finds what the
	// store's case-insensitive keys find.
	caseExact bool
	mut       mutability
	// required attributes cannot be removed.
	required bool
	// ignored attributes are accepted in requests and not kept: they are
	// part of the SCIM schema but usersd has no field for them. Their
	// values are not checked, and a filter sees them unassigned.
	ignored bool
	// subs are the sub-attributes of a complex attribute.
	subs []*attribute
}

// sub returns the sub-attribute named name, in any case, or nil.
func (a *attribute) sub(name string) *attribute { return findAttr(a.subs, name) }

// findAttr returns the attribute of attrs named name, in any case, or nil.
func findAttr(attrs []*attribute, name string) *attribute {
	for _, a := range attrs {
		if strings.EqualFold(a.name, name) {
			return a
		}
	}
	return nil
}

// schema is a SCIM schema: its URN and its top-level attributes.
type schema struct {
	urn   string
	attrs []*attribute
	// ext marks an extension schema, whose attributes a resource holds in
	// an object under the URN rather than at its top level.
	ext bool
}

// resourceType is a kind of resource usersd serves: its core schema and the
// extensions it may carry.
type resourceType struct {
	name       string
	endpoint   string
	core       *schema
	extensions []*schema
}

// extension returns the extension schema whose URN is urn, in any case, or
// nil.
func (rt *resourceType) extension(urn string) *schema {
	for _, s := range rt.extensions {
		if strings.EqualFold(s.urn, urn) {
			return s
		}
	}
	return nil
}

// schemaOf returns the schema whose URN is urn (the core one or an
// extension), or nil.
func (rt *resourceType) schemaOf(urn string) *schema {
	if strings.EqualFold(rt.core.urn, urn) {
		return rt.core
	}
	return rt.extension(urn)
}

// lookup resolves an attribute name with an optional schema URN. Without a
// URN the core schema is searched first, then the extensions: RFC 7644
// wants extension attributes qualified, but their names collide with no
// core attribute, and some clients leave the URN out. It returns the
// attribute and the schema it belongs to, or nils.
func (rt *resourceType) lookup(urn, name string) (*attribute, *schema) {
	if urn != "" {
		s := rt.schemaOf(urn)
		if s == nil {
			return nil, nil
		}
		if a := findAttr(s.attrs, name); a != nil {
			return a, s
		}
		return nil, nil
	}
	if a := findAttr(rt.core.attrs, name); a != nil {
		return a, rt.core
	}
	for _, s := range rt.extensions {
		if a := findAttr(s.attrs, name); a != nil {
			return a, s
		}
	}
	return nil, nil
}

// Constructors of attribute definitions, to keep the tables below short.

func str(name string) *attribute      { return &attribute{name: name, typ: typeString} }
func exact(name string) *attribute    { return &attribute{name: name, typ: typeString, caseExact: true} }
func boolean(name string) *attribute  { return &attribute{name: name, typ: typeBoolean} }
func ref(name string) *attribute      { return &attribute{name: name, typ: typeReference, caseExact: true} }
func dateTime(name string) *attribute { return &attribute{name: name, typ: typeDateTime} }

func complexAttr(name string, subs ...*attribute) *attribute {
	return &attribute{name: name, typ: typeComplex, subs: subs}
}

func multiAttr(name string, subs ...*attribute) *attribute {
	return &attribute{name: name, typ: typeComplex, multi: true, subs: subs}
}

func (a *attribute) readOnly() *attribute { a.mut = readOnly; return a }
func (a *attribute) isRequired() *attribute {
	a.required = true
	return a
}
func (a *attribute) notKept() *attribute { a.ignored = true; return a }

// commonAttrs are the attributes of every resource (RFC 7643 section 3.1).
func commonAttrs() []*attribute {
	return []*attribute{
		exact("id").readOnly(),
		exact("externalId"),
		complexAttr("meta",
			exact("resourceType"), dateTime("created"), dateTime("lastModified"),
			ref("location"), exact("version"),
		).readOnly(),
	}
}

// typedValue is the sub-attributes of emails and phoneNumbers that usersd
// reads; display is accepted and not kept.
func typedValue(name string) *attribute {
	return multiAttr(name, str("value"), str("display").notKept(), str("type"), boolean("primary"))
}

// userType is the User resource: the core schema (RFC 7643 section 4.1)
// and the enterprise extension (section 4.3). Attributes marked notKept
// have no field in usersd (docs/scim.md lists them).
var userType = &resourceType{
	name:     "User",
	endpoint: "Users",
	core: &schema{urn: UserSchema, attrs: append(commonAttrs(),
		str("userName").isRequired(),
		complexAttr("name",
			str("formatted"), str("familyName"), str("givenName"),
			str("middleName").notKept(), str("honorificPrefix").notKept(), str("honorificSuffix").notKept(),
		),
		str("displayName"),
		str("nickName").notKept(),
		ref("profileUrl").notKept(),
		str("title").notKept(),
		str("userType").notKept(),
		str("preferredLanguage").notKept(),
		str("locale"),
		str("timezone"),
		boolean("active"),
		str("password").notKept(),
		typedValue("emails"),
		typedValue("phoneNumbers"),
		multiAttr("ims").notKept(),
		multiAttr("photos").notKept(),
		multiAttr("addresses").notKept(),
		multiAttr("groups", exact("value"), ref("$ref"), str("display"), str("type")).readOnly(),
		multiAttr("entitlements").notKept(),
		multiAttr("roles").notKept(),
		multiAttr("x509Certificates").notKept(),
	)},
	extensions: []*schema{{urn: EnterpriseSchema, ext: true, attrs: []*attribute{
		str("employeeNumber"),
		str("costCenter"),
		str("organization"),
		str("division"),
		str("department"),
		complexAttr("manager", exact("value"), ref("$ref"), str("displayName").readOnly()),
	}}},
}

// groupType is the Group resource (RFC 7643 section 4.2).
var groupType = &resourceType{
	name:     "Group",
	endpoint: "Groups",
	core: &schema{urn: GroupSchema, attrs: append(commonAttrs(),
		str("displayName").isRequired(),
		multiAttr("members", exact("value"), ref("$ref"), str("display"), str("type")),
	)},
}
