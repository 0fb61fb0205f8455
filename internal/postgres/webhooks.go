package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

// Webhooks: users.WebhookStore, the subscriptions, their delivery attempts
// and the dispatch of the event feed to them.
//
// DispatchEvents serialises on the row of its sink: it inserts the row if
// it is missing (ON CONFLICT DO NOTHING waits for a concurrent insert), then
// locks it with SELECT … FOR UPDATE, which in READ COMMITTED waits for the
// holder to commit and then returns the row as that commit left it. The
// events it then reads come from a new statement snapshot, which sees that
// commit too; so a replica that waited resumes exactly where the one before
// it stopped.

// webhookColumns are the columns webhookRow scans, in its order.
const webhookColumns = "id, url, event_types, secret, enabled, consecutive_failures, disabled_reason, create_time, update_time, " +
	"last_success_time, last_failure_time, tenant_id, all_tenants"

const (
	selectWebhooks = "SELECT " + webhookColumns + " FROM webhooks "

	insertWebhook = "INSERT INTO webhooks (" + webhookColumns + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"

	// updateWebhook writes the mutable columns.
	updateWebhook = `UPDATE webhooks SET url = $2, event_types = $3, secret = $4, enabled = $5,
	consecutive_failures = $6, disabled_reason = $7, update_time = $8,
	last_success_time = $9, last_failure_time = $10
WHERE id = $1`

	insertAttempt = `INSERT INTO webhook_attempts
	(webhook_id, event_id, event_type, attempt, status, latency, success, error, time)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`

	listAttempts = `SELECT webhook_id, event_id, event_type, attempt, status, latency, success, error, time
FROM webhook_attempts WHERE webhook_id = $1 ORDER BY time DESC, id DESC LIMIT $2`

	ensureSink = "INSERT INTO event_sinks (name) VALUES ($1) ON CONFLICT (name) DO NOTHING"

	lockSink = "SELECT tx, seq FROM event_sinks WHERE name = $1 FOR UPDATE"
)

// webhookTenant is usersql.TenantMatch of the tenant bound to $2: the
// subscriptions of that tenant while it is live, or every one for
// users.AllTenants.
var webhookTenant = usersql.TenantMatch("$2")

// CreateWebhook checks that w's tenant is live, counts the subscriptions
// and inserts w in one transaction that holds a lock on the table no other
// CreateWebhook can share, so that concurrent creates cannot pass
// MaxWebhooks; see users.WebhookStore.
func (s *Store) CreateWebhook(ctx context.Context, w *users.Webhook) (_ *users.Webhook, err error) {
	defer wrap(ctx, &err, "webhook %s", w.ID)
	args, err := webhookArgs(w)
	if err != nil {
		return nil, err
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	if err := liveTenant(ctx, tx, w.Tenant); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE webhooks IN SHARE ROW EXCLUSIVE MODE"); err != nil {
		return nil, err
	}
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM webhooks").Scan(&n); err != nil {
		return nil, err
	}
	if n >= users.MaxWebhooks {
		return nil, users.Invalid("webhook", fmt.Sprintf("at most %d webhook subscriptions may exist; delete one first", users.MaxWebhooks))
	}
	if _, err := tx.Exec(ctx, insertWebhook, args...); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			return nil, fmt.Errorf("id in use: %w", users.ErrIDTaken)
		}
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return usersql.StoredWebhook(w.Clone()), nil
}

