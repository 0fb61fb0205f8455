package webhooks_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine, such as a
// connection kept open by a Deliverer or a receiver's handler, outlives
// them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
