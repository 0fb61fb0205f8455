package jobs

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/riverqueue/river"

	"github.com/usersd/usersd/internal/users"
)

// TestDeliveryBatches: one job per subscription and up to DeliverBatchSize
// events, subscriptions in the order they first appear, events in theirs,
// every event's first attempt, and the time of each job's oldest event.
func TestDeliveryBatches(t *testing.T) {
	base := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	at := func(i int) time.Time {
		if i == 1 { // out of order: the oldest of its batches, not the first
			return base.Add(-time.Minute)
		}
		return base.Add(time.Duration(i) * time.Second)
	}
	var ds []users.Delivery
	for i := range DeliverBatchSize + 2 {
		ds = append(ds, users.Delivery{WebhookID: "a", EventID: fmt.Sprint("e", i), Time: at(i)})
		if i < 2 {
			ds = append(ds, users.Delivery{WebhookID: "b", EventID: fmt.Sprint("e", i), Time: at(i)})
		}
	}
	evs := func(from, to int) []BatchedEvent {
		var out []BatchedEvent
		for i := from; i < to; i++ {
			out = append(out, BatchedEvent{ID: fmt.Sprint("e", i), Attempt: 1})
		}
		return out
	}
	want := []river.JobArgs{
		DeliverBatchArgs{WebhookID: "a", Events: evs(0, DeliverBatchSize), Since: at(1).UnixMilli()},
		DeliverBatchArgs{WebhookID: "a", Events: evs(DeliverBatchSize, DeliverBatchSize+2), Since: at(DeliverBatchSize).UnixMilli()},
		DeliverBatchArgs{WebhookID: "b", Events: evs(0, 2), Since: at(1).UnixMilli()},
	}
	if diff := cmp.Diff(want, deliveryBatches(ds)); diff != "" {
		t.Errorf("deliveryBatches (-want +got):\n%s", diff)
	}
	if got := deliveryBatches(nil); len(got) != 0 {
		t.Errorf("deliveryBatches(nil) = %v, want none", got)
	}
}

// TestRetryBatch: a batch of failed events waits for the latest of their
// waits; one of events put off by the rate limit, for the earliest.
func TestRetryBatch(t *testing.T) {
	var failed, limited retryBatch
	for i, wait := range []time.Duration{2 * time.Second, 5 * time.Second, time.Second} {
		ev := BatchedEvent{ID: fmt.Sprint("e", i), Attempt: 2}
		failed.add(ev, wait, true)
		limited.add(ev, wait, false)
	}
	if failed.wait != 5*time.Second || len(failed.events) != 3 {
		t.Errorf("failed: %d events waiting %v, want 3 waiting 5s", len(failed.events), failed.wait)
	}
	if limited.wait != time.Second || len(limited.events) != 3 {
		t.Errorf("limited: %d events waiting %v, want 3 waiting 1s", len(limited.events), limited.wait)
	}
}
