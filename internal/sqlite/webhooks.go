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

// Webhooks: users.WebhookStore, the subscriptions, their delivery attempts
// and the dispatch of the event feed to them. The statements are not kept
// prepared: none of them is on a hot path but RecordDeliveryAttempt, which
// the network round trip of the delivery dwarfs.

// webhookColumns are the columns scanWebhook reads, in its order.
const webhookColumns = "id, url, event_types, secret, enabled, consecutive_failures, disabled_reason, create_time, update_time, " +
	"last_success_time, last_failure_time, tenant_id, all_tenants"

const (
	selectWebhooks = "SELECT " + webhookColumns + " FROM webhooks "

	insertWebhook = "INSERT INTO webhooks (" + webhookColumns + ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"

	updateWebhook = "UPDATE webhooks SET url = ?2, event_types = ?3, secret = ?4, enabled = ?5, " +
		"consecutive_failures = ?6, disabled_reason = ?7, update_time = ?8, " +
		"last_success_time = ?9, last_failure_time = ?10 WHERE id = ?1"

	insertAttempt = "INSERT INTO webhook_attempts " +
		"(webhook_id, event_id, event_type, attempt, status, latency, success, error, time) " +
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"

	listAttempts = "SELECT webhook_id, event_id, event_type, attempt, status, latency, success, error, time " +
		"FROM webhook_attempts WHERE webhook_id = ?1 ORDER BY time DESC, id DESC LIMIT ?2"
)

// CreateWebhook inserts w in a writer transaction that first counts the
// subscriptions; see users.WebhookStore.
func (s *Store) CreateWebhook(ctx context.Context, w *users.Webhook) (_ *users.Webhook, err error) {
	defer wrap(ctx, &err, "webhook %s", w.ID)
	args, err := webhookArgs(w)
	if err != nil {
		return nil, err
	}
	tenants, err := s.tenantStmts(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if _, err := tenants.alive(ctx, tx, w.Tenant); err != nil {
		return nil, err
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM webhooks").Scan(&n); err != nil {
		return nil, err
	}
	if n >= users.MaxWebhooks {
		return nil, users.Invalid("webhook", fmt.Sprintf("at most %d webhook subscriptions may exist; delete one first", users.MaxWebhooks))
	}
	if _, err := tx.ExecContext(ctx, insertWebhook, args...); err != nil {
		var serr *msqlite.Error
		if errors.As(err, &serr) && serr.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
			return nil, fmt.Errorf("id in use: %w", users.ErrIDTaken)
		}
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s.db.afterCommit(ctx)
	return usersql.StoredWebhook(w.Clone()), nil
}

// GetWebhook reads the tenant's subscription from the readers; see
// users.WebhookStore.
func (s *Store) GetWebhook(ctx context.Context, tenant, id string) (_ *users.Webhook, err error) {
	defer wrap(ctx, &err, "webhook %s", id)
	w, err := scanWebhook(s.db.reader.QueryRowContext(ctx, selectWebhooks+"WHERE id = ?1 AND "+webhookTenant, id, tenant))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	return w, err
}

// ListWebhooks reads the tenant's subscriptions from the readers; see
// users.WebhookStore.
func (s *Store) ListWebhooks(ctx context.Context, tenant string) (_ []*users.Webhook, err error) {
	defer wrap(ctx, &err, "list webhooks of %s", tenant)
	return queryWebhooks(ctx, s.db.reader, selectWebhooks+"WHERE "+webhookTenant+" ORDER BY create_time, id", nil, tenant)
}

// webhookTenant is usersql.TenantMatch of the tenant bound to ?2.
var webhookTenant = usersql.TenantMatch("?2")

// UpdateWebhook reads the subscription in a writer transaction, lets fn
// change a copy and writes it back; see users.WebhookStore.
func (s *Store) UpdateWebhook(ctx context.Context, tenant, id string, fn func(*users.Webhook) error) (_ *users.Webhook, err error) {
	defer wrap(ctx, &err, "webhook %s", id)
	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	old, err := scanWebhook(tx.QueryRowContext(ctx, selectWebhooks+"WHERE id = ?1 AND "+webhookTenant, id, tenant))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	w := old.Clone()
	if err := fn(w); err != nil {
		return nil, usersql.FnError(err)
	}
	// The columns UpdateWebhook does not write keep their stored values;
	// the last attempt times are RecordDeliveryAttempts' to write.
	w.ID, w.CreateTime, w.Tenant, w.AllTenants = old.ID, old.CreateTime, old.Tenant, old.AllTenants
	w.LastSuccessTime, w.LastFailureTime = old.LastSuccessTime, old.LastFailureTime
	if err := writeWebhook(ctx, tx, w); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s.db.afterCommit(ctx)
	return usersql.StoredWebhook(w), nil
}

// writeWebhook stores the mutable columns of w within tx.
func writeWebhook(ctx context.Context, tx *sql.Tx, w *users.Webhook) error {
	args, err := webhookArgs(w)
	if err != nil {
		return err
	}
	// webhookArgs is in webhookColumns order; updateWebhook skips
	// create_time.
	_, err = tx.ExecContext(ctx, updateWebhook, args[0], args[1], args[2], args[3], args[4], args[5], args[6], args[8], args[9], args[10])
	return err
}

// DeleteWebhook deletes the subscription, and by cascade its attempts, in
// a writer transaction; see users.WebhookStore.
func (s *Store) DeleteWebhook(ctx context.Context, tenant, id string) (err error) {
	defer wrap(ctx, &err, "webhook %s", id)
	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, "DELETE FROM webhooks WHERE id = ?1 AND "+webhookTenant, id, tenant)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return users.ErrNotFound
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.db.afterCommit(ctx)
	return nil
}

