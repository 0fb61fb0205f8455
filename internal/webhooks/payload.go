package webhooks

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/usersd/usersd/internal/users"
)

// PayloadVersion is the version of the JSON body that Payload writes, sent
// as its "version" member. Version 1 is:
//
//	{
//	  "version": 1,
//	  "type": "user.updated",
//	  "id": "01890a5d-ac96-774b-bcce-b302099a8057",
//	  "timestamp": "2026-03-04T05:06:07.123456Z",
//	  "data": {
//	    "userId": "01890a5d-ac96-774b-bcce-b302099a8000",
//	    "user": {
//	      "id": "01890a5d-ac96-774b-bcce-b302099a8000",
//	      "email": "ada@example.com",
//	      "displayName": "Ada Lovelace",
//	      "state": "STATE_ACTIVE",
//	      "labels": {"team": "math"},
//	      "createTime": "2026-03-01T00:00:00Z",
//	      "updateTime": "2026-03-04T05:06:07.123456Z",
//	      "deleteTime": null,
//	      "etag": "5f2b6c0e1d3a4b79"
//	    },
//	    "changedPaths": ["displayName", "labels"]
//	  }
//	}
//
// (shown indented; the body is sent compact, members in the order above).
//
//   - type is the users.EventType: user.created, user.updated,
//     user.deleted, user.undeleted or user.purged, or a group event.
//   - id is the event's id, the same as the webhook-id header: the same on
//     every attempt, so receivers deduplicate on it.
//   - timestamp is when the change happened (the event's time, RFC 3339 in
//     UTC), not when this attempt was made (that is webhook-timestamp).
//   - data.userId is the user the event is about, for every type.
//   - data.user is the user as the change left it, with exactly the members
//     and formats of the user in the v1 HTTP API (protojson, unpopulated
//     fields emitted: labels is {} when empty, deleteTime null unless
//     DELETED), followed by the profile members of the v2 user
//     (externalId, givenName, familyName, phoneNumber, emailVerified,
//     phoneVerified, locale, timeZone: "" or false when unset; attributes:
//     an object, or null); it is null for user.purged.
//   - data.changedPaths are the members of data.user that the change set, in
//     the order email, displayName, state, labels, the profile members,
//     deleteTime: each names a
//     member of data.user, so it is lowerCamelCase like them (the event's
//     users.Event.Paths, which are snake_case field mask paths, converted).
//     It is [] for user.created and user.purged, never null.
//   - data.tenant is the id of the user's tenant ("default" for the users
//     of v1 and of the paths without a tenant).
//   - data.groupId is the group of a group event (group.created,
//     group.updated, group.deleted, group.member_added,
//     group.member_removed), absent from user events; data.group is the
//     group as the change left it (as it was, for group.deleted) for the
//     first three, absent otherwise. data.userId is the member of a member event, and ""
//     for the other group events; data.changedPaths of group.updated name
//     members of data.group. Only subscriptions that list group event
//     types receive them.
//
// Within a version, members are only ever added: receivers must ignore
// members they do not know. A change to any existing member's meaning or
// format is a new version.
const PayloadVersion = 1

// payload is the JSON body, version 1. The members are in the order
// documented on PayloadVersion.
type payload struct {
	Version   int         `json:"version"`
	Type      string      `json:"type"`
	ID        string      `json:"id"`
	Timestamp string      `json:"timestamp"`
	Data      payloadData `json:"data"`
}

type payloadData struct {
	UserID       string    `json:"userId"`
	User         *userJSON `json:"user"`
	ChangedPaths []string  `json:"changedPaths"`
	Tenant       string    `json:"tenant"`
	// The group members, added within version 1: on group events only,
	// so the payloads of user events are as they were.
	GroupID string     `json:"groupId,omitempty"`
	Group   *groupJSON `json:"group,omitempty"`
}

// groupJSON is a group as the v2 HTTP API shows it, its name aside:
// id, displayName, externalId, description, memberCount (a string, as
// protojson writes int64), createTime, updateTime, etag.
type groupJSON struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	ExternalID  string `json:"externalId"`
	Description string `json:"description"`
	MemberCount string `json:"memberCount"`
	CreateTime  string `json:"createTime"`
	UpdateTime  string `json:"updateTime"`
	Etag        string `json:"etag"`
}

