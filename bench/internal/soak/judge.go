// Package soak judges whether the figures of a long run grew: the resident
// memory, heap, goroutines, file descriptors and database connections of a
// process under a steady load, and its latency. A figure sampled every few
// seconds is noisy (a collection just ran or is due, requests are in
// flight, a neighbour took the CPU), so the start and the end each sum up
// a window of samples (their median, or their floor for counts that work
// in flight adds to), and growth counts only past a tolerance made of a
// fraction of the start and an absolute margin.
package soak

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Tolerance is the growth a figure may show before it counts: the end may
// be at most Start*(1+Frac) + Abs.
type Tolerance struct {
	Frac float64 // fraction of the start
	Abs  float64 // absolute margin, in the figure's unit
}

// Allowed returns the largest end that start tolerates.
func (t Tolerance) Allowed(start float64) float64 {
	return start*(1+t.Frac) + t.Abs
}

// String says the tolerance the way the report prints it.
func (t Tolerance) String() string {
	switch {
	case t.Frac == 0:
		return fmt.Sprintf("+%g", t.Abs)
	case t.Abs == 0:
		return fmt.Sprintf("+%g%%", t.Frac*100)
	}
	return fmt.Sprintf("+%g%% +%g", t.Frac*100, t.Abs)
}

// Stat sums up a window of samples.
type Stat int

const (
	// Median suits figures that move around a level: memory, latency.
	Median Stat = iota
	// Floor, the smallest sample, suits counts that the work in flight
	// adds to and a leak raises for good: goroutines, file descriptors,
	// connections. Requests, deliveries and jobs in flight come and go; a
	// window long enough to hold a quiet moment shows what stays.
	Floor
)

func (s Stat) String() string {
	if s == Floor {
		return "floor"
	}
	return "median"
}

func (s Stat) of(xs []float64) float64 {
	if s == Floor {
		return slices.Min(xs)
	}
	return median(xs)
}

// Verdict is the judgement of one figure.
type Verdict struct {
	Start, End float64 // the Stat of the first and last Window samples
	Allowed    float64 // the largest End that Start tolerates
	Window     int     // samples in each median
	Grew       bool    // End > Allowed
}

// ErrTooFew is returned when a series has too few samples to judge.
var ErrTooFew = errors.New("soak: too few samples to judge")

// Window returns how many samples each end's median takes from a series of
// n: up to max, but never more than a third of n, so the start and end
// windows are apart by at least one window; at least 3. It returns 0 when
// n is below 9, too few to judge.
func Window(n, max int) int {
	w := min(max, n/3)
	if w < 3 {
		return 0
	}
	return w
}

// Judge compares the stat of the first w samples of values with that of
// the last w. Samples that are NaN (a scrape that failed) are left out
// first. It returns ErrTooFew when fewer than 3w samples remain.
func Judge(values []float64, w int, stat Stat, tol Tolerance) (Verdict, error) {
	vs := make([]float64, 0, len(values))
	for _, v := range values {
		if !math.IsNaN(v) {
			vs = append(vs, v)
		}
	}
	if w < 1 || len(vs) < 3*w {
		return Verdict{}, fmt.Errorf("%w: %d samples, window %d", ErrTooFew, len(vs), w)
	}
	v := Verdict{Window: w, Start: stat.of(vs[:w]), End: stat.of(vs[len(vs)-w:])}
	v.Allowed = tol.Allowed(v.Start)
	v.Grew = v.End > v.Allowed
	return v, nil
}

// median returns the median of xs (the mean of the middle two when their
// number is even), NaN when xs is empty. xs is not changed.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