// GetWebhook reads the tenant's subscription in one statement; see
// users.WebhookStore.
func (s *Store) GetWebhook(ctx context.Context, tenant, id string) (_ *users.Webhook, err error) {
	defer wrap(ctx, &err, "webhook %s", id)
	uid, ok := parseID(id)
	if !ok {
		return nil, users.ErrNotFound
	}
	var w *users.Webhook
	err = s.do(ctx, read, func(c *pgxpool.Conn) (err error) {
		w, err = scanWebhook(c.QueryRow(ctx, selectWebhooks+"WHERE id = $1 AND "+webhookTenant, uid, tenant))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	return w, err
}

// ListWebhooks reads the tenant's subscriptions in one statement; see
// users.WebhookStore.
func (s *Store) ListWebhooks(ctx context.Context, tenant string) (_ []*users.Webhook, err error) {
	defer wrap(ctx, &err, "list webhooks of %s", tenant)
	var ws []*users.Webhook
	err = s.do(ctx, read, func(c *pgxpool.Conn) (err error) {
		ws, err = queryWebhooks(ctx, c, selectWebhooks+"WHERE "+usersql.TenantMatch("$1")+" ORDER BY create_time, id", tenant)
		return err
	})
	return ws, err
}

// UpdateWebhook changes the tenant's subscription under a row lock; see
// users.WebhookStore.
func (s *Store) UpdateWebhook(ctx context.Context, tenant, id string, fn func(*users.Webhook) error) (_ *users.Webhook, err error) {
	defer wrap(ctx, &err, "webhook %s", id)
	uid, ok := parseID(id)
	if !ok {
		return nil, users.ErrNotFound
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	old, err := lockWebhook(ctx, tx, tenant, uid)
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
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return usersql.StoredWebhook(w), nil
}

// lockWebhook reads the tenant's subscription (any tenant's for
// users.AllTenants) with SELECT … FOR UPDATE within tx.
func lockWebhook(ctx context.Context, tx pgx.Tx, tenant string, uid pgtype.UUID) (*users.Webhook, error) {
	w, err := scanWebhook(tx.QueryRow(ctx, selectWebhooks+"WHERE id = $1 AND "+webhookTenant+" FOR UPDATE", uid, tenant))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	return w, err
}

// writeWebhook stores the mutable columns of w within tx.
func writeWebhook(ctx context.Context, tx pgx.Tx, w *users.Webhook) error {
	args, err := webhookArgs(w)
	if err != nil {
		return err
	}
	// webhookArgs is in webhookColumns order; updateWebhook skips
	// create_time, tenant_id and all_tenants.
	_, err = tx.Exec(ctx, updateWebhook, append(args[:7], args[8:11]...)...)
	return err
}

// DeleteWebhook deletes the tenant's subscription, and by cascade its
// attempts, in one statement; see users.WebhookStore.
func (s *Store) DeleteWebhook(ctx context.Context, tenant, id string) (err error) {
	defer wrap(ctx, &err, "webhook %s", id)
	uid, ok := parseID(id)
	if !ok {
		return users.ErrNotFound
	}
	tag, err := s.pool.Exec(ctx, "DELETE FROM webhooks WHERE id = $1 AND "+webhookTenant, uid, tenant)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return users.ErrNotFound
	}
	return nil
}

// RecordDeliveryAttempts locks the subscription, stores the attempts and
// the subscription's new failure count, in one transaction; see
// users.WebhookStore and users.Webhook.Record.
func (s *Store) RecordDeliveryAttempts(ctx context.Context, webhookID string, as []users.DeliveryAttempt, disableAfter int) (_ *users.Webhook, err error) {
	defer wrap(ctx, &err, "webhook %s", webhookID)
	uid, ok := parseID(webhookID)
	if !ok {
		return nil, users.ErrNotFound
	}
	// The attempts go in one round trip, after the lock.
	var batch pgx.Batch
	for _, a := range as {
		if a.WebhookID != webhookID {
			return nil, fmt.Errorf("an attempt to webhook %s", a.WebhookID)
		}
		eventID, err := uuid.Parse(a.EventID)
		if err != nil {
			return nil, fmt.Errorf("event id %q: %w", a.EventID, err)
		}
		batch.Queue(insertAttempt, uid, pgUUID(eventID), string(a.EventType), a.Attempt, a.Status,
			a.Latency.Microseconds(), a.Success, a.Error, a.Time)
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	w, err := lockWebhook(ctx, tx, users.AllTenants, uid)
	if err != nil {
		return nil, err
	}
	if batch.Len() > 0 {
		if err := tx.SendBatch(ctx, &batch).Close(); err != nil {
			return nil, err
		}
	}
	for _, a := range as {
		w.Record(a, disableAfter)
	}
	if err := writeWebhook(ctx, tx, w); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return usersql.StoredWebhook(w), nil
}

// ListDeliveryAttempts reads the newest attempts in one statement; see
// users.WebhookStore.
func (s *Store) ListDeliveryAttempts(ctx context.Context, webhookID string, limit int) (_ []users.DeliveryAttempt, err error) {
	defer wrap(ctx, &err, "list deliveries of webhook %s", webhookID)
	uid, ok := parseID(webhookID)
	if !ok || limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, listAttempts, uid, limit)
	if err != nil {
		return nil, err
	}
	var (
		out         []users.DeliveryAttempt
		a           users.DeliveryAttempt
		wid, evID   pgtype.UUID
		typ         string
		latency     int64
		attemptTime time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&wid, &evID, &typ, &a.Attempt, &a.Status, &latency, &a.Success, &a.Error, &attemptTime}, func() error {
		a.WebhookID, a.EventID = uuid.UUID(wid.Bytes).String(), uuid.UUID(evID.Bytes).String()
		a.EventType, a.Latency, a.Time = users.EventType(typ), time.Duration(latency)*time.Microsecond, attemptTime.UTC()
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PurgeDeliveryAttempts deletes the delivery attempts made before the time;
// see users.WebhookStore.
func (s *Store) PurgeDeliveryAttempts(ctx context.Context, before time.Time) (_ int, err error) {
	defer wrap(ctx, &err, "purge delivery attempts")
	tag, err := s.pool.Exec(ctx, "DELETE FROM webhook_attempts WHERE time < $1", before)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// DispatchEvents locks the dispatcher's sink row, reads the events after
// its position by ListEvents' rule and the enabled subscriptions, enqueues
// the deliveries and saves the new position, in one READ COMMITTED
// transaction; see users.WebhookStore and the comment at the top of this file.
func (s *Store) DispatchEvents(ctx context.Context, limit int) (_ int, err error) {
	defer wrap(ctx, &err, "dispatch events")
	if s.jobs == nil {
		return 0, errNoJobs
	}
	if limit <= 0 {
		return 0, nil
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, ensureSink, usersql.DispatcherSink); err != nil {
		return 0, err
	}
	var pos users.EventPos
	if err := tx.QueryRow(ctx, lockSink, usersql.DispatcherSink).Scan(&pos.Tx, &pos.Seq); err != nil {
		return 0, err
	}
	evs, err := listEventsAfter(ctx, tx, users.AllTenants, pos, limit)
	if err != nil {
		return 0, err
	}
	if len(evs) == 0 {
		return 0, nil // the rollback releases the lock
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
	if _, err := tx.Exec(ctx, upsertSink, usersql.DispatcherSink, last.Tx, last.Seq); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	return len(evs), nil
}

// queryWebhooks runs a select of webhookColumns with args and collects the
// rows.
func queryWebhooks(ctx context.Context, q querier, sql string, args ...any) ([]*users.Webhook, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	var (
		ws []*users.Webhook
		r  webhookRow
	)
	_, err = pgx.ForEachRow(rows, r.dest(), func() error {
		ws = append(ws, r.webhook())
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ws, nil
}

// webhookRow holds the webhookColumns of one row as pgx scans them.
type webhookRow struct {
	id                     pgtype.UUID
	url, secret, reason    string
	types                  []string
	enabled                bool
	failures               int
	createTime, updateTime time.Time
	lastSuccess, lastFail  pgtype.Timestamptz
	tenant                 string
	allTenants             bool
}

func (r *webhookRow) dest() []any {
	return []any{&r.id, &r.url, &r.types, &r.secret, &r.enabled, &r.failures, &r.reason, &r.createTime, &r.updateTime,
		&r.lastSuccess, &r.lastFail, &r.tenant, &r.allTenants}
}

// webhook converts the row: times in UTC, the zero time for NULL, nil for
// no event types.
func (r *webhookRow) webhook() *users.Webhook {
	w := &users.Webhook{
		Tenant:              r.tenant,
		AllTenants:          r.allTenants,
		ID:                  uuid.UUID(r.id.Bytes).String(),
		URL:                 r.url,
		Secret:              r.secret,
		Enabled:             r.enabled,
		ConsecutiveFailures: r.failures,
		DisabledReason:      r.reason,
		CreateTime:          r.createTime.UTC(),
		UpdateTime:          r.updateTime.UTC(),
	}
	if r.lastSuccess.Valid {
		w.LastSuccessTime = r.lastSuccess.Time.UTC()
	}
	if r.lastFail.Valid {
		w.LastFailureTime = r.lastFail.Time.UTC()
	}
	for _, t := range r.types {
		w.EventTypes = append(w.EventTypes, users.EventType(t))
	}
	return w
}

func scanWebhook(row pgx.Row) (*users.Webhook, error) {
	var r webhookRow
	if err := row.Scan(r.dest()...); err != nil {
		return nil, err
	}
	return r.webhook(), nil
}

// webhookArgs returns the arguments of insertWebhook for w.
func webhookArgs(w *users.Webhook) ([]any, error) {
	id, err := uuid.Parse(w.ID)
	if err != nil {
		return nil, fmt.Errorf("webhook %s: id: %w", w.ID, err)
	}
	types := make([]string, len(w.EventTypes))
	for i, t := range w.EventTypes {
		types[i] = string(t)
	}
	return []any{pgUUID(id), w.URL, types, w.Secret, w.Enabled, w.ConsecutiveFailures, w.DisabledReason,
		w.CreateTime, w.UpdateTime, nullTime(w.LastSuccessTime), nullTime(w.LastFailureTime), w.Tenant, w.AllTenants}, nil
}
