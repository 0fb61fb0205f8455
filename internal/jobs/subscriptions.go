package jobs

import (
	"sync"
	"time"
)

// Circuit settings of a subscription on one replica (subscriptions).
const (
	// tripAfter is how many retryable failures in a row, on this replica,
	// open a subscription's circuit. A receiver that fails one attempt in
	// three reaches it about once in 60,000 attempts.
	tripAfter = 10
	// maxOpen bounds how long a circuit stays open before a probe: a
	// receiver that is back is found within it.
	maxOpen = 30 * time.Second
	// probeWait is how long the jobs of a subscription wait while another
	// job's probe is in flight.
	probeWait = time.Second
	// busyWait is how long a delivery job waits when its subscription
	// runs its share of this replica's delivery jobs already.
	busyWait = 250 * time.Millisecond
	// slowLatency is the average time of a subscription's attempts from
	// which it is slow, and kept to its share of the workers.
	slowLatency = time.Second
	// latencyWeight is the weight of an attempt's time in the average.
	latencyWeight = 0.2
)

// subscriptions is what one replica keeps of each subscription it
// delivers to: the delivery jobs it runs for it, bounded once it is slow
// so that it cannot hold every worker, and its circuit. A subscription is
// slow while its attempts take slowLatency or more on average (a moving
// average); a fast one may run any number of jobs, since they are soon
// done, but once it is slow its jobs over half of the workers give their
// remaining events back to the queue. A receiver that
// keeps failing (timeouts, connection errors, 5xx, 429) opens the circuit:
// its events are put off, without an attempt, until the circuit's wait is
// over, and then one attempt, the probe, decides: a success closes the
// circuit, a failure opens it again for twice as long (up to maxOpen). So
// a receiver that is down or timing out costs one attempt per wait, not
// one per event, and no worker waits on it for long.
type subscriptions struct {
	maxJobs int     // delivery jobs of one subscription running at once
	retry   backoff // the waits of an open circuit

	mu sync.Mutex
	m  map[string]*subscription
}

// subscription is the state of one subscription on this replica.
type subscription struct {
	jobs      int       // its delivery jobs running
	latency   float64   // moving average of its attempts' times, in seconds
	failures  int       // retryable failed attempts in a row
	opens     int       // the circuit's openings in a row
	openUntil time.Time // the circuit is open until then
	probing   bool      // a probe is in flight
}

// slow reports whether the subscription's attempts take slowLatency or
// more on average.
func (sub *subscription) slow() bool { return sub.latency >= slowLatency.Seconds() }

// admission says whether a job may deliver a subscription's events.
type admission int

const (
	admitted   admission = iota // the circuit is closed: deliver
	probe                       // the circuit's wait is over: deliver one event first
	putOff                      // the circuit is open: put the events off until it may close
	probeWaits                  // another job's probe is in flight: wait for it
)

func newSubscriptions(workers int, retry backoff) *subscriptions {
	return &subscriptions{maxJobs: max(1, workers/2), retry: retry, m: map[string]*subscription{}}
}

// start counts a delivery job of the subscription id in and reports
// whether it may run (not when the subscription is slow and runs its
// share of the workers already), and whether it is the subscription's only
// one running; a job that may not run must not call done.
func (s *subscriptions) start(id string) (ok, only bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.m[id]
	if sub == nil {
		sub = &subscription{}
		s.m[id] = sub
	}
	if sub.slow() && sub.jobs >= s.maxJobs {
		return false, false
	}
	sub.jobs++
	return true, sub.jobs == 1
}

// leave reports whether a running job of id is one too many, the
// subscription being slow: if so it counts the job out at once (the job
// must then give its remaining events back and not call done).
func (s *subscriptions) leave(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.m[id]
	if !sub.slow() || sub.jobs <= s.maxJobs {
		return false
	}
	sub.jobs--
	return true
}

// done counts a delivery job of id out; a subscription with nothing left
// to remember is forgotten.
func (s *subscriptions) done(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.m[id]
	sub.jobs--
	if sub.jobs == 0 && sub.failures == 0 && sub.opens == 0 && !sub.slow() {
		delete(s.m, id)
	}
}

// admit says whether a job of id that starts at now may deliver, and
// until when an open circuit puts events off. A probe must be followed
// by record (or by abandon if it was not made).
func (s *subscriptions) admit(id string, now time.Time) (admission, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.m[id]
	switch {
	case sub.openUntil.After(now):
		return putOff, sub.openUntil
	case sub.opens == 0:
		return admitted, time.Time{}
	case sub.probing:
		return probeWaits, now.Add(probeWait)
	}
	sub.probing = true
	return probe, time.Time{}
}

// open reports until when an event of id that is not a probe is put off at
// now; zero when it may go. Only a probe goes while the circuit is not
// closed, open or not.
func (s *subscriptions) open(id string, now time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch sub := s.m[id]; {
	case sub.openUntil.After(now):
		return sub.openUntil
	case sub.opens > 0:
		return now.Add(probeWait)
	}
	return time.Time{}
}

// record applies the outcome of an attempt to id, made at now and taking
// took: a retryable failure (retry), with the receiver's Retry-After if
// any, or an answer (a 2xx, or a 4xx it will not change its mind about).
// It opens the circuit after tripAfter retryable failures in a row or a
// failed probe, and closes it on an answer.
func (s *subscriptions) record(id string, now time.Time, took time.Duration, retry bool, retryAfter time.Duration, wasProbe bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.m[id]
	if sub.latency == 0 {
		sub.latency = took.Seconds()
	} else {
		sub.latency += latencyWeight * (took.Seconds() - sub.latency)
	}
	if wasProbe {
		sub.probing = false
	}
	if !retry {
		sub.failures, sub.opens, sub.openUntil = 0, 0, time.Time{}
		return
	}
	sub.failures++
	if (sub.failures < tripAfter && !wasProbe) || sub.openUntil.After(now) {
		return
	}
	wait := min(max(s.retry.after(sub.opens), retryAfter), maxOpen)
	sub.opens++
	sub.openUntil = now.Add(wait)
}

// abandon ends a probe that was not made.
func (s *subscriptions) abandon(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[id].probing = false
}
