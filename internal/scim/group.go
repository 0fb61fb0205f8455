package scim

import (
	"fmt"
	"strings"

	"github.com/usersd/usersd/internal/users"
)

// Group is a SCIM Group resource (RFC 7643 section 4.2): displayName and
// externalId are the domain group's; members are its users. A group's
// description has no SCIM attribute and is left as it is.
type Group struct {
	Schemas     []string `json:"schemas"`
	ID          string   `json:"id,omitempty"`
	ExternalID  string   `json:"externalId,omitempty"`
	DisplayName string   `json:"displayName"`
	// Members is filled by the handler when it answers with members (a
	// group may have 100,000: identity providers ask with
	// excludedAttributes=members, and PATCH never reads them).
	Members []Member `json:"members,omitempty"`
	Meta    *Meta    `json:"meta,omitempty"`
}

// Member is one member of a group: Value is the user's id. Display is
// accepted and not kept; usersd does not fill it (it would cost a read of
// every member).
type Member struct {
	Value   string `json:"value"`
	Ref     string `json:"$ref,omitempty"`
	Display string `json:"display,omitempty"`
	Type    string `json:"type,omitempty"`
}

// memberType is the only type of member usersd's groups have: groups do
// not nest.
const memberType = "User"

// GroupFromDomain returns the SCIM resource of a group, with members when
// the handler read them (nil leaves the attribute out). base is as
// UserFromDomain's.
func GroupFromDomain(g *users.Group, members []users.GroupMember, base string) *Group {
	out := &Group{
		Schemas:     []string{GroupSchema},
		ID:          g.ID,
		ExternalID:  g.ExternalID,
		DisplayName: g.DisplayName,
		Meta: &Meta{
			ResourceType: groupType.name, Created: g.CreateTime.UTC(), LastModified: g.UpdateTime.UTC(),
			Location: location(base, groupType, g.ID), Version: version(g.Etag()),
		},
	}
	if len(members) > 0 {
		out.Members = make([]Member, len(members))
		for i, m := range members {
			out.Members[i] = Member{Value: m.UserID, Ref: location(base, userType, m.UserID), Type: memberType}
		}
	}
	return out
}

// DecodeGroup reads a Group from a POST or PUT body, by the rules of
// DecodeUser.
func DecodeGroup(body []byte) (*Group, error) {
	doc, err := decodeResource(groupType, body)
	if err != nil {
		return nil, err
	}
	return groupFromDoc(doc), nil
}

// ToDomain returns the group that g describes, as Service.CreateGroup
// takes it. Its members are added afterwards (MemberIDs).
func (g *Group) ToDomain() (*users.Group, error) {
	if strings.TrimSpace(g.DisplayName) == "" {
		return nil, invalidValue("displayName: required")
	}
	return &users.Group{DisplayName: g.DisplayName, ExternalID: g.ExternalID}, nil
}

// GroupUpdate is the input of Service.UpdateGroup: the group with its new
// fields, the mask of those that change, and the etag it was read with.
type GroupUpdate struct {
	Group *users.Group
	Paths []string
	Etag  string
}

// UpdateRequest returns the Service.UpdateGroup input that makes prev the
// group g describes (its members aside: see ReplaceMembers and
// Patch.ApplyToGroup), conditional on prev's etag; changed is false when
// no field would change.
func (g *Group) UpdateRequest(prev *users.Group) (up GroupUpdate, changed bool, err error) {
	next, err := g.ToDomain()
	if err != nil {
		return up, false, err
	}
	next.ID, next.Tenant, next.Description = prev.ID, prev.Tenant, prev.Description
	var paths []string
	if next.DisplayName != prev.DisplayName {
		paths = append(paths, "display_name")
	}
	if next.ExternalID != prev.ExternalID {
		paths = append(paths, "external_id")
	}
	if len(paths) == 0 {
		return up, false, nil
	}
	return GroupUpdate{Group: next, Paths: paths, Etag: prev.Etag()}, true, nil
}

// MemberIDs returns the ids of g's members, checked (each a user id, in
// any case; only users are members) and without repeats, for
// AddGroupMembers after a create.
func (g *Group) MemberIDs() ([]string, error) {
	var mc MemberChanges
	for i, m := range g.Members {
		id, err := memberID(m.Value, m.Type, fmt.Sprintf("members[%d]", i))
		if err != nil {
			return nil, err
		}
		mc.add(id)
	}
	mc.finish()
	return mc.Add, nil
}

// ReplaceMembers returns the member changes of a PUT: every member goes,
// and g's members are added (RFC 7644 section 3.5.1: a PUT replaces every
// value, and a group without members has none).
func (g *Group) ReplaceMembers() (*MemberChanges, error) {
	ids, err := g.MemberIDs()
	if err != nil {
		return nil, err
	}
	mc := &MemberChanges{}
	mc.removeAll()
	for _, id := range ids {
		mc.add(id)
	}
	mc.finish()
	return mc, nil
}

// toDoc returns g as a document, without its members: filters and PATCH
// act on members through the membership index and MemberChanges, never on
// a group's whole membership.
func (g *Group) toDoc() map[string]any {
	doc := map[string]any{}
	putString(doc, "id", g.ID)
	putString(doc, "externalId", g.ExternalID)
	putString(doc, "displayName", g.DisplayName)
	putMap(doc, "meta", g.Meta.toDoc())
	return doc
}

// groupFromDoc returns the Group of a document, its members included when
// the document has them (a body's).
func groupFromDoc(doc map[string]any) *Group {
	g := &Group{
		Schemas:     []string{GroupSchema},
		ID:          getString(doc, "id"),
		ExternalID:  getString(doc, "externalId"),
		DisplayName: getString(doc, "displayName"),
		Meta:        metaFromDoc(getMap(doc, "meta")),
	}
	for _, e := range getList(doc, "members") {
		if m, ok := e.(map[string]any); ok {
			g.Members = append(g.Members, Member{
				Value: getString(m, "value"), Ref: getString(m, "$ref"), Display: getString(m, "display"), Type: getString(m, "type"),
			})
		}
	}
	return g
}
