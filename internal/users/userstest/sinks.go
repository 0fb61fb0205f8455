package userstest

import (
	"context"
	"testing"

	"github.com/usersd/usersd/internal/users"
)

// TestSinkStore is the part of the suite for users.SinkStore. newStore
// must return an empty, migrated store that lives until the test ends.
func TestSinkStore(t *testing.T, newStore func(t *testing.T) users.SinkStore) {
	run(t, withoutJobs(newStore), []test[users.SinkStore]{
		{"SinkPosition", storeOnly(testSinkPosition)},
	})
}

func testSinkPosition(t *testing.T, s users.SinkStore) {
	ctx := context.Background()
	if pos, err := s.SinkPosition(ctx, "relay"); err != nil || pos != (users.EventPos{}) {
		t.Errorf("SinkPosition(unset) = %+v, %v; want the zero position", pos, err)
	}
	for _, tt := range []struct {
		name string
		pos  users.EventPos
	}{
		{"relay", users.EventPos{Seq: 5}},
		{"other", users.EventPos{Tx: 7, Seq: 42}},
		{"relay", users.EventPos{Seq: 9}},
		{"big", users.EventPos{Tx: 1<<63 + 5, Seq: 1<<63 - 1}},
	} {
		if err := s.SetSinkPosition(ctx, tt.name, tt.pos); err != nil {
			t.Fatalf("SetSinkPosition(%q, %+v) err = %v", tt.name, tt.pos, err)
		}
		if got, err := s.SinkPosition(ctx, tt.name); err != nil || got != tt.pos {
			t.Errorf("SinkPosition(%q) = %+v, %v; want %+v", tt.name, got, err, tt.pos)
		}
	}
	if got, err := s.SinkPosition(ctx, "other"); err != nil || got != (users.EventPos{Tx: 7, Seq: 42}) {
		t.Errorf("SinkPosition(other) after setting relay = %+v, %v; want {7 42}", got, err)
	}
}
