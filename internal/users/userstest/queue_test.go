package userstest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// tx stands in for a store's transaction type.
type tx struct{}

func chunks(op string, n int) []users.ImportChunk {
	out := make([]users.ImportChunk, n)
	for i := range out {
		out[i] = users.ImportChunk{OperationID: op, Chunk: i}
	}
	return out
}

func TestQueueRecordsAndTakes(t *testing.T) {
	ctx := context.Background()
	q := &userstest.Queue[tx]{}
	a, b := chunks("a", 2), chunks("b", 1)
	if err := q.EnqueueImportTx(ctx, tx{}, a); err != nil {
		t.Fatal(err)
	}
	if got := q.Queued(); got != 2 {
		t.Errorf("Queued = %d, want 2", got)
	}
	if diff := cmp.Diff(a, q.TakeChunks()); diff != "" {
		t.Errorf("TakeChunks (-want +got):\n%s", diff)
	}
	if err := q.EnqueueImportTx(ctx, tx{}, b); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(b, q.TakeChunks()); diff != "" {
		t.Errorf("TakeChunks after the second import (-want +got):\n%s", diff)
	}
	if got := q.Queued(); got != 0 {
		t.Errorf("Queued after TakeChunks = %d, want 0", got)
	}
	if diff := cmp.Diff(append(a, b...), q.Chunks()); diff != "" {
		t.Errorf("Chunks, every chunk enqueued (-want +got):\n%s", diff)
	}
	d := []users.Delivery{{EventID: "e", WebhookID: "w"}}
	if err := q.EnqueueDeliveriesTx(ctx, tx{}, d); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(d, q.Deliveries()); diff != "" {
		t.Errorf("Deliveries (-want +got):\n%s", diff)
	}
}

func TestQueueChecksAndFails(t *testing.T) {
	ctx := context.Background()
	notStored := errors.New("not stored")
	q := &userstest.Queue[tx]{
		CheckImport:     func(context.Context, tx, []users.ImportChunk) error { return notStored },
		CheckDeliveries: func(context.Context, tx, []users.Delivery) error { return notStored },
	}
	if err := q.EnqueueImportTx(ctx, tx{}, chunks("a", 1)); !errors.Is(err, notStored) {
		t.Errorf("EnqueueImportTx with a failing check err = %v, want %v", err, notStored)
	}
	if err := q.EnqueueDeliveriesTx(ctx, tx{}, []users.Delivery{{EventID: "e"}}); !errors.Is(err, notStored) {
		t.Errorf("EnqueueDeliveriesTx with a failing check err = %v, want %v", err, notStored)
	}
	q.CheckImport, q.CheckDeliveries = nil, nil
	boom := errors.New("queue down")
	q.Fail(boom)
	if err := q.EnqueueImportTx(ctx, tx{}, chunks("b", 1)); !errors.Is(err, boom) {
		t.Errorf("EnqueueImportTx after Fail err = %v, want %v", err, boom)
	}
	if n, m := len(q.Chunks()), len(q.Deliveries()); n != 0 || m != 0 {
		t.Errorf("after failed enqueues, %d chunks and %d deliveries recorded, want none", n, m)
	}
}

// TestQueueHold holds the first enqueue: it waits until released, then
// fails with the hold's error and records nothing; the next one is not held.
func TestQueueHold(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("rolled back")
	q := &userstest.Queue[tx]{}
	h := q.Hold(boom)
	done := make(chan error, 1)
	go func() { done <- q.EnqueueDeliveriesTx(ctx, tx{}, []users.Delivery{{EventID: "held"}}) }()
	<-h.Entered()
	select {
	case err := <-done:
		t.Fatalf("the held enqueue returned %v before Release", err)
	case <-time.After(50 * time.Millisecond):
	}
	h.Release()
	if err := <-done; !errors.Is(err, boom) {
		t.Errorf("the held enqueue err = %v, want %v", err, boom)
	}
	h.Release() // a second Release does nothing
	if err := q.EnqueueDeliveriesTx(ctx, tx{}, []users.Delivery{{EventID: "next"}}); err != nil {
		t.Errorf("the enqueue after the held one err = %v, want nil", err)
	}
	if diff := cmp.Diff([]users.Delivery{{EventID: "next"}}, q.Deliveries()); diff != "" {
		t.Errorf("Deliveries (-want +got):\n%s", diff)
	}
}
