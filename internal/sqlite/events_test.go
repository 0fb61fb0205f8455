package sqlite_test

import (
	"context"
	"errors"
	"testing"
	"time"

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
	_, err := s.ListEvents(context.Background(), users.DefaultTenant, users.EventPos{Tx: 7, Seq: 1}, 10)
	var inv *users.InvalidError
	if !errors.As(err, &inv) || inv.Violations[0].Field != "after" {
		t.Errorf("ListEvents(Tx 7) err = %v, want an InvalidError on after", err)
	}
}
