package usersql

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/usersd/usersd/internal/users"
)

// eventUser is the stored form of the user snapshot of an event: a JSON
// object both stores keep in events.snapshot. Its fields must only ever be
// added, since events outlive releases.
type eventUser struct {
	ID          string            `json:"id"`
	Email       string            `json:"email"`
	DisplayName string            `json:"display_name"`
	State       string            `json:"state"`
	Labels      map[string]string `json:"labels,omitempty"`
	// The profile fields, left out when unset: snapshots stored before
	// profiles existed read as users without them.
	ExternalID    string          `json:"external_id,omitempty"`
	GivenName     string          `json:"given_name,omitempty"`
	FamilyName    string          `json:"family_name,omitempty"`
	PhoneNumber   string          `json:"phone_number,omitempty"`
	EmailVerified bool            `json:"email_verified,omitempty"`
	PhoneVerified bool            `json:"phone_verified,omitempty"`
	Locale        string          `json:"locale,omitempty"`
	TimeZone      string          `json:"time_zone,omitempty"`
	Attributes    json.RawMessage `json:"attributes,omitempty"`
	CreateTime    time.Time       `json:"create_time"`
	UpdateTime    time.Time       `json:"update_time"`
	DeleteTime    *time.Time      `json:"delete_time,omitempty"`
	Revision      int64           `json:"revision"`
}

// EncodeEventUser returns the snapshot of u that an event stores, with its
// times in UTC at microsecond precision.
func EncodeEventUser(u *users.User) ([]byte, error) {
	e := eventUser{
		ID:          u.ID,
		Email:       u.Email,
		DisplayName: u.DisplayName,
		State:       u.State.String(),
		Labels:      u.Labels,
		CreateTime:  users.Truncate(u.CreateTime),
		UpdateTime:  users.Truncate(u.UpdateTime),
		Revision:    u.Revision,

		ExternalID:    u.ExternalID,
		GivenName:     u.GivenName,
		FamilyName:    u.FamilyName,
		PhoneNumber:   u.PhoneNumber,
		EmailVerified: u.EmailVerified,
		PhoneVerified: u.PhoneVerified,
		Locale:        u.Locale,
		TimeZone:      u.TimeZone,
		Attributes:    u.Attributes,
	}
	if !u.DeleteTime.IsZero() {
		t := users.Truncate(u.DeleteTime)
		e.DeleteTime = &t
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("user %s: snapshot: %w", u.ID, err)
	}
	return b, nil
}

// DecodeEventUser reads a snapshot that EncodeEventUser wrote. The user
// reads back as GetUser would return it: times in UTC, nil for no labels,
// the zero time for no delete time.
func DecodeEventUser(b []byte) (*users.User, error) {
	var e eventUser
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("stored snapshot: %w", err)
	}
	state, ok := users.ParseState(e.State)
	if !ok {
		return nil, fmt.Errorf("stored snapshot of user %s: state %q", e.ID, e.State)
	}
	u := &users.User{
		ID:          e.ID,
		Email:       e.Email,
		DisplayName: e.DisplayName,
		State:       state,
		Labels:      e.Labels,
		CreateTime:  e.CreateTime.UTC(),
		UpdateTime:  e.UpdateTime.UTC(),
		Revision:    e.Revision,
		Profile: users.Profile{
			ExternalID:    e.ExternalID,
			GivenName:     e.GivenName,
			FamilyName:    e.FamilyName,
			PhoneNumber:   e.PhoneNumber,
			EmailVerified: e.EmailVerified,
			PhoneVerified: e.PhoneVerified,
			Locale:        e.Locale,
			TimeZone:      e.TimeZone,
		},
	}
	if len(e.Attributes) > 0 {
		// Postgres keeps the snapshot as jsonb, which spells objects
		// its own way: back to the one form of users.NormalizeAttributes.
		a, err := users.NormalizeAttributes("attributes", e.Attributes)
		if err != nil {
			return nil, fmt.Errorf("stored snapshot of user %s: %w", e.ID, err)
		}
		u.Attributes = a
	}
	if len(u.Labels) == 0 {
		u.Labels = nil
	}
	if e.DeleteTime != nil {
		u.DeleteTime = e.DeleteTime.UTC()
	}
	return u, nil
}

// eventGroup is the stored form of the group snapshot of a group event
// (group.created, group.updated, group.deleted), in events.snapshot as the
// user's is. Its fields, like eventUser's, must only ever be added. The
// tenant is the event's.
type eventGroup struct {
	ID          string    `json:"id"`
	DisplayName string    `json:"display_name"`
	ExternalID  string    `json:"external_id,omitempty"`
	Description string    `json:"description,omitempty"`
	MemberCount int64     `json:"member_count"`
	CreateTime  time.Time `json:"create_time"`
	UpdateTime  time.Time `json:"update_time"`
	Revision    int64     `json:"revision"`
}

// EncodeEventGroup returns the snapshot of g that a group event stores,
// with its times in UTC at microsecond precision.
func EncodeEventGroup(g *users.Group) ([]byte, error) {
	b, err := json.Marshal(eventGroup{
		ID:          g.ID,
		DisplayName: g.DisplayName,
		ExternalID:  g.ExternalID,
		Description: g.Description,
		MemberCount: g.MemberCount,
		CreateTime:  users.Truncate(g.CreateTime),
		UpdateTime:  users.Truncate(g.UpdateTime),
		Revision:    g.Revision,
	})
	if err != nil {
		return nil, fmt.Errorf("group %s: snapshot: %w", g.ID, err)
	}
	return b, nil
}

// DecodeEventGroup reads a snapshot that EncodeEventGroup wrote. The group
// reads back as GetGroup would return it, but for its Tenant, which is the
// event's (see DecodeEventSnapshot).
func DecodeEventGroup(b []byte) (*users.Group, error) {
	var e eventGroup
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("stored snapshot: %w", err)
	}
	return &users.Group{
		ID:          e.ID,
		DisplayName: e.DisplayName,
		ExternalID:  e.ExternalID,
		Description: e.Description,
		MemberCount: e.MemberCount,
		CreateTime:  e.CreateTime.UTC(),
		UpdateTime:  e.UpdateTime.UTC(),
		Revision:    e.Revision,
	}, nil
}

// EventSnapshot returns the stored snapshot of ev: its group's for the
// group events that carry one, its user's for the user events but
// user.purged, and nil for the events that carry neither (user.purged,
// the member events).
func EventSnapshot(ev *users.Event) ([]byte, error) {
	switch {
	case ev.Group != nil:
		return EncodeEventGroup(ev.Group)
	case ev.User != nil:
		return EncodeEventUser(ev.User)
	}
	return nil, nil
}

// DecodeEventSnapshot sets ev.User or ev.Group, by ev.Type, from a
// snapshot that EventSnapshot returned for an event of that type, with
// ev.Tenant as its tenant. ev.Type and ev.Tenant must be set.
func DecodeEventSnapshot(ev *users.Event, b []byte) error {
	if ev.Type.IsGroupEvent() {
		g, err := DecodeEventGroup(b)
		if err != nil {
			return fmt.Errorf("event %s: %w", ev.ID, err)
		}
		g.Tenant = ev.Tenant
		ev.Group = g
		return nil
	}
	u, err := DecodeEventUser(b)
	if err != nil {
		return fmt.Errorf("event %s: %w", ev.ID, err)
	}
	u.Tenant = ev.Tenant
	ev.User = u
	return nil
}
