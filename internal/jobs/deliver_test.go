package jobs

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/riverqueue/river"

	"github.com/usersd/usersd/internal/users"
)

// TestDeliveryBatches: one job per subscription and up to DeliverBatchSize
// events, subscriptions in the order they first appear, events in theirs,
// every event's first attempt.
func TestDeliveryBatches(t *testing.T) {
	var ds []users.Delivery
	for i := range DeliverBatchSize + 2 {
		ds = append(ds, users.Delivery{WebhookID: "a", EventID: fmt.Sprint("e", i)})
		if i < 2 {
			ds = append(ds, users.Delivery{WebhookID: "b", EventID: fmt.Sprint("e", i)})
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
		DeliverBatchArgs{WebhookID: "a", Events: evs(0, DeliverBatchSize)},
		DeliverBatchArgs{WebhookID: "a", Events: evs(DeliverBatchSize, DeliverBatchSize+2)},
		DeliverBatchArgs{WebhookID: "b", Events: evs(0, 2)},
	}
	if diff := cmp.Diff(want, deliveryBatches(ds)); diff != "" {
		t.Errorf("deliveryBatches (-want +got):\n%s", diff)
	}
	if got := deliveryBatches(nil); len(got) != 0 {
		t.Errorf("deliveryBatches(nil) = %v, want none", got)
	}
}
