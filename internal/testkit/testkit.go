// Package testkit provides what the tests of several packages share:
// Eventually, which waits for a condition, and Scrape and ScrapeURL, which
// read a Prometheus /metrics page. The fake job queue of the stores' tests
// is userstest.Queue. Only tests import this package.
package testkit

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// PollInterval is how often Eventually checks its condition.
const PollInterval = 10 * time.Millisecond

// Eventually checks cond every PollInterval until it holds, and fails the
// test with "after <limit>: <what>" when limit passes first. cond runs in
// the test's goroutine; it is checked at least once.
func Eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", limit, what)
		}
		time.Sleep(PollInterval)
	}
}

// OpenMetrics is the Accept header that asks for the OpenMetrics format
// (with exemplars) rather than Prometheus's text format.
const OpenMetrics = "application/openmetrics-text; version=1.0.0; charset=utf-8"

// Scrape GETs /metrics from h, in the request's goroutine, with the Accept
// header accept ("" for none), and returns the body. It fails the test
// unless the status is 200 and the Content-Type is the format asked for:
// OpenMetrics when accept asks for it, Prometheus's text format otherwise.
func Scrape(t testing.TB, h http.Handler, accept string) string {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return check(t, rec.Result(), "/metrics", accept)
}

// ScrapeURL is Scrape for a server of its own (another process's admin
// port, for example): it GETs url with http.DefaultClient.
func ScrapeURL(t testing.TB, url, accept string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return check(t, res, url, accept)
}

// check reads and closes res's body and checks the status and format.
func check(t testing.TB, res *http.Response, url, accept string) string {
	t.Helper()
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", url, err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, body:\n%s", url, res.StatusCode, body)
	}
	wantType := "text/plain"
	if strings.HasPrefix(accept, "application/openmetrics-text") {
		wantType = "application/openmetrics-text"
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, wantType) {
		t.Fatalf("GET %s with Accept %q: Content-Type %q, want %s", url, accept, ct, wantType)
	}
	return string(body)
}
