package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

// Webhook subscriptions, their delivery attempts and the event sinks. The
// statements are not kept prepared: none of them is on a hot path but
// RecordDeliveryAttempt, which the network round trip of the delivery
// dwarfs.

// webhookColumns are the columns scanWebhook reads, in its order.
const webhookColumns = "id, url, event_types, secret, enabled, consecutive_failures, disabled_reason, create_time, update_time"

const (
	selectWebhooks = "SELECT " + webhookColumns + " FROM webhooks "

	insertWebhook = "INSERT INTO webhooks (" + webhookColumns + ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"

	updateWebhook = "UPDATE webhooks SET url = ?2, event_types = ?3, secret = ?4, enabled = ?5, " +
		"consecutive_failures = ?6, disabled_reason = ?7, update_time = ?8 WHERE id = ?1"

	insertAttempt = "INSERT INTO webhook_attempts " +
		"(webhook_id, event_id, event_type, attempt, status, latency, success, error, time) " +
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"

	listAttempts = "SELECT webhook_id, event_id, event_type, attempt, status, latency, success, error, time " +
		"FROM webhook_attempts WHERE webhook_id = ?1 ORDER BY time DESC, id DESC LIMIT ?2"

	selectSink = "SELECT tx, seq FROM event_sinks WHERE name = ?1"

	upsertSink = "INSERT INTO event_sinks (name, tx, seq) VALUES (?1, ?2, ?3) " +
		"ON CONFLICT (name) DO UPDATE SET tx = excluded.tx, seq = excluded.seq"
)

// CreateWebhook inserts w in a writer transaction that first counts the
// subscriptions; see users.Store.
func (s *Store) CreateWebhook(ctx context.Context, w *users.Webhook) (_ *users.Webhook, err error) {
	defer classifyErr(ctx, &err)
	args, err := webhookArgs(w)
	if err != nil {
		return nil, err
	}
	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("create webhook %s: %w", w.ID, err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM webhooks").Scan(&n); err != nil {
		return nil, fmt.Errorf("create webhook %s: %w", w.ID, err)
	}
	if n >= users.MaxWebhooks {
		return nil, users.Invalid("webhook", fmt.Sprintf("at most %d webhook subscriptions may exist; delete one first", users.MaxWebhooks))
	}
	if _, err := tx.ExecContext(ctx, insertWebhook, args...); err != nil {
		var serr *msqlite.Error
		if errors.As(err, &serr) && serr.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
			return nil, fmt.Errorf("webhook %s: id in use: %w", w.ID, users.ErrIDTaken)
		}
		return nil, fmt.Errorf("create webhook %s: %w", w.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("create webhook %s: %w", w.ID, err)
	}
	s.db.afterCommit(ctx)
	return storedWebhook(w.Clone()), nil
}

// GetWebhook reads the subscription from the readers; see users.Store.
func (s *Store) GetWebhook(ctx context.Context, id string) (_ *users.Webhook, err error) {
	defer classifyErr(ctx, &err)
	w, err := scanWebhook(s.db.reader.QueryRowContext(ctx, selectWebhooks+"WHERE id = ?1", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, webhookNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("webhook %s: %w", id, err)
	}
	return w, nil
}

// ListWebhooks reads every subscription from the readers; see users.Store.
func (s *Store) ListWebhooks(ctx context.Context) (_ []*users.Webhook, err error) {
	defer classifyErr(ctx, &err)
	ws, err := queryWebhooks(ctx, s.db.reader, selectWebhooks+"ORDER BY create_time, id")
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	return ws, nil
}

// UpdateWebhook reads the subscription in a writer transaction, lets fn
// change a copy and writes it back; see users.Store.
func (s *Store) UpdateWebhook(ctx context.Context, id string, fn func(*users.Webhook) error) (_ *users.Webhook, err error) {
	defer classifyErr(ctx, &err)
	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("update webhook %s: %w", id, err)
	}
	defer tx.Rollback()
	old, err := scanWebhook(tx.QueryRowContext(ctx, selectWebhooks+"WHERE id = ?1", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, webhookNotFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("webhook %s: %w", id, err)
	}
	w := old.Clone()
	if err := fn(w); err != nil {
		return nil, err
	}
	// The columns UpdateWebhook does not write keep their stored values.
	w.ID, w.CreateTime = old.ID, old.CreateTime
	if err := writeWebhook(ctx, tx, w); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("update webhook %s: %w", id, err)
	}
	s.db.afterCommit(ctx)
	return storedWebhook(w), nil
}

