package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

// Schema checks: the operations that a tenant's new attributes schema
// starts (users.TenantStore), and their outcome (users.ImportStore).

const (
	// insertSchemaCheck inserts the operation of a schema check: one
	// chunk, no fingerprint, and a request id no import may have.
	insertSchemaCheck = `INSERT INTO operations (tenant_id, id, request_id, fingerprint, total, chunks, create_time, kind)
VALUES ($1, $2, $3, '\x', 0, 1, $4, 'schema_check')`

	// recordSchemaCheck records a schema check's one chunk, unless it is
	// recorded already, or $1 is no schema check.
	recordSchemaCheck = `INSERT INTO operation_chunks (operation_id, chunk, imported, failed, failures, finish_time)
SELECT id, 0, $2::integer, $3::integer, $4::jsonb, $5::timestamptz FROM operations WHERE id = $1 AND kind = 'schema_check'
ON CONFLICT (operation_id, chunk) DO NOTHING`

	// isSchemaCheck reports whether $1 is a schema check.
	isSchemaCheck = "SELECT EXISTS (SELECT 1 FROM operations WHERE id = $1 AND kind = 'schema_check')"
)

// nullUUID is the id as a uuid parameter, NULL for "". An id that is not a
// UUID is bound as text, for Postgres to refuse.
func nullUUID(id string) any {
	if id == "" {
		return pgtype.UUID{}
	}
	if u, ok := parseID(id); ok {
		return u
	}
	return id
}

// startSchemaCheck starts t's schema check within tx when t, as stored,
// has a SchemaCheck other than old's (nil when t is new): it inserts the
// operation and enqueues its job; see users.TenantStore.
func (s *Store) startSchemaCheck(ctx context.Context, tx pgx.Tx, old, t *users.Tenant) error {
	if t.SchemaCheck == "" || (old != nil && old.SchemaCheck == t.SchemaCheck) {
		return nil
	}
	if s.jobs == nil {
		return errNoJobs
	}
	id, ok := parseID(t.SchemaCheck)
	if !ok {
		return fmt.Errorf("schema check %q: not a UUID", t.SchemaCheck)
	}
	if t.Settings.AttributesSchema == "" {
		return fmt.Errorf("schema check %s: the tenant has no schema", t.SchemaCheck)
	}
	_, err := tx.Exec(ctx, insertSchemaCheck, t.ID, id, usersql.SchemaCheckRequestID(t.SchemaCheck), t.UpdateTime)
	if err != nil {
		return fmt.Errorf("schema check %s: %w", t.SchemaCheck, err)
	}
	c := users.SchemaCheck{Tenant: t.ID, OperationID: t.SchemaCheck, Schema: t.Settings.AttributesSchema, CreateTime: users.Truncate(t.UpdateTime)}
	if err := s.jobs.EnqueueSchemaCheckTx(ctx, tx, c); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	return nil
}

// RecordSchemaCheck records the check's one chunk in one statement; see
// users.ImportStore.
func (s *Store) RecordSchemaCheck(ctx context.Context, opID string, checked, violating int, samples []users.RowFailure) (err error) {
	defer wrap(ctx, &err, "schema check %s", opID)
	uid, ok := parseID(opID)
	if !ok {
		return users.ErrNotFound
	}
	encoded, err := usersql.EncodeFailures(samples)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, recordSchemaCheck, uid, checked, violating, encoded, time.Now())
	if err != nil || tag.RowsAffected() == 1 {
		return err
	}
	// Recorded already, or no such check.
	var exists bool
	if err := s.pool.QueryRow(ctx, isSchemaCheck, uid).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return users.ErrNotFound
	}
	return nil
}
