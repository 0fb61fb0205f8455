package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

// Schema checks: the operations that a tenant's new attributes schema
// starts (users.TenantStore), and their outcome (users.ImportStore). None
// of these statements is on a hot path; they are not kept prepared.

const (
	// insertSchemaCheck inserts the operation of a schema check: one
	// chunk, no fingerprint, and a request id no import may have.
	insertSchemaCheck = "INSERT INTO operations (tenant_id, id, request_id, fingerprint, total, chunks, create_time, kind) " +
		"VALUES (?1, ?2, ?3, X'', 0, 1, ?4, 'schema_check')"

	// recordSchemaCheck records a schema check's one chunk, unless it is
	// recorded already, or ?1 is no schema check.
	recordSchemaCheck = "INSERT INTO operation_chunks (operation_id, chunk, imported, failed, failures, finish_time) " +
		"SELECT id, 0, ?2, ?3, ?4, ?5 FROM operations WHERE id = ?1 AND kind = 'schema_check' " +
		"ON CONFLICT (operation_id, chunk) DO NOTHING"

	// isSchemaCheck reports whether ?1 is a schema check.
	isSchemaCheck = "SELECT EXISTS (SELECT 1 FROM operations WHERE id = ?1 AND kind = 'schema_check')"
)

// startSchemaCheck starts t's schema check within tx when t, as stored,
// has a SchemaCheck other than old's (nil when t is new): it inserts the
// operation and enqueues its job; see users.TenantStore.
func (s *Store) startSchemaCheck(ctx context.Context, tx *sql.Tx, old, t *users.Tenant) error {
	if t.SchemaCheck == "" || (old != nil && old.SchemaCheck == t.SchemaCheck) {
		return nil
	}
	if s.jobs == nil {
		return errNoJobs
	}
	if t.Settings.AttributesSchema == "" {
		return fmt.Errorf("schema check %s: the tenant has no schema", t.SchemaCheck)
	}
	_, err := tx.ExecContext(ctx, insertSchemaCheck, t.ID, t.SchemaCheck, usersql.SchemaCheckRequestID(t.SchemaCheck), t.UpdateTime.UnixMicro())
	if err != nil {
		return fmt.Errorf("schema check %s: %w", t.SchemaCheck, err)
	}
	c := users.SchemaCheck{Tenant: t.ID, OperationID: t.SchemaCheck, Schema: t.Settings.AttributesSchema, CreateTime: fromMicros(t.UpdateTime.UnixMicro())}
	if err := s.jobs.EnqueueSchemaCheckTx(ctx, tx, c); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	return nil
}

// RecordSchemaCheck records the check's one chunk in one statement on the
// writer; see users.ImportStore. The single writer makes it atomic.
func (s *Store) RecordSchemaCheck(ctx context.Context, opID string, checked, violating int, samples []users.RowFailure) (err error) {
	defer wrap(ctx, &err, "schema check %s", opID)
	encoded, err := usersql.EncodeFailures(samples)
	if err != nil {
		return err
	}
	res, err := s.db.writer.ExecContext(ctx, recordSchemaCheck, opID, checked, violating, encoded, time.Now().UnixMicro())
	if err != nil {
		return err
	}
	s.db.afterCommit(ctx)
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	// Recorded already, or no such check.
	var exists bool
	if err := s.db.writer.QueryRowContext(ctx, isSchemaCheck, opID).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return users.ErrNotFound
	}
	return nil
}
