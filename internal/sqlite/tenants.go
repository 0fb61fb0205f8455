package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

// Tenants: users.TenantStore. None of these statements is on a hot path;
// they are not kept prepared.

// tenantColumns are the columns scanTenant reads, in its order.
const tenantColumns = "id, display_name, state, max_users, requests_per_second, create_time, update_time, delete_time, revision, attributes_schema, attributes_schema_check"

const (
	selectTenants = "SELECT " + tenantColumns + " FROM tenants "
	insertTenant  = "INSERT INTO tenants (" + tenantColumns + ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
	// updateTenant takes tenantArgs without create_time.
	updateTenant = "UPDATE tenants SET display_name = ?2, state = ?3, max_users = ?4, requests_per_second = ?5, " +
		"update_time = ?6, delete_time = ?7, revision = ?8, attributes_schema = ?9, attributes_schema_check = ?10 WHERE id = ?1"
)

// CreateTenant inserts t, and starts its schema check, in one writer
// transaction; see users.TenantStore.
func (s *Store) CreateTenant(ctx context.Context, t *users.Tenant) (_ *users.Tenant, err error) {
	defer wrap(ctx, &err, "tenant %s", t.ID)
	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, insertTenant, tenantArgs(t)...); err != nil {
		var serr *msqlite.Error
		if errors.As(err, &serr) && serr.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
			return nil, fmt.Errorf("tenant %s exists: %w", t.ID, users.ErrIDTaken)
		}
		return nil, err
	}
	if err := s.startSchemaCheck(ctx, tx, nil, t); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s.db.afterCommit(ctx)
	return usersql.StoredTenant(t.Clone()), nil
}

// GetTenant reads the tenant from the readers; see users.TenantStore.
func (s *Store) GetTenant(ctx context.Context, id string) (_ *users.Tenant, err error) {
	defer wrap(ctx, &err, "tenant %s", id)
	t, err := scanTenant(s.db.reader.QueryRowContext(ctx, selectTenants+"WHERE id = ?1", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	return t, err
}

// ListTenants reads a page of tenants from the readers; see
// users.TenantStore.
func (s *Store) ListTenants(ctx context.Context, q users.TenantQuery) (_ []*users.Tenant, err error) {
	defer wrap(ctx, &err, "list tenants")
	if q.Limit <= 0 {
		return nil, nil
	}
	rows, err := s.db.reader.QueryContext(ctx,
		selectTenants+"WHERE id > ?1 AND (?2 OR state <> 'DELETED') ORDER BY id LIMIT ?3", q.After, q.ShowDeleted, q.Limit)
	if err != nil {
		return nil, err
	}
	return collect(rows, nil, scanTenant)
}

// UpdateTenant reads the tenant in a writer transaction, lets fn change a
// copy and writes it back; see users.TenantStore.
func (s *Store) UpdateTenant(ctx context.Context, id string, fn func(*users.Tenant) error) (_ *users.Tenant, err error) {
	defer wrap(ctx, &err, "tenant %s", id)
	tx, err := s.db.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	old, err := scanTenant(tx.QueryRowContext(ctx, selectTenants+"WHERE id = ?1", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	t := old.Clone()
	if err := fn(t); err != nil {
		return nil, usersql.FnError(err)
	}
	t.ID, t.CreateTime, t.Revision = old.ID, old.CreateTime, old.Revision+1
	args := tenantArgs(t)
	if _, err := tx.ExecContext(ctx, updateTenant, append(args[:5], args[6:]...)...); err != nil {
		return nil, err
	}
	if err := s.startSchemaCheck(ctx, tx, old, t); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s.db.afterCommit(ctx)
	return usersql.StoredTenant(t), nil
}

// tenantArgs returns the values of tenantColumns for t.
func tenantArgs(t *users.Tenant) []any {
	return []any{t.ID, t.DisplayName, t.State.String(), t.Settings.MaxUsers, t.Settings.RequestsPerSecond,
		t.CreateTime.UnixMicro(), t.UpdateTime.UnixMicro(), nullTime(t.DeleteTime), t.Revision, usersql.NullText(t.Settings.AttributesSchema),
		usersql.NullText(t.SchemaCheck)}
}

// scanTenant reads the tenantColumns of one row.
func scanTenant(row rowScanner) (*users.Tenant, error) {
	var (
		t                      users.Tenant
		state                  string
		createTime, updateTime int64
		deleteTime             sql.NullInt64
		schema, schemaCheck    sql.NullString
	)
	if err := row.Scan(&t.ID, &t.DisplayName, &state, &t.Settings.MaxUsers, &t.Settings.RequestsPerSecond,
		&createTime, &updateTime, &deleteTime, &t.Revision, &schema, &schemaCheck); err != nil {
		return nil, err
	}
	st, ok := users.ParseState(state)
	if !ok {
		return nil, fmt.Errorf("tenant %s: stored state %q", t.ID, state)
	}
	t.State = st
	t.CreateTime, t.UpdateTime = fromMicros(createTime), fromMicros(updateTime)
	if deleteTime.Valid {
		t.DeleteTime = fromMicros(deleteTime.Int64)
	}
	t.Settings.AttributesSchema = schema.String
	t.SchemaCheck = schemaCheck.String
	return &t, nil
}
