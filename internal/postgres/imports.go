package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

// Imports: users.ImportStore.

const (
	// insertOperation inserts nothing when the request id is taken: a
	// concurrent import of the same request id waits for the first
	// transaction and then inserts nothing.
	insertOperation = `INSERT INTO operations (id, request_id, fingerprint, total, chunks, create_time)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (request_id) DO NOTHING`

	// selectOperation reads an operation with one row per finished chunk
	// (or one row of NULL chunk columns); readOperation sums them.
	selectOperation = `SELECT o.id, o.request_id, o.fingerprint, o.total, o.chunks, o.create_time,
	c.imported, c.failed, c.failures, c.finish_time
FROM operations o LEFT JOIN operation_chunks c ON c.operation_id = o.id
WHERE `

	// claimChunk records a chunk as begun, or does nothing when it is
	// recorded already. A concurrent run of the same chunk waits for the
	// first transaction: if that commits, it claims nothing.
	claimChunk = `INSERT INTO operation_chunks (operation_id, chunk, imported, failed, failures, finish_time)
VALUES ($1, $2, 0, 0, '[]', $3)
ON CONFLICT (operation_id, chunk) DO NOTHING`

	finishChunk = `UPDATE operation_chunks SET imported = $3, failed = $4, failures = $5, finish_time = $6
WHERE operation_id = $1 AND chunk = $2`

	// importUsers inserts a chunk's users in one statement, in the order
	// given. A row whose address belongs to a live user, stored before or
	// inserted earlier by this statement, is skipped; any other conflict
	// (an id in use) is an error. RETURNING names the rows inserted.
	importUsers = `INSERT INTO users (id, email, email_key, display_name, state, labels, create_time, update_time, delete_time, revision)
SELECT r.id, r.email, r.email_key, r.display_name, r.state, r.labels::jsonb, r.create_time, r.update_time, r.delete_time, r.revision
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
	$7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::bigint[])
	WITH ORDINALITY AS r(id, email, email_key, display_name, state, labels, create_time, update_time, delete_time, revision, n)
ORDER BY r.n
ON CONFLICT (email_key) WHERE state <> 'DELETED' DO NOTHING
RETURNING id`
)

// CreateImport stores op and enqueues its chunks on the Store's Jobs, in
// one transaction; see users.ImportStore. It inserts first and reads the
// stored operation only when the request id is taken.
func (s *Store) CreateImport(ctx context.Context, op *users.Operation, key users.IdempotencyKey, chunks []users.ImportChunk) (_ *users.Operation, err error) {
	defer wrap(ctx, &err, "create import %s", op.ID)
	if s.jobs == nil {
		return nil, errNoJobs
	}
	id, err := uuid.Parse(op.ID)
	if err != nil {
		return nil, fmt.Errorf("id: %w", err)
	}
	fingerprint := key.Fingerprint
	if fingerprint == nil {
		fingerprint = []byte{} // nil would be NULL
	}
	// Each statement of a READ COMMITTED transaction sees what committed
	// before it began, so once the insert has waited for a concurrent
	// import of the same request id, the read sees that import.
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)

	// The operation row may vanish between the two statements (if
	// operations expire); the next attempt then inserts.
	for range 3 {
		tag, err := tx.Exec(ctx, insertOperation, pgUUID(id), key.RequestID, fingerprint, op.Total, op.Chunks, op.CreateTime)
		if err != nil {
			return nil, err
		}
		if tag.RowsAffected() == 1 {
			if err := s.jobs.EnqueueImportTx(ctx, tx, chunks); err != nil {
				return nil, fmt.Errorf("enqueue: %w", err)
			}
			if err := tx.Commit(ctx); err != nil {
				return nil, err
			}
			created := users.Truncate(op.CreateTime)
			return &users.Operation{
				ID:         op.ID,
				RequestID:  key.RequestID,
				Total:      op.Total,
				Chunks:     op.Chunks,
				CreateTime: created,
				UpdateTime: created,
			}, nil
		}
		got, stored, err := readOperation(ctx, tx, "o.request_id = $1", key.RequestID)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("import request %s: %w", key.RequestID, err)
		}
		if !bytes.Equal(stored, fingerprint) {
			return nil, usersql.RequestIDReused()
		}
		return got, nil // the rollback ends a transaction that wrote nothing
	}
	return nil, fmt.Errorf("import request %s: operation keeps disappearing", key.RequestID)
}

