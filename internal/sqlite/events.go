package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

// Events: users.EventStore, the outbox. Events are appended on the writer,
// within the transaction of their change, and read on the readers.
//
// The feed is in seq order, and sound: the single writer connection runs
// one transaction at a time, from BEGIN IMMEDIATE to COMMIT, so the
// transactions that append events commit in the order of the seqs they
// take, and a reader's snapshot holds every committed event up to some seq
// and none after it. An event that a reader has not seen can therefore
// never get a seq at or below one it has seen. AUTOINCREMENT keeps seq from
// being reused once the newest events are purged.

// eventColumns are the columns scanEvent reads, in its order.
const eventColumns = "seq, id, tenant_id, type, user_id, snapshot, paths, time, trace_parent, group_id"

// listEventsSQL reads the feed after seq ?1: ListEvents runs it on the
// readers, DispatchEvents within its writer transaction.
const listEventsSQL = "SELECT " + eventColumns + " FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"

// listTenantEventsSQL reads one tenant's (?3) feed after seq ?1, on
// events_tenant_seq; a deleted tenant's is empty.
var listTenantEventsSQL = "SELECT " + eventColumns + " FROM events WHERE tenant_id = ?3 AND " + usersql.LiveTenant("?3") +
	" AND seq > ?1 ORDER BY seq LIMIT ?2"

// appendEvents inserts evs with ins, a stmtInsertEvent of the transaction
// that made their changes. An event of no user (group.created, updated,
// deleted) stores an empty user id, and one of no group a NULL group_id.
func appendEvents(ctx context.Context, ins *sql.Stmt, evs ...users.Event) error {
	for i := range evs {
		ev := &evs[i]
		snapshot, err := usersql.EventSnapshot(ev)
		if err != nil {
			return err
		}
		var snap any // NULL for an event without a user or a group
		if snapshot != nil {
			snap = string(snapshot)
		}
		paths := "[]"
		if len(ev.Paths) > 0 {
			b, err := json.Marshal(ev.Paths)
			if err != nil {
				return fmt.Errorf("event %s: paths: %w", ev.ID, err)
			}
			paths = string(b)
		}
		_, err = ins.ExecContext(ctx, ev.ID, ev.Tenant, string(ev.Type), ev.UserID, snap, paths, ev.Time.UnixMicro(), ev.TraceParent,
			usersql.NullText(ev.GroupID))
		if err != nil {
			return fmt.Errorf("append event %s: %w", ev.Type, err)
		}
	}
	return nil
}

// ListEvents reads the tenant's events (every tenant's for
// users.AllTenants) after the position from the readers, in seq order; see
// users.EventStore. Events from this store have Tx 0, so a position with
// another Tx is not one of its cursors.
func (s *Store) ListEvents(ctx context.Context, tenant string, after users.EventPos, limit int) (_ []users.Event, err error) {
	defer wrap(ctx, &err, "list events")
	if after.Tx != 0 {
		return nil, users.Invalid("after", "not a cursor of this database's event feed")
	}
	if limit <= 0 {
		return nil, nil // SQLite reads a negative LIMIT as none
	}
	if tenant != users.AllTenants {
		list, err := s.stmt(ctx, stmtListTenantEvents)
		if err != nil {
			return nil, err
		}
		return listEvents(ctx, list, after, limit, tenant)
	}
	list, err := s.stmt(ctx, stmtListEvents)
	if err != nil {
		return nil, err
	}
	return listEvents(ctx, list, after, limit)
}

// listEvents runs list, a stmtListEvents on the readers or a
// stmtListEventsTx of a writer transaction, or a stmtListTenantEvents with
// the tenant in more, and reads every row. The caller checks after and
// limit.
func listEvents(ctx context.Context, list *sql.Stmt, after users.EventPos, limit int, more ...any) ([]users.Event, error) {
	rows, err := list.QueryContext(ctx, append([]any{after.Seq, limit}, more...)...)
	if err != nil {
		return nil, err
	}
	return collect(rows, make([]users.Event, 0, min(limit, 1000)), scanEvent)
}

// GetEvent reads the event with the id from the readers; see users.EventStore.
func (s *Store) GetEvent(ctx context.Context, id string) (_ *users.Event, err error) {
	defer wrap(ctx, &err, "event %s", id)
	get, err := s.stmt(ctx, stmtGetEvent)
	if err != nil {
		return nil, err
	}
	rows, err := get.QueryContext(ctx, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, users.ErrNotFound
	}
	ev, err := scanEvent(rows)
	if err != nil {
		return nil, err
	}
	return &ev, rows.Close()
}

// scanEvent reads the eventColumns of one row.
func scanEvent(row rowScanner) (users.Event, error) {
	var (
		ev                  users.Event
		typ, paths          string
		snapshot, groupID   sql.NullString
		micros              int64
		seq                 int64
		userID, traceParent string
	)
	if err := row.Scan(&seq, &ev.ID, &ev.Tenant, &typ, &userID, &snapshot, &paths, &micros, &traceParent, &groupID); err != nil {
		return ev, err
	}
	ev.Pos = users.EventPos{Seq: seq}
	ev.Type, ev.UserID, ev.Time, ev.TraceParent = users.EventType(typ), userID, fromMicros(micros), traceParent
	ev.GroupID = groupID.String
	if snapshot.Valid {
		if err := usersql.DecodeEventSnapshot(&ev, []byte(snapshot.String)); err != nil {
			return ev, err
		}
	}
	if paths != "[]" {
		if err := json.Unmarshal([]byte(paths), &ev.Paths); err != nil {
			return ev, fmt.Errorf("event %s: stored paths: %w", ev.ID, err)
		}
	}
	return ev, nil
}

// PurgeEvents deletes up to limit events appended before the time, oldest
// first, in one writer transaction; see users.EventStore.
func (s *Store) PurgeEvents(ctx context.Context, before time.Time, limit int) (_ int, err error) {
	defer wrap(ctx, &err, "purge events")
	if limit <= 0 {
		return 0, nil
	}
	purge, err := s.stmt(ctx, stmtPurgeEvents)
	if err != nil {
		return 0, err
	}
	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	res, err := tx.StmtContext(ctx, purge).ExecContext(ctx, before.UnixMicro(), limit)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	s.db.afterCommit(ctx)
	return int(n), nil
}
