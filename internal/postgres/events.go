package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

// Events: users.EventStore, the outbox. Each event row records, besides its
// seq, the id of the transaction that appended it (txid,
// pg_current_xact_id()), and the feed is in (txid, seq) order.
//
// Why not seq alone: sequence values are handed out when a row is inserted,
// and transactions commit in any order, so a reader can see seq 11
// committed while seq 10 is still in flight; a cursor past 11 would then
// skip 10 for good.
//
// Why (txid, seq) with the xmin bound is sound: the reader's snapshot has an
// xmin, the lowest id of a transaction still running when the snapshot was
// taken. Every transaction with a lower id has ended, so its events are
// visible to the snapshot if it committed and will never exist if it did
// not; and every transaction that starts later gets a higher id. So the
// events with txid < xmin are final: none can appear among them later, and
// the snapshot sees them all. ListEvents returns only those, in (txid, seq)
// order, so everything at or below a cursor it returned was either
// returned already or never will exist. Within one transaction all events
// commit together, ordered by seq.
//
// The price: an event is held back until every transaction that took an id
// before its own has ended, so a long-running writing transaction anywhere
// on the server (ids are cluster-wide) delays the feed, though it loses or
// repeats nothing. See docs/events.md.

// eventColumns are the columns eventRow scans, in its order.
const eventColumns = "txid, seq, id, tenant_id, type, user_id, snapshot, paths, time, trace_parent, group_id"

const (
	// appendEventsSQL inserts events given as arrays, one element per
	// event, in array order, so that their seqs follow it. Paths travel as
	// JSON arrays, since Postgres arrays cannot be ragged. A NULL user id
	// is an event of no user (a group's own), a NULL group id one of no
	// group.
	appendEventsSQL = `INSERT INTO events (id, tenant_id, type, user_id, group_id, snapshot, paths, time, trace_parent)
SELECT e.id, e.tenant_id, e.type, e.user_id, e.group_id, e.snapshot::jsonb, ARRAY(SELECT jsonb_array_elements_text(e.paths::jsonb)), e.time, e.trace_parent
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::timestamptz[], $8::text[], $9::uuid[])
	WITH ORDINALITY AS e(id, tenant_id, type, user_id, snapshot, paths, time, trace_parent, group_id, n)
ORDER BY e.n`

	// listEvents reads the feed after ($1, $2): only events of
	// transactions below the snapshot's xmin, which have all ended.
	listEvents = `SELECT ` + eventColumns + `
FROM events
WHERE (txid, seq) > ($1::xid8, $2::bigint)
	AND txid < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY txid, seq
LIMIT $3`

	purgeEvents = `DELETE FROM events WHERE id IN (
	SELECT id FROM events WHERE time < $1 ORDER BY time LIMIT $2)`
)

// listTenantEvents is listEvents for the tenant $4's events only, on
// events_tenant_txid_seq: the same order and the same bound, so a
// tenant's feed is the feed of every tenant without the others'
// events. A deleted tenant's feed is empty.
var listTenantEvents = `SELECT ` + eventColumns + `
FROM events
WHERE tenant_id = $4 AND ` + usersql.LiveTenant("$4") + `
	AND (txid, seq) > ($1::xid8, $2::bigint)
	AND txid < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY txid, seq
LIMIT $3`

// createdEventArgs returns the arguments $11…$14 of insertUser and
// insertUserWithKey for ev, a user.created event.
func createdEventArgs(ev *users.Event) ([]any, error) {
	id, err := uuid.Parse(ev.ID)
	if err != nil {
		return nil, fmt.Errorf("event %s: id: %w", ev.ID, err)
	}
	snapshot, err := usersql.EventSnapshot(ev)
	if err != nil {
		return nil, err
	}
	return []any{pgUUID(id), string(snapshot), ev.Time, ev.TraceParent}, nil
}

// appendEventsStmt returns appendEventsSQL and its arguments for evs.
func appendEventsStmt(evs []users.Event) (string, []any, error) {
	n := len(evs)
	var (
		ids          = make([]pgtype.UUID, n)
		tenants      = make([]string, n)
		types        = make([]string, n)
		userIDs      = make([]pgtype.UUID, n)
		groupIDs     = make([]pgtype.UUID, n)
		snapshots    = make([]pgtype.Text, n)
		paths        = make([]string, n)
		times        = make([]time.Time, n)
		traceParents = make([]string, n)
	)
	for i := range evs {
		ev := &evs[i]
		id, err := uuid.Parse(ev.ID)
		if err != nil {
			return "", nil, fmt.Errorf("event %s: id: %w", ev.ID, err)
		}
		userID, err := eventRef(ev.UserID)
		if err != nil {
			return "", nil, fmt.Errorf("event %s: user id %q: %w", ev.ID, ev.UserID, err)
		}
		groupID, err := eventRef(ev.GroupID)
		if err != nil {
			return "", nil, fmt.Errorf("event %s: group id %q: %w", ev.ID, ev.GroupID, err)
		}
		snapshot, err := usersql.EventSnapshot(ev)
		if err != nil {
			return "", nil, err
		}
		p := []byte("[]")
		if len(ev.Paths) > 0 {
			if p, err = json.Marshal(ev.Paths); err != nil {
				return "", nil, fmt.Errorf("event %s: paths: %w", ev.ID, err)
			}
		}
		ids[i], tenants[i], types[i], userIDs[i], groupIDs[i] = pgUUID(id), ev.Tenant, string(ev.Type), userID, groupID
		snapshots[i] = pgtype.Text{String: string(snapshot), Valid: snapshot != nil}
		paths[i], times[i], traceParents[i] = string(p), ev.Time, ev.TraceParent
	}
	return appendEventsSQL, []any{ids, tenants, types, userIDs, snapshots, paths, times, traceParents, groupIDs}, nil
}

