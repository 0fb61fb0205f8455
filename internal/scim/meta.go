package scim

import (
	"strings"
	"time"
)

// Meta is a resource's metadata (RFC 7643 section 3.1). The times are the
// domain's create and update times; Version is the domain's etag as a weak
// HTTP entity tag, the form a handler also sends as ETag and receives in
// If-Match (users.UpdateRequest.Etag accepts it as it is).
type Meta struct {
	ResourceType string    `json:"resourceType,omitempty"`
	Created      time.Time `json:"created,omitzero"`
	LastModified time.Time `json:"lastModified,omitzero"`
	Location     string    `json:"location,omitempty"`
	Version      string    `json:"version,omitempty"`
}

// version returns the entity tag of an etag: W/"<etag>". It is weak
// because usersd's etags version a resource's fields, not its bytes.
func version(etag string) string { return `W/"` + etag + `"` }

// location returns the URL of the resource of type rt with the id under
// base, the tenant's SCIM service; "" when base or id is.
func location(base string, rt *resourceType, id string) string {
	if base == "" || id == "" {
		return ""
	}
	return strings.TrimRight(base, "/") + "/" + rt.endpoint + "/" + id
}

// toDoc returns the meta attribute of a document. Times are written as
// RFC 3339 with their fraction, as filters compare them.
func (m *Meta) toDoc() map[string]any {
	if m == nil {
		return nil
	}
	out := map[string]any{}
	putString(out, "resourceType", m.ResourceType)
	if !m.Created.IsZero() {
		out["created"] = m.Created.Format(time.RFC3339Nano)
	}
	if !m.LastModified.IsZero() {
		out["lastModified"] = m.LastModified.Format(time.RFC3339Nano)
	}
	putString(out, "location", m.Location)
	putString(out, "version", m.Version)
	return out
}

// metaFromDoc is the inverse of toDoc.
func metaFromDoc(doc map[string]any) *Meta {
	if doc == nil {
		return nil
	}
	m := &Meta{
		ResourceType: getString(doc, "resourceType"), Location: getString(doc, "location"), Version: getString(doc, "version"),
	}
	m.Created, _ = time.Parse(time.RFC3339Nano, getString(doc, "created"))
	m.LastModified, _ = time.Parse(time.RFC3339Nano, getString(doc, "lastModified"))
	return m
}