// writeWebhook stores the mutable columns of w within tx.
func writeWebhook(ctx context.Context, tx *sql.Tx, w *users.Webhook) error {
	args, err := webhookArgs(w)
	if err != nil {
		return err
	}
	// webhookArgs is in webhookColumns order; updateWebhook skips
	// create_time.
	_, err = tx.ExecContext(ctx, updateWebhook, args[0], args[1], args[2], args[3], args[4], args[5], args[6], args[8])
	if err != nil {
		return fmt.Errorf("update webhook %s: %w", w.ID, err)
	}
	return nil
}

// DeleteWebhook deletes the subscription, and by cascade its attempts, in
// a writer transaction; see users.Store.
func (s *Store) DeleteWebhook(ctx context.Context, id string) (err error) {
	defer classifyErr(ctx, &err)
	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete webhook %s: %w", id, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, "DELETE FROM webhooks WHERE id = ?1", id)
	if err != nil {
		return fmt.Errorf("delete webhook %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("delete webhook %s: %w", id, err)
	}
	if n == 0 {
		return webhookNotFound(id)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delete webhook %s: %w", id, err)
	}
	s.db.afterCommit(ctx)
	return nil
}

// RecordDeliveryAttempt stores the attempt and the subscription's new
// failure count in one writer transaction; see users.Store and
// users.Webhook.Record.
func (s *Store) RecordDeliveryAttempt(ctx context.Context, a users.DeliveryAttempt, disableAfter int) (_ *users.Webhook, err error) {
	defer classifyErr(ctx, &err)
	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("record delivery to webhook %s: %w", a.WebhookID, err)
	}
	defer tx.Rollback()
	w, err := scanWebhook(tx.QueryRowContext(ctx, selectWebhooks+"WHERE id = ?1", a.WebhookID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, webhookNotFound(a.WebhookID)
	}
	if err != nil {
		return nil, fmt.Errorf("webhook %s: %w", a.WebhookID, err)
	}
	_, err = tx.ExecContext(ctx, insertAttempt, a.WebhookID, a.EventID, string(a.EventType), a.Attempt, a.Status,
		a.Latency.Microseconds(), a.Success, a.Error, a.Time.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("record delivery to webhook %s: %w", a.WebhookID, err)
	}
	w.Record(a, disableAfter)
	if err := writeWebhook(ctx, tx, w); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("record delivery to webhook %s: %w", a.WebhookID, err)
	}
	s.db.afterCommit(ctx)
	return storedWebhook(w), nil
}

// ListDeliveryAttempts reads the newest attempts from the readers; see
// users.Store.
func (s *Store) ListDeliveryAttempts(ctx context.Context, webhookID string, limit int) (_ []users.DeliveryAttempt, err error) {
	defer classifyErr(ctx, &err)
	if limit <= 0 {
		return nil, nil // SQLite reads a negative LIMIT as none
	}
	rows, err := s.db.reader.QueryContext(ctx, listAttempts, webhookID, limit)
	if err != nil {
		return nil, fmt.Errorf("list deliveries of webhook %s: %w", webhookID, err)
	}
	defer rows.Close()
	var out []users.DeliveryAttempt
	for rows.Next() {
		var (
			a               users.DeliveryAttempt
			typ             string
			latency, micros int64
		)
		err := rows.Scan(&a.WebhookID, &a.EventID, &typ, &a.Attempt, &a.Status, &latency, &a.Success, &a.Error, &micros)
		if err != nil {
			return nil, fmt.Errorf("list deliveries of webhook %s: %w", webhookID, err)
		}
		a.EventType, a.Latency, a.Time = users.EventType(typ), time.Duration(latency)*time.Microsecond, fromMicros(micros)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list deliveries of webhook %s: %w", webhookID, err)
	}
	return out, rows.Close()
}

