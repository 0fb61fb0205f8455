package jobs

import (
	"context"
	"time"

	"github.com/usersd/usersd/internal/users"
)

// backlogFunc reads the subscriptions' backlogs (tables.backlogs).
type backlogFunc func(ctx context.Context) (map[string]users.WebhookBacklog, error)

// The backlog queries, one per database: the same question of River's
// table, whose args are jsonb on Postgres and JSONB blobs on SQLite. They
// count distinct events: a job inserts the one with its events to try
// again before River records it completed, so for a moment both hold them.
const (
	pgBacklogQuery = `SELECT webhook_id, count(DISTINCT event_id), min(since) FROM (
	SELECT j.args->>'webhook_id' AS webhook_id, e->>'id' AS event_id,
		coalesce((j.args->>'since')::bigint, (extract(epoch FROM j.created_at) * 1000)::bigint) AS since
	FROM river_job j CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN j.kind = 'deliver_webhook_batch'
		THEN j.args->'events' ELSE jsonb_build_array(jsonb_build_object('id', j.args->>'event_id')) END) e
	WHERE j.kind IN ('deliver_webhook_batch', 'deliver_webhook')
	  AND j.state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
) pending GROUP BY webhook_id`
	sqliteBacklogQuery = `SELECT webhook_id, count(DISTINCT event_id), min(since) FROM (
	SELECT json_extract(j.args, '$.webhook_id') AS webhook_id, json_extract(e.value, '$.id') AS event_id,
		coalesce(json_extract(j.args, '$.since'), CAST(unixepoch(j.created_at, 'subsec') * 1000 AS INTEGER)) AS since
	FROM river_job j, json_each(CASE WHEN j.kind = 'deliver_webhook_batch'
		THEN json_extract(j.args, '$.events') ELSE json_array(json_object('id', json_extract(j.args, '$.event_id'))) END) e
	WHERE j.kind IN ('deliver_webhook_batch', 'deliver_webhook')
	  AND j.state IN ('available', 'pending', 'retryable', 'running', 'scheduled')
) GROUP BY webhook_id`
)

// scanBacklog reads the rows of a backlog query: per subscription, its
// events and the oldest one's time (DeliverBatchArgs.Since; a job of the
// older single-event kind counts one event, as old as the job).
func scanBacklog(rows rows) (map[string]users.WebhookBacklog, error) {
	out := map[string]users.WebhookBacklog{}
	for rows.Next() {
		var (
			id       string
			n, since int64
		)
		if err := rows.Scan(&id, &n, &since); err != nil {
			return nil, err
		}
		out[id] = users.WebhookBacklog{Events: int(n), Oldest: time.UnixMilli(since).UTC()}
	}
	return out, rows.Err()
}

// WebhookBacklogs implements users.BacklogReader: the backlogs of the
// subscriptions that have one, read from the queue's delivery jobs.
func (q *Queue[TTx]) WebhookBacklogs(ctx context.Context) (map[string]users.WebhookBacklog, error) {
	return q.tables.backlogs(ctx)
}
