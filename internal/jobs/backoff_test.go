package jobs

import (
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
)

// TestBackoff: each retry waits twice as long as the one before, from the
// base up to the cap, within ±10% jitter.
func TestBackoff(t *testing.T) {
	b := backoff{base: 100 * time.Millisecond, max: 2 * time.Second}
	for errs, want := range []time.Duration{100, 200, 400, 800, 1600, 2000, 2000} {
		want *= time.Millisecond
		job := &rivertype.JobRow{Errors: make([]rivertype.AttemptError, errs)}
		for range 50 {
			got := time.Until(b.NextRetry(job))
			if got < want*89/100 || got > want*111/100 {
				t.Fatalf("after %d errors: retry in %v, want %v ±10%%", errs, got, want)
			}
		}
	}
	huge := &rivertype.JobRow{Errors: make([]rivertype.AttemptError, 200)}
	if got := time.Until(b.NextRetry(huge)); got > b.max*111/100 || got < b.max*89/100 {
		t.Errorf("after 200 errors: retry in %v, want the cap %v", got, b.max)
	}
}
