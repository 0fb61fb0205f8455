package postgres_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usersd/usersd/internal/postgres"
	"github.com/usersd/usersd/internal/postgres/pgtest"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

func TestDispatchEventsWithoutJobs(t *testing.T) {
	s, _ := newStore(t)
	_, err := s.DispatchEvents(context.Background(), 10)
	if err == nil || !strings.Contains(err.Error(), "no job queue configured") {
		t.Errorf("DispatchEvents without jobs err = %v, want no job queue configured", err)
	}
}

// TestDispatchEventsConcurrent runs several dispatchers, as several
// replicas would, while users are created: every (event, webhook) pair is
// enqueued exactly once.
func TestDispatchEventsConcurrent(t *testing.T) {
	ctx := context.Background()
	s, jobs := newStoreWithJobs(t)
	var hooks []*users.Webhook
	for i := range 3 {
		w, err := s.CreateWebhook(ctx, userstest.NewWebhook(i))
		if err != nil {
			t.Fatal(err)
		}
		hooks = append(hooks, w)
	}

	const writers, perWriter, dispatchers = 4, 40, 4
	var (
		wg, dwg    sync.WaitGroup
		dispatched [dispatchers]int
		errs       = make(chan error, writers+dispatchers)
	)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				if _, err := s.CreateUser(ctx, userstest.NewUser(w*1000+i), nil); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for d := range dispatchers {
		dwg.Go(func() {
			deadline := time.Now().Add(30 * time.Second)
			// Each dispatcher goes on until every pair is enqueued.
			for {
				n, err := s.DispatchEvents(ctx, 7)
				if err != nil {
					errs <- err
					return
				}
				dispatched[d] += n
				if len(jobs.Deliveries()) >= writers*perWriter*len(hooks) || time.Now().After(deadline) {
					return
				}
				if n == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	dwg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	seen := map[users.Delivery]int{}
	events := map[string]bool{}
	for _, d := range jobs.Deliveries() {
		seen[d]++
		events[d.EventID] = true
	}
	for d, n := range seen {
		if n != 1 {
			t.Errorf("event %s enqueued %d times to webhook %s, want once", d.EventID, n, d.WebhookID)
		}
	}
	if len(events) != writers*perWriter || len(seen) != writers*perWriter*len(hooks) {
		t.Errorf("%d distinct deliveries of %d events, want %d of %d", len(seen), len(events), writers*perWriter*len(hooks), writers*perWriter)
	}
	busy := 0
	for _, n := range dispatched {
		if n > 0 {
			busy++
		}
	}
	t.Logf("events read per dispatcher: %v", dispatched)
	if busy < 2 {
		t.Logf("only %d dispatcher read events: the test did not exercise a race", busy)
	}
}

// TestDispatchEventsWaitsForConcurrent holds one dispatch in its enqueue
// and starts another: the second waits for the first, then dispatches
// nothing if the first committed, or the same events if it rolled back.
func TestDispatchEventsWaitsForConcurrent(t *testing.T) {
	boom := errors.New("queue unavailable")
	for _, tt := range []struct {
		name       string
		firstErr   error
		secondRead int
	}{
		{"first commits", nil, 0},
		{"first rolls back", boom, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			pool := newPool(t, pgtest.NewMigratedDatabase(t))
			jobs := newQueue()
			hold := jobs.Hold(tt.firstErr) // the first dispatch's enqueue
			s := postgres.NewStore(pool, postgres.WithJobs(jobs))
			w, err := s.CreateWebhook(ctx, userstest.NewWebhook(1))
			if err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				if _, err := s.CreateUser(ctx, userstest.NewUser(i), nil); err != nil {
					t.Fatal(err)
				}
			}
			// Wait until both events are in the feed.
			deadline := time.Now().Add(15 * time.Second)
			for {
				evs, err := s.ListEvents(ctx, users.AllTenants, users.EventPos{}, 10)
				if err != nil {
					t.Fatal(err)
				}
				if len(evs) == 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d events in the feed, want 2", len(evs))
				}
				time.Sleep(5 * time.Millisecond)
			}

			type result struct {
				n   int
				err error
			}
			firstDone, secondDone := make(chan result, 1), make(chan result, 1)
			go func() {
				n, err := s.DispatchEvents(ctx, 10)
				firstDone <- result{n, err}
			}()
			<-hold.Entered()
			go func() {
				n, err := s.DispatchEvents(ctx, 10)
				secondDone <- result{n, err}
			}()
			select {
			case r := <-secondDone:
				t.Fatalf("second DispatchEvents returned %d, %v while the first held the dispatcher", r.n, r.err)
			case <-time.After(200 * time.Millisecond):
			}
			hold.Release()
			if r := <-firstDone; (tt.firstErr == nil && (r.err != nil || r.n != 2)) || (tt.firstErr != nil && !errors.Is(r.err, tt.firstErr)) {
				t.Errorf("first DispatchEvents = %d, %v; want 2, %v", r.n, r.err, tt.firstErr)
			}
			if r := <-secondDone; r.err != nil || r.n != tt.secondRead {
				t.Errorf("second DispatchEvents = %d, %v; want %d, nil", r.n, r.err, tt.secondRead)
			}
			if got := len(jobs.Deliveries()); got != 2 {
				t.Errorf("%d deliveries enqueued in all, want 2 (one per event to webhook %s)", got, w.ID)
			}
		})
	}
}