// userJSON is a user as the v1 HTTP API shows it: users.v1.User through
// protojson with EmitUnpopulated.
type userJSON struct {
	ID          string            `json:"id"`
	Email       string            `json:"email"`
	DisplayName string            `json:"displayName"`
	State       string            `json:"state"`
	Labels      map[string]string `json:"labels"`
	CreateTime  string            `json:"createTime"`
	UpdateTime  string            `json:"updateTime"`
	DeleteTime  *string           `json:"deleteTime"`
	Etag        string            `json:"etag"`
	// The profile members, added within version 1.
	ExternalID    string          `json:"externalId"`
	GivenName     string          `json:"givenName"`
	FamilyName    string          `json:"familyName"`
	PhoneNumber   string          `json:"phoneNumber"`
	EmailVerified bool            `json:"emailVerified"`
	PhoneVerified bool            `json:"phoneVerified"`
	Locale        string          `json:"locale"`
	TimeZone      string          `json:"timeZone"`
	Attributes    json.RawMessage `json:"attributes"`
}

// stateNames are the names of users.v1.User.State, by users.State.
var stateNames = [...]string{"STATE_UNSPECIFIED", "STATE_ACTIVE", "STATE_SUSPENDED", "STATE_DELETED"}

// Payload returns the JSON body of the webhook of ev, in the format of
// PayloadVersion. It fails only if ev has no id, or one that contains a
// '.', which the signature scheme does not allow (events' ids are UUIDs).
func Payload(ev users.Event) ([]byte, error) {
	if err := checkEventID(ev.ID); err != nil {
		return nil, err
	}
	p := payload{
		Version:   PayloadVersion,
		Type:      string(ev.Type),
		ID:        ev.ID,
		Timestamp: timestamp(ev.Time),
		Data: payloadData{
			UserID:       ev.UserID,
			ChangedPaths: make([]string, len(ev.Paths)),
			Tenant:       ev.Tenant,
			GroupID:      ev.GroupID,
		},
	}
	if g := ev.Group; g != nil {
		p.Data.Group = &groupJSON{
			ID: g.ID, DisplayName: g.DisplayName, ExternalID: g.ExternalID, Description: g.Description,
			MemberCount: strconv.FormatInt(g.MemberCount, 10),
			CreateTime:  timestamp(g.CreateTime), UpdateTime: timestamp(g.UpdateTime), Etag: g.Etag(),
		}
	}
	for i, path := range ev.Paths {
		p.Data.ChangedPaths[i] = lowerCamel(path)
	}
	if u := ev.User; u != nil {
		j := &userJSON{
			ID:          u.ID,
			Email:       u.Email,
			DisplayName: u.DisplayName,
			State:       stateNames[0],
			Labels:      u.Labels,
			CreateTime:  timestamp(u.CreateTime),
			UpdateTime:  timestamp(u.UpdateTime),
			Etag:        u.Etag(),

			ExternalID:    u.ExternalID,
			GivenName:     u.GivenName,
			FamilyName:    u.FamilyName,
			PhoneNumber:   u.PhoneNumber,
			EmailVerified: u.EmailVerified,
			PhoneVerified: u.PhoneVerified,
			Locale:        u.Locale,
			TimeZone:      u.TimeZone,
			Attributes:    json.RawMessage("null"),
		}
		if u.Attributes != nil {
			j.Attributes = u.Attributes
		}
		if u.State >= 0 && int(u.State) < len(stateNames) {
			j.State = stateNames[u.State]
		}
		if j.Labels == nil {
			j.Labels = map[string]string{}
		}
		if !u.DeleteTime.IsZero() {
			dt := timestamp(u.DeleteTime)
			j.DeleteTime = &dt
		}
		p.Data.User = j
	}
	return json.Marshal(p)
}

// checkEventID reports whether id may be a webhook-id: the signed content
// is "<id>.<timestamp>.<body>", so an id with a '.' would be ambiguous.
func checkEventID(id string) error {
	if id == "" || strings.Contains(id, ".") {
		return fmt.Errorf("%w: event id %q: must be non-empty, without '.'", ErrInvalidTarget, id)
	}
	return nil
}

// timestamp formats t as protojson formats a google.protobuf.Timestamp:
// RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits.
func timestamp(t time.Time) string {
	t = t.UTC()
	switch ns := t.Nanosecond(); {
	case ns == 0:
		return t.Format("2006-01-02T15:04:05Z")
	case ns%1e6 == 0:
		return t.Format("2006-01-02T15:04:05.000Z")
	case ns%1e3 == 0:
		return t.Format("2006-01-02T15:04:05.000000Z")
	default:
		return t.Format("2006-01-02T15:04:05.000000000Z")
	}
}

// lowerCamel returns the snake_case path s in lowerCamelCase, as protojson
// names fields: "display_name" becomes "displayName".
func lowerCamel(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	upper := false
	for _, r := range s {
		switch {
		case r == '_':
			upper = true
		case upper:
			b.WriteString(strings.ToUpper(string(r)))
			upper = false
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
