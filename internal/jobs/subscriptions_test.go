package jobs

import (
	"testing"
	"time"
)

// TestSubscriptionJobs: a fast subscription runs any number of jobs; once
// its attempts take slowLatency on average, it runs at most half of the
// workers' jobs, and the jobs over that count leave, one at a time, until
// it is back within its share; faster attempts make it fast again.
func TestSubscriptionJobs(t *testing.T) {
	s := newSubscriptions(8, backoff{base: time.Second, max: time.Hour})
	now := time.Now()
	for i := range 6 {
		if ok, only := s.start("a"); !ok || only != (i == 0) {
			t.Fatalf("job %d of a: ok %v, only %v; want ok, only for the first", i, ok, only)
		}
	}
	if s.leave("a") {
		t.Error("a job of a fast subscription left")
	}
	s.record("a", now, 100*time.Millisecond, false, 0, false)
	s.record("a", now, 5*time.Second, false, 0, false) // 0.1 + 0.2*(5-0.1) = 1.08 s
	if !s.m["a"].slow() {
		t.Fatalf("average %v s: not slow", s.m["a"].latency)
	}
	if ok, _ := s.start("a"); ok {
		t.Error("a seventh job of a slow subscription runs: want at most 4 of 8 workers")
	}
	left := 0
	for range 6 {
		if s.leave("a") {
			left++
		}
	}
	if left != 2 || s.m["a"].jobs != 4 {
		t.Errorf("%d jobs left, %d run; want 2 and 4", left, s.m["a"].jobs)
	}
	if ok, only := s.start("b"); !ok || !only {
		t.Errorf("b's first job: ok %v, only %v; want both", ok, only)
	}
	s.done("b")
	for range 10 {
		s.record("a", now, 10*time.Millisecond, false, 0, false)
	}
	if s.m["a"].slow() {
		t.Errorf("average %v s after fast attempts: still slow", s.m["a"].latency)
	}
	if ok, _ := s.start("a"); !ok {
		t.Error("a fast subscription's fifth job does not run")
	}
	for range 5 {
		s.done("a")
	}
	if len(s.m) != 0 {
		t.Errorf("%d subscriptions kept with nothing to remember", len(s.m))
	}
	if one := newSubscriptions(1, backoff{}); one.maxJobs != 1 {
		t.Errorf("one worker: a slow subscription may run %d jobs, want 1", one.maxJobs)
	}
}

// TestCircuit: tripAfter retryable failures in a row open the circuit for
// the backoff; then one probe goes while the other events wait; a failed
// probe opens it for twice as long (a Retry-After for longer, up to
// maxOpen), and an answer closes it.
func TestCircuit(t *testing.T) {
	s := newSubscriptions(8, backoff{base: time.Second, max: time.Hour})
	now := time.Now()
	s.start("a")
	defer s.done("a")
	for i := range tripAfter - 1 {
		s.record("a", now, 0, true, 0, false)
		if adm, _ := s.admit("a", now); adm != admitted {
			t.Fatalf("after %d failures: admission %v, want admitted", i+1, adm)
		}
	}
	s.record("a", now, 0, false, 0, false) // an answer (say a 400): the receiver is up
	for range tripAfter - 1 {
		s.record("a", now, 0, true, 0, false)
	}
	if adm, _ := s.admit("a", now); adm != admitted {
		t.Fatalf("failures in a row cut by an answer open the circuit: %v", adm)
	}
	s.record("a", now, 0, true, 0, false)
	adm, until := s.admit("a", now)
	// The backoff has ±10% jitter.
	if adm != putOff || until.Before(now.Add(900*time.Millisecond)) || until.After(now.Add(1100*time.Millisecond)) {
		t.Fatalf("after %d failures in a row: %v until %v, want put off for about 1s", tripAfter, adm, until.Sub(now))
	}
	if got := s.open("a", now); !got.Equal(until) {
		t.Errorf("open() = %v, want %v", got.Sub(now), until.Sub(now))
	}
	// More failures of attempts in flight do not extend it.
	s.record("a", now, 0, true, 0, false)
	if _, again := s.admit("a", now); !again.Equal(until) {
		t.Errorf("a failure while open moved the wait to %v", again.Sub(now))
	}

	later := until.Add(time.Millisecond)
	if adm, _ := s.admit("a", later); adm != probe {
		t.Fatalf("after the wait: %v, want a probe", adm)
	}
	if adm, until := s.admit("a", later); adm != probeWaits || !until.Equal(later.Add(probeWait)) {
		t.Errorf("while the probe is in flight: %v until %v, want the others to wait %v", adm, until.Sub(later), probeWait)
	}
	if got := s.open("a", later); !got.Equal(later.Add(probeWait)) {
		t.Errorf("while the probe is in flight, open() = %v, want %v", got.Sub(later), probeWait)
	}
	s.record("a", later, 0, true, 0, true)
	adm, until = s.admit("a", later)
	if adm != putOff || until.Before(later.Add(1800*time.Millisecond)) || until.After(later.Add(2200*time.Millisecond)) {
		t.Fatalf("after a failed probe: %v until %v, want put off for about 2s", adm, until.Sub(later))
	}

	// A probe that was not made lets the next one go.
	later = until.Add(time.Millisecond)
	if adm, _ := s.admit("a", later); adm != probe {
		t.Fatal("no probe after the second wait")
	}
	s.abandon("a")
	if adm, _ := s.admit("a", later); adm != probe {
		t.Fatal("no probe after one was abandoned")
	}
	// A Retry-After longer than the backoff sets the wait, up to maxOpen.
	s.record("a", later, 0, true, time.Hour, true)
	if _, until := s.admit("a", later); !until.Equal(later.Add(maxOpen)) {
		t.Errorf("after a probe answered Retry-After: 1h: open for %v, want %v", until.Sub(later), maxOpen)
	}

	later = later.Add(maxOpen + time.Millisecond)
	if adm, _ := s.admit("a", later); adm != probe {
		t.Fatal("no probe after the longest wait")
	}
	s.record("a", later, 0, false, 0, true)
	if adm, _ := s.admit("a", later); adm != admitted {
		t.Errorf("after a probe succeeded: %v, want admitted", adm)
	}
	if got := s.open("a", later); !got.IsZero() {
		t.Errorf("after a probe succeeded, open() = %v", got)
	}
}
