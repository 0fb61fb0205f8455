package jobs_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/usersd/usersd/internal/jobs"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/webhooks"
)

// TestLegacyDeliveryJob: a deliver_webhook job (one event), as a release
// before batched deliveries left it in the queue, is delivered as a batch
// of one, and its attempt recorded.
func TestLegacyDeliveryJob(t *testing.T) {
	forEachDatabase(t, testLegacyDeliveryJob, testLegacyDeliveryJob)
}

func testLegacyDeliveryJob[TTx any](t *testing.T, h *harness[TTx]) {
	ctx := t.Context()
	var got atomic.Value // the webhook-id received
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("webhook-id"))
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rcv.Close)
	q := h.newQueue(t, fast(nil))
	svc := users.NewService(h.store(q), users.Config{})
	if _, err := svc.Create(ctx, users.CreateRequest{User: &users.User{Email: "legacy@example.com", DisplayName: "Legacy"}}); err != nil {
		t.Fatal(err)
	}
	var ev users.Event
	for deadline := time.Now().Add(5 * time.Second); ; {
		page, err := svc.ListEvents(ctx, users.DefaultTenant, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Events) == 1 {
			ev = page.Events[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the feed holds %d events, want the user's one", len(page.Events))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The dispatcher is past the event, which only the old job delivers.
	if err := svc.SetSinkPosition(ctx, "webhooks", ev.Pos); err != nil {
		t.Fatal(err)
	}
	hook, err := svc.CreateWebhook(ctx, users.WebhookRequest{URL: rcv.URL, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.inTx(ctx, true, func(tx TTx) error { return jobs.InsertLegacyDeliveryTx(ctx, q, tx, hook.ID, ev.ID) }); err != nil {
		t.Fatal(err)
	}
	d, err := webhooks.NewDeliverer(webhooks.Config{AllowPrivate: true, Rate: rate.Inf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	start(t, q, svc, jobs.Deps{Deliverer: d})

	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		as, err := svc.ListDeliveryAttempts(ctx, users.DefaultTenant, hook.ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(as) > 0 {
			if len(as) != 1 || as[0].EventID != ev.ID || !as[0].Success || as[0].Attempt != 1 {
				t.Errorf("attempts %+v, want one successful first attempt of %s", as, ev.ID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no attempt recorded within 10 s")
		}
	}
	if id, _ := got.Load().(string); id != ev.ID {
		t.Errorf("the receiver got webhook-id %q, want %s", id, ev.ID)
	}
}
