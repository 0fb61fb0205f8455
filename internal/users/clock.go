package users

import "time"

// Now returns the current time as the stores keep it: UTC, truncated to
// microseconds.
func Now() time.Time { return Truncate(time.Now()) }

// Truncate returns t in UTC at microsecond precision, the precision both
// stores keep.
func Truncate(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