// eventRef returns the user or group id of an event as a column value:
// NULL for "", which the event has none of.
func eventRef(id string) (pgtype.UUID, error) {
	if id == "" {
		return pgtype.UUID{}, nil
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return pgtype.UUID{}, err
	}
	return pgUUID(u), nil
}

// appendEvents inserts evs within tx, the transaction of their changes.
func appendEvents(ctx context.Context, tx pgx.Tx, evs []users.Event) error {
	if len(evs) == 0 {
		return nil
	}
	sql, args, err := appendEventsStmt(evs)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("append events: %w", err)
	}
	return nil
}

// ListEvents returns the tenant's events (every tenant's for
// users.AllTenants) after the position that no transaction can precede any
// more, in (txid, seq) order, in one statement; see users.EventStore and
// the comment at the top of this file.
func (s *Store) ListEvents(ctx context.Context, tenant string, after users.EventPos, limit int) (_ []users.Event, err error) {
	defer wrap(ctx, &err, "list events of %s", tenant)
	if limit <= 0 {
		return nil, nil
	}
	var evs []users.Event
	err = s.do(ctx, read, func(c *pgxpool.Conn) (err error) {
		evs, err = listEventsAfter(ctx, c, tenant, after, limit)
		return err
	})
	return evs, err
}

// listEventsAfter runs listEvents, or listTenantEvents for a tenant other
// than users.AllTenants, on q, the pool or a transaction: the events after
// the position below the xmin of the statement's snapshot.
func listEventsAfter(ctx context.Context, q querier, tenant string, after users.EventPos, limit int) ([]users.Event, error) {
	if after.Seq < 0 {
		return nil, errors.New("negative seq") // ParseEventCursor makes none
	}
	var (
		rows pgx.Rows
		err  error
	)
	if tenant == users.AllTenants {
		rows, err = q.Query(ctx, listEvents, after.Tx, after.Seq, limit)
	} else {
		rows, err = q.Query(ctx, listTenantEvents, after.Tx, after.Seq, limit, tenant)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	evs := make([]users.Event, 0, min(limit, 1000))
	var r eventRow
	dest := r.dest()
	for rows.Next() {
		r.snapshot, r.paths = nil, nil
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		ev, err := r.event()
		if err != nil {
			return nil, err
		}
		evs = append(evs, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return evs, nil
}

// GetEvent returns the event with the id, in one statement; see
// users.EventStore.
func (s *Store) GetEvent(ctx context.Context, id string) (_ *users.Event, err error) {
	defer wrap(ctx, &err, "event %s", id)
	uid, ok := parseID(id)
	if !ok {
		return nil, users.ErrNotFound
	}
	var r eventRow
	err = s.do(ctx, read, func(c *pgxpool.Conn) error {
		return c.QueryRow(ctx, "SELECT "+eventColumns+" FROM events WHERE id = $1", uid).Scan(r.dest()...)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	ev, err := r.event()
	if err != nil {
		return nil, err
	}
	return &ev, nil
}

// eventRow holds the eventColumns of one row as pgx scans them.
type eventRow struct {
	pos      users.EventPos
	id, uid  pgtype.UUID
	gid      pgtype.UUID
	tenant   string
	typ      string
	snapshot []byte
	paths    []string
	time     time.Time
	trace    string
}

func (r *eventRow) dest() []any {
	return []any{&r.pos.Tx, &r.pos.Seq, &r.id, &r.tenant, &r.typ, &r.uid, &r.snapshot, &r.paths, &r.time, &r.trace, &r.gid}
}

// event converts the row: the time in UTC, nil for no paths, "" for a
// NULL user or group id, the tenant on the event and on its user or group.
func (r *eventRow) event() (users.Event, error) {
	ev := users.Event{
		Pos:         r.pos,
		ID:          uuid.UUID(r.id.Bytes).String(),
		Tenant:      r.tenant,
		Type:        users.EventType(r.typ),
		Time:        r.time.UTC(),
		TraceParent: r.trace,
	}
	if r.uid.Valid {
		ev.UserID = uuid.UUID(r.uid.Bytes).String()
	}
	if r.gid.Valid {
		ev.GroupID = uuid.UUID(r.gid.Bytes).String()
	}
	if len(r.paths) > 0 {
		ev.Paths = slices.Clone(r.paths)
	}
	if r.snapshot != nil {
		if err := usersql.DecodeEventSnapshot(&ev, r.snapshot); err != nil {
			return ev, err
		}
	}
	return ev, nil
}

// PurgeEvents deletes up to limit events appended before the time, oldest
// first, in one statement; see users.EventStore.
func (s *Store) PurgeEvents(ctx context.Context, before time.Time, limit int) (_ int, err error) {
	defer wrap(ctx, &err, "purge events")
	if limit <= 0 {
		return 0, nil
	}
	tag, err := s.pool.Exec(ctx, purgeEvents, before, limit)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}
