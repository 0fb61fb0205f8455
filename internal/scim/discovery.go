package scim

import (
	"net/http"
	"strings"
)

// The URNs of the discovery resources (RFC 7643 sections 5 to 7).
const (
	ServiceProviderConfigSchema = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
	ResourceTypeSchema          = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
	SchemaSchema                = "urn:ietf:params:scim:schemas:core:2.0:Schema"
)

// serviceProviderConfig answers what usersd supports (RFC 7643 section 5).
func (h *handler) serviceProviderConfig(q *request) error {
	doc := map[string]any{
		"schemas":          []string{ServiceProviderConfigSchema},
		"documentationUri": "https://github.com/usersd/usersd/blob/main/docs/scim.md",
		"patch":            map[string]any{"supported": true},
		"bulk":             map[string]any{"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
		"filter":           map[string]any{"supported": true, "maxResults": MaxCount},
		"changePassword":   map[string]any{"supported": false},
		"sort":             map[string]any{"supported": false},
		"etag":             map[string]any{"supported": true},
		"authenticationSchemes": []any{map[string]any{
			"type":        "oauthbearertoken",
			"name":        "OAuth Bearer Token",
			"description": "A JWT of the tenant's issuer with the scope scim, bound to the tenant (RFC 6750)",
			"specUri":     "https://www.rfc-editor.org/rfc/rfc6750",
			"primary":     true,
		}},
		"meta": map[string]any{"resourceType": "ServiceProviderConfig", "location": q.base + "/ServiceProviderConfig"},
	}
	writeJSON(q.w, http.StatusOK, doc)
	return nil
}

var resourceTypesServed = []*resourceType{userType, groupType}

func resourceTypeDoc(rt *resourceType, base string) map[string]any {
	exts := []any{}
	for _, s := range rt.extensions {
		exts = append(exts, map[string]any{"schema": s.urn, "required": false})
	}
	return map[string]any{
		"schemas":          []string{ResourceTypeSchema},
		"id":               rt.name,
		"name":             rt.name,
		"endpoint":         "/" + rt.endpoint,
		"description":      rt.name + "s of the tenant",
		"schema":           rt.core.urn,
		"schemaExtensions": exts,
		"meta":             map[string]any{"resourceType": "ResourceType", "location": base + "/ResourceTypes/" + rt.name},
	}
}

func (h *handler) resourceTypes(q *request) error {
	var out []any
	for _, rt := range resourceTypesServed {
		out = append(out, resourceTypeDoc(rt, q.base))
	}
	writeJSON(q.w, http.StatusOK, NewListResponse(len(out), 1, out))
	return nil
}

func (h *handler) resourceType(q *request) error {
	name := q.r.PathValue("name")
	for _, rt := range resourceTypesServed {
		if strings.EqualFold(rt.name, name) {
			writeJSON(q.w, http.StatusOK, resourceTypeDoc(rt, q.base))
			return nil
		}
	}
	return &Error{Status: http.StatusNotFound, Detail: "no resource type " + truncate(name)}
}

// schemasServed are the schemas usersd serves, with the resource type each
// belongs to.
func schemasServed() []*schema {
	return []*schema{userType.core, userType.extensions[0], groupType.core}
}

// schemaNames are the descriptions of the schemas.
var schemaNames = map[string][2]string{
	UserSchema:       {"User", "User Account"},
	EnterpriseSchema: {"EnterpriseUser", "Enterprise User"},
	GroupSchema:      {"Group", "Group"},
}

// schemaDoc is a schema's definition (RFC 7643 section 7): its attributes
// as usersd keeps them. The common attributes (id, externalId, meta) are
// every resource's and not listed; the attributes usersd accepts and does
// not keep (docs/scim.md) are not listed either.
func schemaDoc(s *schema, base string) map[string]any {
	var attrs []any
	for _, a := range s.attrs {
		switch a.name {
		case "id", "externalId", "meta":
			continue
		}
		if a.ignored {
			continue
		}
		attrs = append(attrs, attributeDoc(a))
	}
	names := schemaNames[s.urn]
	return map[string]any{
		"schemas":     []string{SchemaSchema},
		"id":          s.urn,
		"name":        names[0],
		"description": names[1],
		"attributes":  attrs,
		"meta":        map[string]any{"resourceType": "Schema", "location": base + "/Schemas/" + s.urn},
	}
}

func attributeDoc(a *attribute) map[string]any {
	mut, returned, uniqueness := "readWrite", "default", "none"
	if a.mut == readOnly {
		mut = "readOnly"
	}
	if a.name == "userName" {
		uniqueness = "server"
	}
	doc := map[string]any{
		"name":        a.name,
		"type":        a.typ.String(),
		"multiValued": a.multi,
		"description": a.name,
		"required":    a.required,
		"caseExact":   a.caseExact,
		"mutability":  mut,
		"returned":    returned,
		"uniqueness":  uniqueness,
	}
	if a.typ == typeReference {
		doc["referenceTypes"] = []string{"external"}
		if a.name == "$ref" {
			doc["referenceTypes"] = []string{"User", "Group"}
		}
	}
	if len(a.subs) > 0 {
		var subs []any
		for _, s := range a.subs {
			if !s.ignored {
				sd := attributeDoc(s)
				if a.mut == readOnly {
					sd["mutability"] = "readOnly"
				}
				subs = append(subs, sd)
			}
		}
		doc["subAttributes"] = subs
	}
	return doc
}

func (h *handler) schemas(q *request) error {
	var out []any
	for _, s := range schemasServed() {
		out = append(out, schemaDoc(s, q.base))
	}
	writeJSON(q.w, http.StatusOK, NewListResponse(len(out), 1, out))
	return nil
}

func (h *handler) schema(q *request) error {
	urn := q.r.PathValue("urn")
	for _, s := range schemasServed() {
		if strings.EqualFold(s.urn, urn) {
			writeJSON(q.w, http.StatusOK, schemaDoc(s, q.base))
			return nil
		}
	}
	return &Error{Status: http.StatusNotFound, Detail: "no schema " + truncate(urn)}
}
