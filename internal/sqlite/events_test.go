package sqlite_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/trace"

	"github.com/usersd/usersd/internal/sqlite"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

// TestEventFeedProof runs userstest.ProveFeed: eight writers for ten
// seconds, one consumer that resumes from its cursor at random moments, and
// the events it read compared with the outbox table.
func TestEventFeedProof(t *testing.T) {
	if testing.Short() {
		t.Skip("takes ten seconds; run without -short")
	}
	db, _ := openDB(t)
	res := userstest.ProveFeed(t, sqlite.NewStore(db), userstest.FeedProof{
		Writers:  8,
		Duration: 10 * time.Second,
		Outbox: func(ctx context.Context) ([]string, error) {
			rows, err := sqlite.Reader(db).QueryContext(ctx, "SELECT id FROM events")
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			var ids []string
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					return nil, err
				}
				ids = append(ids, id)
			}
			return ids, rows.Err()
		},
	})
	t.Log(res)
}

// TestListEventsForeignCursor checks that a position with a transaction id,
// which only Postgres cursors have, is refused rather than read as the end
// of the feed.
func TestListEventsForeignCursor(t *testing.T) {
	s := newStore(t)
	_, err := s.ListEvents(context.Background(), users.EventPos{Tx: 7, Seq: 1}, 10)
	var inv *users.InvalidError
	if !errors.As(err, &inv) || inv.Violations[0].Field != "after" {
		t.Errorf("ListEvents(Tx 7) err = %v, want an InvalidError on after", err)
	}
}

// TestTracedStoreEvents checks the spans of the event calls, and that an
// event made through a TracedStore carries the store call's span: the same
// trace as the request, one level down.
func TestTracedStoreEvents(t *testing.T) {
	tp, exp := newTracer(t)
	s := sqlite.NewTracedStore(newStore(t), tp)
	ctx, root := tp.Tracer("test").Start(context.Background(), "request")
	if _, err := s.CreateUser(ctx, userstest.NewUser(1), nil); err != nil {
		t.Fatal(err)
	}
	evs, err := s.ListEvents(ctx, users.EventPos{}, 10)
	if err != nil || len(evs) != 1 {
		t.Fatalf("ListEvents = %d events, %v; want 1", len(evs), err)
	}
	if _, err := s.PurgeEvents(ctx, time.Now().Add(time.Hour), 10); err != nil {
		t.Fatal(err)
	}
	root.End()

	spans := exp.GetSpans()
	var create trace.SpanContext
	for _, sp := range spans {
		if sp.Name == "sqlite.CreateUser" {
			create = sp.SpanContext
		}
	}
	if want := "00-" + create.TraceID().String() + "-" + create.SpanID().String() + "-01"; evs[0].TraceParent != want {
		t.Errorf("event TraceParent = %q, want the CreateUser span's %q", evs[0].TraceParent, want)
	}
	db := func(op string, more ...string) map[string]string {
		m := map[string]string{"db.system.name": "sqlite", "db.operation.name": op}
		for i := 0; i < len(more); i += 2 {
			m[more[i]] = more[i+1]
		}
		return m
	}
	client := trace.SpanKindClient
	want := []spanSummary{
		{Name: "sqlite.CreateUser", Kind: client, Parent: "request", Attrs: db("CreateUser", "users.idempotent", "false")},
		{Name: "sqlite.ListEvents", Kind: client, Parent: "request", Attrs: db("ListEvents", "db.response.returned_rows", "1")},
		{Name: "sqlite.PurgeEvents", Kind: client, Parent: "request", Attrs: db("PurgeEvents", "users.events_purged", "1")},
		{Name: "request", Kind: trace.SpanKindInternal, Attrs: map[string]string{}},
	}
	if diff := cmp.Diff(want, summarize(spans)); diff != "" {
		t.Errorf("spans mismatch (-want +got):\n%s", diff)
	}
}