// GetOperation reads the operation and its finished chunks in one
// statement; see users.ImportStore.
func (s *Store) GetOperation(ctx context.Context, id string) (_ *users.Operation, err error) {
	defer wrap(ctx, &err, "operation %s", id)
	uid, ok := parseID(id)
	if !ok {
		return nil, users.ErrNotFound
	}
	var op *users.Operation
	err = s.do(ctx, read, func(c *pgxpool.Conn) (err error) {
		op, _, err = readOperation(ctx, c, "o.id = $1", uid)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	return op, err
}

// readOperation reads the operation that matches where (a condition on o
// with one parameter) and sums its finished chunks. It returns the
// operation and its fingerprint, or pgx.ErrNoRows.
func readOperation(ctx context.Context, q querier, where string, arg any) (*users.Operation, []byte, error) {
	rows, err := q.Query(ctx, selectOperation+where, arg)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var (
		op          *users.Operation
		fingerprint []byte
	)
	for rows.Next() {
		var (
			id               pgtype.UUID
			o                users.Operation
			fp, failures     []byte
			imported, failed pgtype.Int4
			finish           pgtype.Timestamptz
		)
		err := rows.Scan(&id, &o.RequestID, &fp, &o.Total, &o.Chunks, &o.CreateTime,
			&imported, &failed, &failures, &finish)
		if err != nil {
			return nil, nil, err
		}
		if op == nil {
			o.ID = uuid.UUID(id.Bytes).String()
			o.CreateTime = o.CreateTime.UTC()
			op, fingerprint = &o, fp
		}
		if !finish.Valid {
			continue // no chunk has finished
		}
		if err := usersql.AddChunk(op, int(imported.Int32), int(failed.Int32), failures, finish.Time.UTC()); err != nil {
			return nil, nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	if op == nil {
		return nil, nil, pgx.ErrNoRows
	}
	usersql.FinishProgress(op)
	return op, fingerprint, nil
}

// ImportChunk claims the chunk, inserts its valid users in one statement
// and records the outcome, in one transaction; see users.ImportStore.
func (s *Store) ImportChunk(ctx context.Context, opID string, chunk int, valid []users.ImportedUser, failed []users.RowFailure) (err error) {
	defer wrap(ctx, &err, "operation %s chunk %s", opID, strconv.Itoa(chunk))
	uid, ok := parseID(opID)
	if !ok {
		return users.ErrNotFound
	}
	ids, args, err := importArgs(valid)
	if err != nil {
		return err
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)

	tag, err := tx.Exec(ctx, claimChunk, uid, chunk, time.Now())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign_key_violation
		return users.ErrNotFound
	}
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return nil // a job that ran again
	}

	inserted := make(map[[16]byte]bool, len(valid))
	if len(valid) > 0 {
		rows, err := tx.Query(ctx, importUsers, args...)
		if err != nil {
			return fmt.Errorf("import users: %w", err)
		}
		var id pgtype.UUID
		_, err = pgx.ForEachRow(rows, []any{&id}, func() error {
			inserted[id.Bytes] = true
			return nil
		})
		if err != nil {
			return fmt.Errorf("import users: %w", err)
		}
	}
	imported := 0
	failures := slices.Clone(failed)
	var evs []users.Event
	for i, v := range valid {
		if inserted[ids[i].Bytes] {
			imported++
			evs = append(evs, users.CreatedEvent(ctx, v.User))
			continue
		}
		failures = append(failures, users.RowFailure{Index: v.Index, Reason: users.ReasonEmailTaken})
	}
	if err := appendEvents(ctx, tx, evs); err != nil {
		return err
	}
	usersql.SortFailures(failures)
	encoded, err := usersql.EncodeFailures(failures)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, finishChunk, uid, chunk, imported, len(failures), encoded, time.Now())
	if err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	return nil
}

// importArgs returns the arguments of importUsers, one array per column,
// and the first of them: the users' ids.
func importArgs(valid []users.ImportedUser) ([]pgtype.UUID, []any, error) {
	n := len(valid)
	var (
		ids         = make([]pgtype.UUID, n)
		emails      = make([]string, n)
		keys        = make([]string, n)
		names       = make([]string, n)
		states      = make([]string, n)
		labels      = make([]string, n)
		createTimes = make([]time.Time, n)
		updateTimes = make([]time.Time, n)
		deleteTimes = make([]pgtype.Timestamptz, n)
		revisions   = make([]int64, n)
	)
	for i, v := range valid {
		u := v.User
		id, err := uuid.Parse(u.ID)
		if err != nil {
			return nil, nil, fmt.Errorf("user %s: id: %w", u.ID, err)
		}
		l, err := labelsJSON(u)
		if err != nil {
			return nil, nil, err
		}
		ids[i] = pgUUID(id)
		emails[i], keys[i], names[i] = u.Email, users.EmailKey(u.Email), u.DisplayName
		states[i], labels[i] = u.State.String(), l
		createTimes[i], updateTimes[i], deleteTimes[i] = u.CreateTime, u.UpdateTime, nullTime(u.DeleteTime)
		revisions[i] = u.Revision
	}
	return ids, []any{ids, emails, keys, names, states, labels, createTimes, updateTimes, deleteTimes, revisions}, nil
}
