package testkit_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/usersd/usersd/internal/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder is a testing.TB whose Fatal stops only the goroutine that runs
// the helper, so that a test can look at the failure.
type recorder struct {
	testing.TB
	failure string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatal(args ...any) {
	r.failure = fmt.Sprint(args...)
	runtime.Goexit()
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failure = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls f with a recorder in a goroutine of its own and returns the
// failure, "" when there was none.
func run(f func(t testing.TB)) string {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.failure
}

func TestEventually(t *testing.T) {
	calls := 0
	if got := run(func(t testing.TB) {
		testkit.Eventually(t, 5*time.Second, "never three", func() bool { calls++; return calls == 3 })
	}); got != "" || calls != 3 {
		t.Errorf("Eventually of a condition true at the third call: failure %q after %d calls, want none after 3", got, calls)
	}

	start := time.Now()
	got := run(func(t testing.TB) {
		testkit.Eventually(t, 50*time.Millisecond, "the flag is still down", func() bool { return false })
	})
	if want := "after 50ms: the flag is still down"; got != want {
		t.Errorf("Eventually of a condition never true: failure %q, want %q", got, want)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("Eventually gave up after %v, before its limit", d)
	}
}

func TestScrape(t *testing.T) {
	metrics := func(contentType string, status int) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.WriteHeader(status)
			fmt.Fprintf(w, "# accept %s\nup 1\n", r.Header.Get("Accept"))
		})
	}
	const text = "text/plain; version=0.0.4; charset=utf-8"
	const om = "application/openmetrics-text; version=1.0.0; charset=utf-8"
	for _, tt := range []struct {
		name        string
		h           http.Handler
		accept      string
		wantFailure string // a part of it; "" for none
	}{
		{"text", metrics(text, 200), "", ""},
		{"openmetrics", metrics(om, 200), testkit.OpenMetrics, ""},
		{"text when openmetrics asked", metrics(text, 200), testkit.OpenMetrics, "want application/openmetrics-text"},
		{"openmetrics when text asked", metrics(om, 200), "", "want text/plain"},
		{"status", metrics(text, 503), "", "status 503"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.h)
			defer srv.Close()
			for name, scrape := range map[string]func(testing.TB) string{
				"Scrape":    func(t testing.TB) string { return testkit.Scrape(t, tt.h, tt.accept) },
				"ScrapeURL": func(t testing.TB) string { return testkit.ScrapeURL(t, srv.URL+"/metrics", tt.accept) },
			} {
				var body string
				failure := run(func(t testing.TB) { body = scrape(t) })
				switch {
				case tt.wantFailure == "" && failure != "":
					t.Errorf("%s failed: %s", name, failure)
				case tt.wantFailure == "" && body != "# accept "+tt.accept+"\nup 1\n":
					t.Errorf("%s = %q, want the handler's body", name, body)
				case tt.wantFailure != "" && !strings.Contains(failure, tt.wantFailure):
					t.Errorf("%s failure = %q, want one with %q", name, failure, tt.wantFailure)
				}
			}
		})
	}
}
