package telemetry_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/usersd/usersd/internal/telemetry"
)

// recordingWriter records each Write it is given, as a batch.
type recordingWriter struct {
	mu      sync.Mutex
	batches []string
}

func (w *recordingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.batches = append(w.batches, string(p))
	return len(p), nil
}

func (w *recordingWriter) get() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.batches...)
}

// TestLogBufferBatches shows that info lines wait for the interval and
// then go out in one write, in order.
func TestLogBufferBatches(t *testing.T) {
	const interval = 50 * time.Millisecond
	out := &recordingWriter{}
	b := telemetry.NewLogBuffer(out, interval)
	defer b.Close()
	log := zerolog.New(b)
	start := time.Now()
	for i := range 3 {
		log.Info().Int("n", i).Msg("line")
	}
	// Checked only while the interval has not passed, so that a test
	// descheduled for longer does not fail for it.
	if got := out.get(); len(got) != 0 && time.Since(start) < interval {
		t.Fatalf("written before the interval: %q", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(out.get()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	want := `{"level":"info","n":0,"message":"line"}` + "\n" +
		`{"level":"info","n":1,"message":"line"}` + "\n" +
		`{"level":"info","n":2,"message":"line"}` + "\n"
	if got := out.get(); len(got) != 1 || got[0] != want {
		t.Fatalf("batches %q, want one: %q", got, want)
	}
}

// TestLogBufferWarnAtOnce shows that a line at warn level or above is
// written at once, with the lines before it.
func TestLogBufferWarnAtOnce(t *testing.T) {
	for _, level := range []zerolog.Level{zerolog.WarnLevel, zerolog.ErrorLevel} {
		out := &recordingWriter{}
		b := telemetry.NewLogBuffer(out, time.Hour)
		log := zerolog.New(b)
		log.Info().Msg("before")
		log.WithLevel(level).Msg("now")
		got := out.get()
		want := `{"level":"info","message":"before"}` + "\n" + fmt.Sprintf(`{"level":"%s","message":"now"}`, level) + "\n"
		if len(got) != 1 || got[0] != want {
			t.Errorf("%s: batches %q, want one: %q", level, got, want)
		}
		b.Close()
	}
}

// TestLogBufferFull shows that a batch is written once it is large,
// without waiting for the interval.
func TestLogBufferFull(t *testing.T) {
	out := &recordingWriter{}
	b := telemetry.NewLogBuffer(out, time.Hour)
	defer b.Close()
	line := strings.Repeat("x", 1023) + "\n"
	for range 64 {
		b.Write([]byte(line))
	}
	got := out.get()
	if len(got) != 1 || len(got[0]) != 64*1024 {
		t.Fatalf("%d batches (first %d bytes), want one of 64 KiB", len(got), len(firstOr(got)))
	}
}

func firstOr(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// TestLogBufferClose shows that Close writes what is left, and that lines
// after it go straight through.
func TestLogBufferClose(t *testing.T) {
	out := &recordingWriter{}
	b := telemetry.NewLogBuffer(out, time.Hour)
	b.Write([]byte("a\n"))
	b.Write([]byte("b\n"))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b.Write([]byte("c\n"))
	if got, want := out.get(), []string{"a\nb\n", "c\n"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("batches %q, want %q", got, want)
	}
}

// TestLogBufferUnbuffered shows that an interval of zero writes each line
// as it comes.
func TestLogBufferUnbuffered(t *testing.T) {
	out := &recordingWriter{}
	b := telemetry.NewLogBuffer(out, 0)
	b.Write([]byte("a\n"))
	b.Write([]byte("b\n"))
	if got, want := out.get(), []string{"a\n", "b\n"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("batches %q, want %q", got, want)
	}
}

// TestLogBufferConcurrent writes lines from many goroutines and checks
// that every line comes out whole, once.
func TestLogBufferConcurrent(t *testing.T) {
	var out bytes.Buffer
	var mu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return out.Write(p)
	})
	b := telemetry.NewLogBuffer(w, time.Millisecond)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				fmt.Fprintf(b, "g%d-%d\n", g, i)
			}
		})
	}
	wg.Wait()
	b.Close()
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if seen[l] {
			t.Fatalf("line %q twice", l)
		}
		seen[l] = true
	}
	if len(seen) != 8*500 {
		t.Fatalf("%d lines, want %d", len(seen), 8*500)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
