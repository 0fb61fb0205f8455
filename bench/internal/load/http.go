package load

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// HTTPTarget is one kind of request: its method, its URL and body for the
// i-th request, and the status that counts as success.
type HTTPTarget struct {
	Method string
	URL    func(i int) string
	Body   func(i int) []byte // nil: no body
	Want   int
}

// HTTPConfig bounds a run.
type HTTPConfig struct {
	// Concurrency is the number of requests in flight (closed loop), or
	// the number of workers that serve the schedule when Rate is set.
	Concurrency int
	// Duration is how long new requests are started.
	Duration time.Duration
	// Rate, when not zero, makes the run open-loop: requests are started
	// at this many per second whether or not earlier ones have finished,
	// and each latency counts from the request's scheduled start, so a
	// server that falls behind shows it (no coordinated omission).
	Rate float64
}

// NewHTTPClient returns a client for n concurrent requests to one host,
// each on its own kept-alive connection.
func NewHTTPClient(n int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        n,
			MaxIdleConnsPerHost: n,
			MaxConnsPerHost:     n,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
		Timeout: 30 * time.Second,
	}
}

// RunHTTP sends requests for t with client until cfg.Duration has passed
// (requests in flight then finish and count) or ctx ends.
func RunHTTP(ctx context.Context, client *http.Client, t HTTPTarget, cfg HTTPConfig) (Result, error) {
	if cfg.Concurrency < 1 {
		return Result{}, fmt.Errorf("load: concurrency %d", cfg.Concurrency)
	}
	var (
		mu       sync.Mutex
		lat      = make([]time.Duration, 0, 1<<16)
		errs     int
		firstErr string
		next     int
	)
	record := func(d time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs++
			if firstErr == "" {
				firstErr = err.Error()
			}
			return
		}
		lat = append(lat, d)
	}
	seq := func() int {
		mu.Lock()
		defer mu.Unlock()
		next++
		return next - 1
	}
	do := func(i int) error {
		var body io.Reader
		if t.Body != nil {
			body = bytes.NewReader(t.Body(i))
		}
		req, err := http.NewRequestWithContext(ctx, t.Method, t.URL(i), body)
		if err != nil {
			return err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != t.Want {
			return fmt.Errorf("%s %s: status %d, want %d", t.Method, req.URL.Path, resp.StatusCode, t.Want)
		}
		return nil
	}

	start := time.Now()
	deadline := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	if cfg.Rate <= 0 {
		for range cfg.Concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil && time.Now().Before(deadline) {
					t0 := time.Now()
					err := do(seq())
					record(time.Since(t0), err)
				}
			}()
		}
	} else {
		// The schedule: one start time per request, at the rate.
		sched := make(chan time.Time, 1<<16)
		go func() {
			defer close(sched)
			interval := time.Duration(float64(time.Second) / cfg.Rate)
			for at := start; at.Before(deadline); at = at.Add(interval) {
				if d := time.Until(at); d > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(d):
					}
				}
				sched <- at
			}
		}()
		for range cfg.Concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for at := range sched {
					if ctx.Err() != nil {
						continue
					}
					err := do(seq())
					record(time.Since(at), err)
				}
			}()
		}
	}
	wg.Wait()
	r := Result{Tool: ToolHTTP, Elapsed: time.Since(start), Errors: errs, FirstErr: firstErr}
	summarise(&r, lat)
	return r, ctx.Err()
}
