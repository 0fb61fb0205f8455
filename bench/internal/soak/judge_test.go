package soak

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// series returns n samples of base + slope*i with noise drawn uniformly
// from ±noise, the same for every run.
func series(n int, base, slope, noise float64) []float64 {
	r := rand.New(rand.NewPCG(1, 2))
	vs := make([]float64, n)
	for i := range vs {
		vs[i] = base + slope*float64(i) + (r.Float64()*2-1)*noise
	}
	return vs
}

// busy returns n samples of a count that work in flight adds to: base +
// slope*i, plus, in seven samples of ten, up to burst more.
func busy(n int, base, slope, burst float64) []float64 {
	r := rand.New(rand.NewPCG(3, 4))
	vs := make([]float64, n)
	for i := range vs {
		vs[i] = base + slope*float64(i)
		if r.IntN(10) < 7 {
			vs[i] += math.Round(r.Float64() * burst)
		}
	}
	return vs
}

func TestJudge(t *testing.T) {
	rss := Tolerance{Frac: 0.25, Abs: 16}
	goroutines := Tolerance{Abs: 10}
	spike := series(120, 100, 0, 2)
	for i := 50; i < 60; i++ {
		spike[i] = 400 // an import in the middle: not growth
	}
	lastOutlier := series(120, 100, 0, 2)
	lastOutlier[119] = 1000 // one bad sample at the end: the median ignores it
	withGaps := series(120, 100, 0.2, 0)
	for i := 0; i < 120; i += 7 {
		withGaps[i] = math.NaN()
	}
	for _, tc := range []struct {
		name     string
		values   []float64
		stat     Stat
		tol      Tolerance
		wantGrew bool
	}{
		{"flat noisy RSS", series(120, 80, 0, 20), Median, rss, false},
		{"RSS leaking 1 MiB a sample", series(120, 80, 1, 5), Median, rss, true},
		{"RSS creeping within the tolerance", series(120, 80, 0.1, 2), Median, rss, false},
		{"spike in the middle", spike, Median, goroutines, false},
		{"one outlier at the end", lastOutlier, Median, goroutines, false},
		{"goroutines leaking one per 5 samples", series(120, 100, 0.2, 1), Median, goroutines, true},
		{"goroutines back to where they were", series(120, 100, 0, 3), Median, goroutines, false},
		{"shrinking", series(120, 100, -0.5, 3), Median, goroutines, false},
		{"NaN samples skipped, leak still seen", withGaps, Median, goroutines, true},
		{"busy, no leak: floor", busy(120, 110, 0, 60), Floor, goroutines, false},
		{"busy, leaking one per 5 samples: floor", busy(120, 110, 0.2, 60), Floor, goroutines, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Judge(tc.values, Window(len(tc.values), 12), tc.stat, tc.tol)
			if err != nil {
				t.Fatalf("Judge: %v", err)
			}
			if v.Grew != tc.wantGrew {
				t.Errorf("Judge = %+v, Grew = %v, want %v", v, v.Grew, tc.wantGrew)
			}
			if v.Allowed != tc.tol.Allowed(v.Start) {
				t.Errorf("Allowed = %v, want %v", v.Allowed, tc.tol.Allowed(v.Start))
			}
		})
	}
}

func TestJudgeMedians(t *testing.T) {
	// First window 1,2,100 (median 2); last window 5,7,6 (median 6).
	vs := []float64{1, 2, 100, 50, 50, 50, 5, 7, 6}
	v, err := Judge(vs, 3, Median, Tolerance{Abs: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := Verdict{Start: 2, End: 6, Allowed: 5, Window: 3, Grew: true}
	if v != want {
		t.Errorf("Judge(%v) = %+v, want %+v", vs, v, want)
	}
	if v, _ := Judge(vs, 3, Median, Tolerance{Abs: 4}); v.Grew {
		t.Errorf("Judge(%v, +4) = %+v, want no growth (6 <= 2+4)", vs, v)
	}
	if v, _ := Judge(vs, 3, Median, Tolerance{Frac: 1, Abs: 2.5}); v.Grew || v.Allowed != 6.5 {
		t.Errorf("Judge(%v, +100%% +2.5) = %+v, want allowed 6.5, no growth", vs, v)
	}
	// Floors: 1 at the start, 5 at the end.
	want = Verdict{Start: 1, End: 5, Allowed: 4, Window: 3, Grew: true}
	if v, _ := Judge(vs, 3, Floor, Tolerance{Abs: 3}); v != want {
		t.Errorf("Judge(%v, floor) = %+v, want %+v", vs, v, want)
	}
}

// TestJudgeFloorBeatsMedian is why counts are judged by their floor: a
// window busier at the end than at the start raises the median of a count
// past its margin without any leak; the floor stays.
func TestJudgeFloorBeatsMedian(t *testing.T) {
	vs := append(busy(60, 110, 0, 20), busy(60, 110, 0, 80)...)
	tol := Tolerance{Abs: 10}
	if v, _ := Judge(vs, 12, Median, tol); !v.Grew {
		t.Fatalf("Judge(median) = %+v: the example does not show what it should (the median should grow)", v)
	}
	if v, _ := Judge(vs, 12, Floor, tol); v.Grew {
		t.Errorf("Judge(floor) = %+v, want no growth", v)
	}
}

func TestJudgeTooFew(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []float64
		w      int
	}{
		{"fewer than three windows", []float64{1, 2, 3, 4, 5}, 2},
		{"NaNs do not count", []float64{1, math.NaN(), 3, math.NaN(), 5, 6}, 2},
		{"no window", []float64{1, 2, 3}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Judge(tc.values, tc.w, Median, Tolerance{}); !errors.Is(err, ErrTooFew) {
				t.Errorf("Judge(%v, %d) err = %v, want ErrTooFew", tc.values, tc.w, err)
			}
		})
	}
}

func TestWindow(t *testing.T) {
	for _, tc := range []struct{ n, max, want int }{
		{120, 6, 6},
		{18, 6, 6},
		{12, 6, 4},
		{9, 6, 3},
		{8, 6, 0},
		{0, 6, 0},
	} {
		if got := Window(tc.n, tc.max); got != tc.want {
			t.Errorf("Window(%d, %d) = %d, want %d", tc.n, tc.max, got, tc.want)
		}
	}
}

func TestMedian(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("Median(3,1,2) = %v, want 2", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("Median(4,1,3,2) = %v, want 2.5", got)
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %v, want NaN", got)
	}
}
