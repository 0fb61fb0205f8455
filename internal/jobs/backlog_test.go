package jobs_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/usersd/usersd/internal/jobs"
	"github.com/usersd/usersd/internal/users"
)

// TestWebhookBacklogs: a subscription's backlog is the events of its
// delivery jobs that are waiting or running, as old as the oldest of them;
// a finished job no longer counts, an event in two jobs counts once, and a
// job of the single-event kind counts one event, as old as the job.
func TestWebhookBacklogs(t *testing.T) {
	forEachDatabase(t, testWebhookBacklogs, testWebhookBacklogs)
}

func testWebhookBacklogs[TTx any](t *testing.T, h *harness[TTx]) {
	q := h.newQueue(t, fast(nil))
	ctx := t.Context()
	const a, b, c = "0194d0a0-0000-7000-8000-00000000000a", "0194d0a0-0000-7000-8000-00000000000b", "0194d0a0-0000-7000-8000-00000000000c"
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond).UTC()
	var ds []users.Delivery
	for i := range jobs.DeliverBatchSize + 50 {
		ds = append(ds, users.Delivery{WebhookID: a, EventID: fmt.Sprintf("ea%d", i), Time: base.Add(time.Duration(i) * time.Second)})
	}
	for i := range 3 {
		ds = append(ds, users.Delivery{WebhookID: b, EventID: fmt.Sprintf("eb%d", i), Time: base.Add(time.Duration(10-i) * time.Minute)})
	}
	before := time.Now()
	err := h.inTx(ctx, true, func(tx TTx) error {
		if err := q.EnqueueDeliveriesTx(ctx, tx, ds); err != nil {
			return err
		}
		return jobs.InsertLegacyDeliveryTx(ctx, q, tx, c, "0194d0a0-0000-7000-8000-0000000000e1")
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := q.WebhookBacklogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Errorf("backlogs of %d subscriptions, want 3: %v", len(got), got)
	}
	want := map[string]users.WebhookBacklog{
		a: {Events: jobs.DeliverBatchSize + 50, Oldest: base},
		b: {Events: 3, Oldest: base.Add(8 * time.Minute)},
	}
	for id, w := range want {
		if g := got[id]; g.Events != w.Events || !g.Oldest.Equal(w.Oldest) {
			t.Errorf("backlog of %s = %+v, want %+v", id, g, w)
		}
	}
	// The single-event job: one event, as old as the job (the database's
	// clock, to the millisecond).
	if g := got[c]; g.Events != 1 || g.Oldest.Before(before.Add(-2*time.Second)) || g.Oldest.After(time.Now().Add(2*time.Second)) {
		t.Errorf("backlog of %s = %+v, want one event from about %v", c, g, before)
	}
	if age := got[a].Age(base.Add(time.Minute)); age != time.Minute {
		t.Errorf("age of %s's backlog a minute after its oldest event: %v", a, age)
	}

	// The first job of a (its first DeliverBatchSize events) is done.
	h.exec(t, `UPDATE river_job SET state = 'completed', finalized_at = created_at
		WHERE id = (SELECT min(id) FROM river_job WHERE kind = 'deliver_webhook_batch')`)
	got, err = q.WebhookBacklogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g := got[a]; g.Events != 50 || !g.Oldest.Equal(base.Add(jobs.DeliverBatchSize*time.Second)) {
		t.Errorf("after its first job: backlog of %s = %+v, want 50 events from %v", a, g, base.Add(jobs.DeliverBatchSize*time.Second))
	}

	// A job with events of another that is still running (it inserted
	// the one with its events to try again, and River has not recorded it
	// completed yet): each event counts once.
	err = h.inTx(ctx, true, func(tx TTx) error { return q.EnqueueDeliveriesTx(ctx, tx, ds[jobs.DeliverBatchSize:]) })
	if err != nil {
		t.Fatal(err)
	}
	got, err = q.WebhookBacklogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g := got[a]; g.Events != 50 {
		t.Errorf("with its events in two jobs: backlog of %s = %+v, want 50 events", a, g)
	}
	if g := got[b]; g.Events != 3 {
		t.Errorf("with its events in two jobs: backlog of %s = %+v, want 3 events", b, g)
	}
	if (users.WebhookBacklog{}).Age(time.Now()) != 0 {
		t.Error("an empty backlog has an age")
	}
}
