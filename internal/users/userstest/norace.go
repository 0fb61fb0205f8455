//go:build !race

package userstest

// RaceEnabled reports whether the race detector is on (see race.go).
const RaceEnabled = false
