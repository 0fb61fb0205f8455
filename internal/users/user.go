package users

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"time"
)

// State is where a user is in its lifecycle.
type State int

// The lifecycle states. The numbers match users.v1.User.State and are stored
// as text, so they may be renumbered without a migration.
const (
	StateUnspecified State = iota
	StateActive
	StateSuspended
	StateDeleted
)

var stateNames = [...]string{"STATE_UNSPECIFIED", "ACTIVE", "SUSPENDED", "DELETED"}

// String returns the state's short name, the form stored in the database.
func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return "STATE_UNSPECIFIED"
	}
	return stateNames[s]
}

// ParseState reads a state name, with or without the "STATE_" prefix and in
// any case. It reports false for unknown names and for the unspecified state.
func ParseState(s string) (State, bool) {
	s = strings.TrimPrefix(strings.ToUpper(s), "STATE_")
	for i, n := range stateNames[1:] {
		if s == n {
			return State(i + 1), true
		}
	}
	return StateUnspecified, false
}

// User is a person known to the system.
type User struct {
	// Tenant is the id of the tenant the user belongs to.
	Tenant      string
	ID          string
	Email       string
	DisplayName string
	State       State
	Labels      map[string]string
	// Profile holds the profile fields (v2 only).
	Profile
	CreateTime time.Time
	UpdateTime time.Time
	DeleteTime time.Time // zero unless State is StateDeleted
	// Revision counts the changes made to the user; stores bump it on every
	// update. It is the source of the etag.
	Revision int64
}

// EmailKey is the form of an email address used to compare addresses:
// two users' addresses are the same when their keys are equal.
func EmailKey(email string) string { return strings.ToLower(email) }

// Etag returns the user's opaque version string (AIP-154). It changes with
// every update.
func (u *User) Etag() string {
	var buf [64]byte // ids are 36 bytes: the hash's input stays on the stack
	sum := sha256.Sum256(binary.BigEndian.AppendUint64(append(buf[:0], u.ID...), uint64(u.Revision)))
	return hex.EncodeToString(sum[:8])
}

// Clone returns a deep copy of u.
func (u *User) Clone() *User {
	c := *u
	if u.Labels != nil {
		c.Labels = make(map[string]string, len(u.Labels))
		for k, v := range u.Labels {
			c.Labels[k] = v
		}
	}
	return &c
}