// RecordDeliveryAttempts stores the attempts and the subscription's new
// failure count in one writer transaction; see users.WebhookStore and
// users.Webhook.Record.
func (s *Store) RecordDeliveryAttempts(ctx context.Context, webhookID string, as []users.DeliveryAttempt, disableAfter int) (_ *users.Webhook, err error) {
	defer wrap(ctx, &err, "webhook %s", webhookID)
	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	w, err := scanWebhook(tx.QueryRowContext(ctx, selectWebhooks+"WHERE id = ?1", webhookID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	insert, err := tx.PrepareContext(ctx, insertAttempt)
	if err != nil {
		return nil, err
	}
	defer insert.Close()
	for _, a := range as {
		if a.WebhookID != webhookID {
			return nil, fmt.Errorf("an attempt to webhook %s", a.WebhookID)
		}
		_, err = insert.ExecContext(ctx, a.WebhookID, a.EventID, string(a.EventType), a.Attempt, a.Status,
			a.Latency.Microseconds(), a.Success, a.Error, a.Time.UnixMicro())
		if err != nil {
			return nil, err
		}
		w.Record(a, disableAfter)
	}
	if err := writeWebhook(ctx, tx, w); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s.db.afterCommit(ctx)
	return usersql.StoredWebhook(w), nil
}

// ListDeliveryAttempts reads the newest attempts from the readers; see
// users.WebhookStore.
func (s *Store) ListDeliveryAttempts(ctx context.Context, webhookID string, limit int) (_ []users.DeliveryAttempt, err error) {
	defer wrap(ctx, &err, "list deliveries of webhook %s", webhookID)
	if limit <= 0 {
		return nil, nil // SQLite reads a negative LIMIT as none
	}
	rows, err := s.db.reader.QueryContext(ctx, listAttempts, webhookID, limit)
	if err != nil {
		return nil, err
	}
	return collect(rows, nil, func(row rowScanner) (users.DeliveryAttempt, error) {
		var (
			a               users.DeliveryAttempt
			typ             string
			latency, micros int64
		)
		err := row.Scan(&a.WebhookID, &a.EventID, &typ, &a.Attempt, &a.Status, &latency, &a.Success, &a.Error, &micros)
		if err != nil {
			return a, err
		}
		a.EventType, a.Latency, a.Time = users.EventType(typ), time.Duration(latency)*time.Microsecond, fromMicros(micros)
		return a, nil
	})
}

// PurgeDeliveryAttempts deletes the delivery attempts made before the time;
// see users.WebhookStore.
func (s *Store) PurgeDeliveryAttempts(ctx context.Context, before time.Time) (_ int, err error) {
	defer wrap(ctx, &err, "purge delivery attempts")
	res, err := s.db.writer.ExecContext(ctx, "DELETE FROM webhook_attempts WHERE time < ?", before.UnixMicro())
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	s.db.afterCommit(ctx)
	return int(n), nil
}

// DispatchEvents reads the dispatcher's position, the events after it and
// the enabled subscriptions, enqueues the deliveries and saves the new
// position, in one writer transaction; see users.WebhookStore. The single
// writer makes concurrent calls take turns, and what the transaction reads
// is every event committed before it, as the readers of ListEvents see them.
func (s *Store) DispatchEvents(ctx context.Context, limit int) (_ int, err error) {
	defer wrap(ctx, &err, "dispatch events")
	if s.jobs == nil {
		return 0, errNoJobs
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
		return 0, err
	}
	defer tx.Rollback()
	pos, err := sinkPosition(ctx, tx, usersql.DispatcherSink)
	if err != nil {
		return 0, err
	}
	if pos.Tx != 0 {
		return 0, fmt.Errorf("saved position %+v is not one of this database's", pos)
	}
	evs, err := listEvents(ctx, tx.StmtContext(ctx, list), pos, limit)
	if err != nil {
		return 0, err
	}
	if len(evs) == 0 {
		return 0, nil // the rollback ends a read
	}
	hooks, err := queryWebhooks(ctx, tx, selectWebhooks+"WHERE enabled ORDER BY create_time, id")
	if err != nil {
		return 0, err
	}
	if ds := usersql.Deliveries(evs, hooks); len(ds) > 0 {
		if err := s.jobs.EnqueueDeliveriesTx(ctx, tx, ds); err != nil {
			return 0, fmt.Errorf("enqueue: %w", err)
		}
	}
	last := evs[len(evs)-1].Pos
	if _, err := tx.ExecContext(ctx, upsertSink, usersql.DispatcherSink, int64(last.Tx), last.Seq); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	s.db.afterCommit(ctx)
	return len(evs), nil
}

// queryWebhooks runs a select of webhookColumns with args and reads every
// row.
func queryWebhooks(ctx context.Context, q queryer, query string, args ...any) ([]*users.Webhook, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, nil, scanWebhook)
}

// scanWebhook reads the webhookColumns of one row: NULL times read as the
// zero time.
func scanWebhook(row rowScanner) (*users.Webhook, error) {
	var (
		w                      users.Webhook
		types                  string
		createTime, updateTime int64
		lastSuccess, lastFail  sql.NullInt64
	)
	err := row.Scan(&w.ID, &w.URL, &types, &w.Secret, &w.Enabled, &w.ConsecutiveFailures, &w.DisabledReason, &createTime, &updateTime,
		&lastSuccess, &lastFail, &w.Tenant, &w.AllTenants)
	if err != nil {
		return nil, err
	}
	if types != "[]" {
		if err := json.Unmarshal([]byte(types), &w.EventTypes); err != nil {
			return nil, err
		}
		if len(w.EventTypes) == 0 {
			w.EventTypes = nil
		}
	}
	w.CreateTime, w.UpdateTime = fromMicros(createTime), fromMicros(updateTime)
	if lastSuccess.Valid {
		w.LastSuccessTime = fromMicros(lastSuccess.Int64)
	}
	if lastFail.Valid {
		w.LastFailureTime = fromMicros(lastFail.Int64)
	}
	return &w, nil
}

// webhookArgs returns the values of webhookColumns for w.
func webhookArgs(w *users.Webhook) ([]any, error) {
	types := "[]"
	if len(w.EventTypes) > 0 {
		b, err := json.Marshal(w.EventTypes)
		if err != nil {
			return nil, err
		}
		types = string(b)
	}
	return []any{w.ID, w.URL, types, w.Secret, w.Enabled, w.ConsecutiveFailures, w.DisabledReason,
		w.CreateTime.UnixMicro(), w.UpdateTime.UnixMicro(), nullTime(w.LastSuccessTime), nullTime(w.LastFailureTime),
		w.Tenant, w.AllTenants}, nil
}