// DispatchEvents reads the dispatcher's position, the events after it and
// the enabled subscriptions, enqueues the deliveries and saves the new
// position, in one writer transaction; see users.Store. The single writer
// makes concurrent calls take turns, and what the transaction reads is
// every event committed before it, as the readers of ListEvents see them.
func (s *Store) DispatchEvents(ctx context.Context, limit int) (_ int, err error) {
	defer classifyErr(ctx, &err)
	if s.jobs == nil {
		return 0, fmt.Errorf("sqlite: dispatch events: %w", errNoJobs)
	}
	if limit <= 0 {
		return 0, nil
	}
	list, err := s.stmt(ctx, stmtListEventsTx)
	if err != nil {
		return 0, err
	}
	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("dispatch events: %w", err)
	}
	defer tx.Rollback()
	pos, err := sinkPosition(ctx, tx, usersql.DispatcherSink)
	if err != nil {
		return 0, fmt.Errorf("dispatch events: %w", err)
	}
	if pos.Tx != 0 {
		return 0, fmt.Errorf("dispatch events: saved position %+v is not one of this database's", pos)
	}
	evs, err := listEvents(ctx, tx.StmtContext(ctx, list), pos, limit)
	if err != nil {
		return 0, fmt.Errorf("dispatch events: %w", err)
	}
	if len(evs) == 0 {
		return 0, nil // the rollback ends a read
	}
	hooks, err := queryWebhooks(ctx, tx, selectWebhooks+"WHERE enabled ORDER BY create_time, id")
	if err != nil {
		return 0, fmt.Errorf("dispatch events: %w", err)
	}
	if ds := usersql.Deliveries(evs, hooks); len(ds) > 0 {
		if err := s.jobs.EnqueueDeliveriesTx(ctx, tx, ds); err != nil {
			return 0, fmt.Errorf("dispatch events: enqueue: %w", err)
		}
	}
	last := evs[len(evs)-1].Pos
	if _, err := tx.ExecContext(ctx, upsertSink, usersql.DispatcherSink, int64(last.Tx), last.Seq); err != nil {
		return 0, fmt.Errorf("dispatch events: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("dispatch events: %w", err)
	}
	s.db.afterCommit(ctx)
	return len(evs), nil
}

// SinkPosition reads the position saved under name from the readers; see
// users.Store.
func (s *Store) SinkPosition(ctx context.Context, name string) (_ users.EventPos, err error) {
	defer classifyErr(ctx, &err)
	pos, err := sinkPosition(ctx, s.db.reader, name)
	if err != nil {
		return users.EventPos{}, fmt.Errorf("sink %s: %w", name, err)
	}
	return pos, nil
}

// SetSinkPosition saves the position under name in a writer transaction;
// see users.Store.
func (s *Store) SetSinkPosition(ctx context.Context, name string, pos users.EventPos) (err error) {
	defer classifyErr(ctx, &err)
	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sink %s: %w", name, err)
	}
	defer tx.Rollback()
	// tx is stored as the int64 of the same bits, and read back so.
	if _, err := tx.ExecContext(ctx, upsertSink, name, int64(pos.Tx), pos.Seq); err != nil {
		return fmt.Errorf("sink %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sink %s: %w", name, err)
	}
	s.db.afterCommit(ctx)
	return nil
}

// queryer is the reader pool or a writer transaction.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
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

// queryWebhooks runs a select of webhookColumns and reads every row.
func queryWebhooks(ctx context.Context, q queryer, query string) ([]*users.Webhook, error) {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ws []*users.Webhook
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, err
		}
		ws = append(ws, w)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return ws, rows.Close()
}

// scanWebhook reads the webhookColumns of one row.
func scanWebhook(row interface{ Scan(...any) error }) (*users.Webhook, error) {
	var (
		w                      users.Webhook
		types                  string
		createTime, updateTime int64
	)
	err := row.Scan(&w.ID, &w.URL, &types, &w.Secret, &w.Enabled, &w.ConsecutiveFailures, &w.DisabledReason, &createTime, &updateTime)
	if err != nil {
		return nil, err
	}
	if types != "[]" {
		if err := json.Unmarshal([]byte(types), &w.EventTypes); err != nil {
			return nil, fmt.Errorf("webhook %s: stored event types: %w", w.ID, err)
		}
		if len(w.EventTypes) == 0 {
			w.EventTypes = nil
		}
	}
	w.CreateTime, w.UpdateTime = fromMicros(createTime), fromMicros(updateTime)
	return &w, nil
}

// webhookArgs returns the values of webhookColumns for w.
func webhookArgs(w *users.Webhook) ([]any, error) {
	types := "[]"
	if len(w.EventTypes) > 0 {
		b, err := json.Marshal(w.EventTypes)
		if err != nil {
			return nil, fmt.Errorf("webhook %s: event types: %w", w.ID, err)
		}
		types = string(b)
	}
	return []any{w.ID, w.URL, types, w.Secret, w.Enabled, w.ConsecutiveFailures, w.DisabledReason,
		w.CreateTime.UnixMicro(), w.UpdateTime.UnixMicro()}, nil
}

// storedWebhook returns w as it reads back: times in UTC at microsecond
// precision and nil for no event types.
func storedWebhook(w *users.Webhook) *users.Webhook {
	if len(w.EventTypes) == 0 {
		w.EventTypes = nil
	}
	w.CreateTime, w.UpdateTime = users.Truncate(w.CreateTime), users.Truncate(w.UpdateTime)
	return w
}

func webhookNotFound(id string) error { return fmt.Errorf("webhook %s: %w", id, users.ErrNotFound) }
