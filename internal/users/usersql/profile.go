package usersql

import (
	"fmt"

	"github.com/usersd/usersd/internal/users"
)

// ProfileColumns are the columns of a user's profile (users.Profile), in
// the order of ProfileRow.Dest; WriteColumns adds the search key, in the
// order of ProfileArgs.
const (
	ProfileColumns = "external_id, given_name, family_name, phone_number, email_verified, phone_verified, locale, time_zone, attributes"
	WriteColumns   = ProfileColumns + ", search_key"
)

// ProfileArgs returns the values of WriteColumns for u: NULL for no
// external id, "{}" for no attributes, and u's users.SearchKey.
func ProfileArgs(u *users.User) []any {
	var ext any
	if u.ExternalID != "" {
		ext = u.ExternalID
	}
	attrs := "{}"
	if u.Attributes != nil {
		attrs = string(u.Attributes)
	}
	p := &u.Profile
	return []any{ext, p.GivenName, p.FamilyName, p.PhoneNumber, p.EmailVerified, p.PhoneVerified,
		p.Locale, p.TimeZone, attrs, users.SearchKey(u)}
}

// ProfileRow holds the ProfileColumns of one user as both drivers scan
// them.
type ProfileRow struct {
	ExternalID    *string
	GivenName     string
	FamilyName    string
	PhoneNumber   string
	EmailVerified bool
	PhoneVerified bool
	Locale        string
	TimeZone      string
	Attributes    []byte
}

// Dest returns the scan destinations of ProfileColumns.
func (r *ProfileRow) Dest() []any {
	return []any{&r.ExternalID, &r.GivenName, &r.FamilyName, &r.PhoneNumber, &r.EmailVerified, &r.PhoneVerified,
		&r.Locale, &r.TimeZone, &r.Attributes}
}

// Profile returns the row's profile. Attributes that the database may
// have respelled (Postgres's jsonb orders keys its own way and adds
// spaces) are put back in users.NormalizeAttributes' form when respelled
// is set; "{}" is no attributes.
func (r *ProfileRow) Profile(respelled bool) (users.Profile, error) {
	p := users.Profile{
		GivenName: r.GivenName, FamilyName: r.FamilyName, PhoneNumber: r.PhoneNumber,
		EmailVerified: r.EmailVerified, PhoneVerified: r.PhoneVerified, Locale: r.Locale, TimeZone: r.TimeZone,
	}
	if r.ExternalID != nil {
		p.ExternalID = *r.ExternalID
	}
	if len(r.Attributes) > 0 && string(r.Attributes) != "{}" {
		p.Attributes = append([]byte(nil), r.Attributes...) // the driver may reuse its buffer
		if respelled {
			a, err := users.NormalizeAttributes("attributes", p.Attributes)
			if err != nil {
				return p, fmt.Errorf("stored attributes: %w", err)
			}
			p.Attributes = a
		}
	}
	return p, nil
}
