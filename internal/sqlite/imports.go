package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

// Imports: users.ImportStore.

// selectOperation reads an operation with one row per finished chunk (or
// one row of NULL chunk columns); readOperation sums them.
const selectOperation = "SELECT o.tenant_id, o.id, o.request_id, o.fingerprint, o.total, o.chunks, o.create_time, o.kind, " +
	"c.imported, c.failed, c.failures, c.finish_time " +
	"FROM operations o LEFT JOIN operation_chunks c ON c.operation_id = o.id "

// CreateImport stores op and enqueues its chunks on the Store's Jobs, in
// one writer transaction; see users.ImportStore.
func (s *Store) CreateImport(ctx context.Context, op *users.Operation, key users.IdempotencyKey, chunks []users.ImportChunk) (_ *users.Operation, err error) {
	defer wrap(ctx, &err, "create import %s", op.ID)
	if s.jobs == nil {
		return nil, errNoJobs
	}
	getOp, err := s.stmt(ctx, stmtGetOperationTx)
	if err != nil {
		return nil, err
	}
	insertOp, err := s.stmt(ctx, stmtInsertOperation)
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

	if _, err := tenants.alive(ctx, tx, op.Tenant); err != nil {
		return nil, err
	}
	got, fingerprint, err := readOperation(ctx, tx.StmtContext(ctx, getOp), op.Tenant, key.RequestID)
	switch {
	case err == nil:
		if !bytes.Equal(fingerprint, key.Fingerprint) {
			return nil, usersql.RequestIDReused()
		}
		return got, nil // the rollback ends a transaction that wrote nothing
	case !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("import request %s: %w", key.RequestID, err)
	}

	fingerprint = key.Fingerprint
	if fingerprint == nil {
		fingerprint = []byte{} // nil would bind NULL
	}
	_, err = tx.StmtContext(ctx, insertOp).ExecContext(ctx,
		op.Tenant, op.ID, key.RequestID, fingerprint, op.Total, op.Chunks, op.CreateTime.UnixMicro())
	if err != nil {
		return nil, err
	}
	if err := s.jobs.EnqueueImportTx(ctx, tx, chunks); err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s.db.afterCommit(ctx)
	created := fromMicros(op.CreateTime.UnixMicro())
	return &users.Operation{
		Tenant:     op.Tenant,
		ID:         op.ID,
		RequestID:  key.RequestID,
		Total:      op.Total,
		Chunks:     op.Chunks,
		CreateTime: created,
		UpdateTime: created,
	}, nil
}

