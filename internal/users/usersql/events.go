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

// EventSnapshot returns the stored snapshot of ev's user, or nil when the
// event has none (user.purged).
func EventSnapshot(ev *users.Event) ([]byte, error) {
	if ev.User == nil {
		return nil, nil
	}
	return EncodeEventUser(ev.User)
}
