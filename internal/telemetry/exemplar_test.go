package telemetry

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// TestExemplarGate checks that the gate gives a sampled span's trace id at
// most once per interval, and never an unsampled one.
func TestExemplarGate(t *testing.T) {
	tid := trace.TraceID{1, 2, 3}
	span := func(flags trace.TraceFlags) context.Context {
		return trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: tid, SpanID: trace.SpanID{4}, TraceFlags: flags,
		}))
	}
	sampled, unsampled := span(trace.FlagsSampled), span(0)

	g := exemplarGate{interval: time.Hour}
	if got := g.exemplar(unsampled); got != nil {
		t.Errorf("unsampled span: exemplar %v, want none", got)
	}
	if got := g.exemplar(context.Background()); got != nil {
		t.Errorf("no span: exemplar %v, want none", got)
	}
	if got := g.exemplar(sampled)["trace_id"]; got != tid.String() {
		t.Errorf("first sampled span: exemplar trace_id %q, want %s", got, tid)
	}
	for range 3 {
		if got := g.exemplar(sampled); got != nil {
			t.Errorf("within the interval: exemplar %v, want none", got)
		}
	}
	g.next.Store(time.Now().Add(-time.Second).UnixNano()) // the interval has passed
	if got := g.exemplar(sampled); got == nil {
		t.Error("after the interval: no exemplar, want one")
	}
}