// GetOperation reads the tenant's operation and its finished chunks in one
// statement on the readers; see users.ImportStore.
func (s *Store) GetOperation(ctx context.Context, tenant, id string) (_ *users.Operation, err error) {
	defer wrap(ctx, &err, "operation %s", id)
	get, err := s.stmt(ctx, stmtGetOperation)
	if err != nil {
		return nil, err
	}
	op, _, err := readOperation(ctx, get, tenant, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	return op, err
}

// readOperation runs get, a selectOperation statement, with the tenant and
// arg and sums the chunks it returns. It returns the operation and its
// fingerprint, or sql.ErrNoRows.
func readOperation(ctx context.Context, get *sql.Stmt, tenant string, arg any) (*users.Operation, []byte, error) {
	rows, err := get.QueryContext(ctx, tenant, arg)
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
			o                        users.Operation
			fp                       []byte
			createTime               int64
			kind                     string
			imported, failed, finish sql.NullInt64
			failures                 sql.NullString
		)
		err := rows.Scan(&o.Tenant, &o.ID, &o.RequestID, &fp, &o.Total, &o.Chunks, &createTime, &kind,
			&imported, &failed, &failures, &finish)
		if err != nil {
			return nil, nil, err
		}
		if op == nil {
			o.CreateTime = fromMicros(createTime)
			if err := usersql.SetOperationKind(&o, kind); err != nil {
				return nil, nil, err
			}
			op, fingerprint = &o, fp
		}
		if !finish.Valid {
			continue // no chunk has finished
		}
		if err := usersql.AddChunk(op, int(imported.Int64), int(failed.Int64), []byte(failures.String), fromMicros(finish.Int64)); err != nil {
			return nil, nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	if op == nil {
		return nil, nil, sql.ErrNoRows
	}
	usersql.FinishProgress(op)
	return op, fingerprint, rows.Close()
}

// ImportChunk inserts the valid users of a chunk and records the chunk, in
// one writer transaction; see users.ImportStore. The single writer makes the
// check that the chunk is new and its recording atomic.
func (s *Store) ImportChunk(ctx context.Context, opID string, chunk int, valid []users.ImportedUser, failed []users.RowFailure) (err error) {
	defer wrap(ctx, &err, "operation %s chunk %s", opID, strconv.Itoa(chunk))
	state, err := s.stmt(ctx, stmtChunkState)
	if err != nil {
		return err
	}
	importUser, err := s.stmt(ctx, stmtImportUser)
	if err != nil {
		return err
	}
	insertChunk, err := s.stmt(ctx, stmtInsertChunk)
	if err != nil {
		return err
	}
	insertEvent, err := s.stmt(ctx, stmtInsertEvent)
	if err != nil {
		return err
	}

	tenants, err := s.tenantStmts(ctx)
	if err != nil {
		return err
	}

	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()

	var (
		tenant sql.NullString
		done   bool
	)
	if err := tx.StmtContext(ctx, state).QueryRowContext(ctx, opID, chunk).Scan(&tenant, &done); err != nil {
		return err
	}
	if !tenant.Valid {
		return users.ErrNotFound
	}
	if done {
		return nil // a job that ran again: the rollback ends a read
	}
	quota, err := tenants.quota(ctx, tx, tenant.String)
	reason := users.ReasonQuota
	if errors.Is(err, users.ErrNotFound) {
		// The tenant was deleted since the import began: its users are
		// out of reach, and the rows are not imported.
		quota, err, reason = usersql.Quota{Tenant: tenant.String, Max: 1, Live: 1}, nil, users.ReasonTenantDeleted
	}
	if err != nil {
		return err
	}
	left := quota.Left()

	failures := slices.Clone(failed)
	imported := 0
	ins := tx.StmtContext(ctx, importUser)
	insEvent := tx.StmtContext(ctx, insertEvent)
	for _, v := range valid {
		if left == 0 {
			failures = append(failures, users.RowFailure{Index: v.Index, Reason: reason})
			continue
		}
		u := v.User
		u.Tenant = tenant.String
		labels, err := encodeLabels(u.Labels)
		if err != nil {
			return fmt.Errorf("import user %s: %w", u.ID, err)
		}
		res, err := ins.ExecContext(ctx, append([]any{
			u.Tenant, u.ID, u.Email, users.EmailKey(u.Email), u.DisplayName, u.State.String(), labels,
			u.CreateTime.UnixMicro(), u.UpdateTime.UnixMicro(), nullTime(u.DeleteTime), u.Revision},
			usersql.ProfileArgs(u)...)...)
		if errors.Is(writeError(err), users.ErrExternalIDTaken) {
			// The statement failed alone: the transaction goes on.
			failures = append(failures, users.RowFailure{Index: v.Index, Reason: users.ReasonExternalIDTaken})
			continue
		}
		if err != nil {
			return fmt.Errorf("import user %s: %w", u.ID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("import user %s: %w", u.ID, err)
		}
		if n == 0 {
			failures = append(failures, users.RowFailure{Index: v.Index, Reason: users.ReasonEmailTaken})
			continue
		}
		if err := appendEvents(ctx, insEvent, users.CreatedEvent(ctx, stored(u.Clone()))); err != nil {
			return fmt.Errorf("import user %s: %w", u.ID, err)
		}
		imported++
		if left > 0 {
			left--
		}
	}
	usersql.SortFailures(failures)
	encoded, err := usersql.EncodeFailures(failures)
	if err != nil {
		return err
	}
	_, err = tx.StmtContext(ctx, insertChunk).ExecContext(ctx,
		opID, chunk, imported, len(failures), encoded, time.Now().UnixMicro())
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.db.afterCommit(ctx)
	return nil
}
