//go:build race

package userstest

// RaceEnabled reports whether the race detector is on. It slows the
// stores' code tenfold or more, and changes what the heap holds: the tests
// that measure memory on many users (TestExportMany) use fewer, and leave
// the heap unmeasured.
const RaceEnabled = true
