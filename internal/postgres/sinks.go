package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/internal/users"
)

// Sinks: users.SinkStore, the feed positions of the relays.

const upsertSink = `INSERT INTO event_sinks (name, tx, seq) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET tx = excluded.tx, seq = excluded.seq`

// SinkPosition reads the position saved under name; see users.SinkStore.
func (s *Store) SinkPosition(ctx context.Context, name string) (_ users.EventPos, err error) {
	defer wrap(ctx, &err, "sink %s", name)
	var pos users.EventPos
	err = s.pool.QueryRow(ctx, "SELECT tx, seq FROM event_sinks WHERE name = $1", name).Scan(&pos.Tx, &pos.Seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return users.EventPos{}, nil
	}
	if err != nil {
		return users.EventPos{}, err
	}
	return pos, nil
}

// SetSinkPosition saves the position under name in one statement; see
// users.SinkStore.
func (s *Store) SetSinkPosition(ctx context.Context, name string, pos users.EventPos) (err error) {
	defer wrap(ctx, &err, "sink %s", name)
	if pos.Seq < 0 {
		return errors.New("negative seq")
	}
	_, err = s.pool.Exec(ctx, upsertSink, name, pos.Tx, pos.Seq)
	return err
}
