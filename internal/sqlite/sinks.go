package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/usersd/usersd/internal/users"
)

// Sinks: users.SinkStore, the feed positions of the relays.

const (
	selectSink = "SELECT tx, seq FROM event_sinks WHERE name = ?1"

	upsertSink = "INSERT INTO event_sinks (name, tx, seq) VALUES (?1, ?2, ?3) " +
		"ON CONFLICT (name) DO UPDATE SET tx = excluded.tx, seq = excluded.seq"
)

// SinkPosition reads the position saved under name from the readers; see
// users.SinkStore.
func (s *Store) SinkPosition(ctx context.Context, name string) (_ users.EventPos, err error) {
	defer wrap(ctx, &err, "sink %s", name)
	return sinkPosition(ctx, s.db.reader, name)
}

// SetSinkPosition saves the position under name in a writer transaction;
// see users.SinkStore.
func (s *Store) SetSinkPosition(ctx context.Context, name string, pos users.EventPos) (err error) {
	defer wrap(ctx, &err, "sink %s", name)
	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// tx is stored as the int64 of the same bits, and read back so.
	if _, err := tx.ExecContext(ctx, upsertSink, name, int64(pos.Tx), pos.Seq); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.db.afterCommit(ctx)
	return nil
}

// sinkPosition reads the position saved under name, the zero EventPos if
// none is.
func sinkPosition(ctx context.Context, q queryer, name string) (users.EventPos, error) {
	var tx, seq int64
	err := q.QueryRowContext(ctx, selectSink, name).Scan(&tx, &seq)
	if errors.Is(err, sql.ErrNoRows) {
		return users.EventPos{}, nil
	}
	if err != nil {
		return users.EventPos{}, err
	}
	return users.EventPos{Tx: uint64(tx), Seq: seq}, nil
}
