package scim

import (
	"strings"

	"github.com/google/uuid"
)

// MemberChanges is what a request does to a group's membership, as lists
// of user ids rather than the membership itself: a group may have 100,000
// members, and a PATCH names a few. The handler applies it after the
// group's own fields, with AddGroupMembers and RemoveGroupMembers in
// batches of at most users.MaxMembersPerCall (slices.Chunk). Both calls
// are idempotent, so a failure part-way can be retried.
//
// The lists are the net effect of the request's operations in order: a
// user added and then removed is in Remove only, and no id is in both
// lists.
type MemberChanges struct {
	// RemoveAll: the request replaced the membership (a PUT, a replace of
	// members, a remove of members without a filter). Every member not in
	// Add goes: the handler pages through ListGroupMembers and removes
	// the others. Remove is then empty.
	RemoveAll bool
	// Add are the users to make members, in the order the request named
	// them.
	Add []string
	// Remove are the users to remove, in the order the request named
	// them.
	Remove []string

	state map[string]int8 // +1 added, -1 removed
	order []string        // ids in the order first named since the last removeAll
}

// IsZero reports whether the request changes no membership.
func (mc *MemberChanges) IsZero() bool {
	return !mc.RemoveAll && len(mc.Add) == 0 && len(mc.Remove) == 0
}

func (mc *MemberChanges) mark(id string, s int8) {
	if mc.state == nil {
		mc.state = map[string]int8{}
	}
	if mc.state[id] == 0 {
		mc.order = append(mc.order, id)
	}
	mc.state[id] = s
}

func (mc *MemberChanges) add(id string)    { mc.mark(id, +1) }
func (mc *MemberChanges) remove(id string) { mc.mark(id, -1) }

func (mc *MemberChanges) removeAll() {
	mc.RemoveAll = true
	mc.state, mc.order = nil, nil
}

// finish computes Add and Remove from the state, once the request's
// operations are applied: one pass over the ids named, however many
// operations named them.
func (mc *MemberChanges) finish() {
	mc.Add, mc.Remove = nil, nil
	for _, id := range mc.order {
		switch mc.state[id] {
		case +1:
			mc.Add = append(mc.Add, id)
		case -1:
			if !mc.RemoveAll {
				mc.Remove = append(mc.Remove, id)
			}
		}
	}
	if len(mc.Add) == 0 {
		mc.Add = nil
	}
	if len(mc.Remove) == 0 {
		mc.Remove = nil
	}
}

// memberID checks a member's value and type: a user id (a UUID, in any
// case, returned in the stored lower-case form), and a type that is
// "User" or absent, since groups hold only users.
func memberID(value, typ, name string) (string, error) {
	if typ != "" && !strings.EqualFold(typ, memberType) {
		return "", invalidValue("%s.type: %q: only users can be members of a group", name, typ)
	}
	id, ok := userID(value)
	if !ok {
		if value == "" {
			return "", invalidValue("%s.value: required", name)
		}
		return "", invalidValue("%s.value: %q is not a user id", name, value)
	}
	return id, nil
}

// userID returns the stored form of a user id given in the 36-character
// hyphenated form of a UUID, in any case.
func userID(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return "", false
	}
	return u.String(), true
}
