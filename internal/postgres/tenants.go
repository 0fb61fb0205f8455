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

// Tenants: users.TenantStore. None of these statements is on a hot path.

// tenantColumns are the columns scanTenant reads, in its order.
const tenantColumns = "id, display_name, state, max_users, requests_per_second, create_time, update_time, delete_time, revision, attributes_schema, attributes_schema_check"

const (
	selectTenants = "SELECT " + tenantColumns + " FROM tenants "
	insertTenant  = "INSERT INTO tenants (" + tenantColumns + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
	// updateTenant takes tenantArgs without create_time.
	updateTenant = `UPDATE tenants SET display_name = $2, state = $3, max_users = $4, requests_per_second = $5,
	update_time = $6, delete_time = $7, revision = $8, attributes_schema = $9, attributes_schema_check = $10
WHERE id = $1`
)

// CreateTenant inserts t, and starts its schema check, in one
// transaction; see users.TenantStore.
func (s *Store) CreateTenant(ctx context.Context, t *users.Tenant) (_ *users.Tenant, err error) {
	defer wrap(ctx, &err, "tenant %s", t.ID)
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, insertTenant, tenantArgs(t)...); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			return nil, fmt.Errorf("tenant %s exists: %w", t.ID, users.ErrIDTaken)
		}
		return nil, err
	}
	if err := s.startSchemaCheck(ctx, tx, nil, t); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return usersql.StoredTenant(t.Clone()), nil
}

// GetTenant reads the tenant; see users.TenantStore.
func (s *Store) GetTenant(ctx context.Context, id string) (_ *users.Tenant, err error) {
	defer wrap(ctx, &err, "tenant %s", id)
	var t *users.Tenant
	err = s.do(ctx, read, func(c *pgxpool.Conn) (err error) {
		t, err = scanTenant(c.QueryRow(ctx, selectTenants+"WHERE id = $1", id))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, users.ErrNotFound
	}
	return t, err
}

// ListTenants reads a page of tenants by id; see users.TenantStore.
func (s *Store) ListTenants(ctx context.Context, q users.TenantQuery) (_ []*users.Tenant, err error) {
	defer wrap(ctx, &err, "list tenants")
	if q.Limit <= 0 {
		return nil, nil
	}
	var ts []*users.Tenant
	err = s.do(ctx, read, func(c *pgxpool.Conn) error {
		rows, err := c.Query(ctx, selectTenants+"WHERE id > $1 AND ($2 OR state <> 'DELETED') ORDER BY id LIMIT $3",
			q.After, q.ShowDeleted, q.Limit)
		if err != nil {
			return err
		}
		ts = nil
		var r tenantRow
		_, err = pgx.ForEachRow(rows, r.dest(), func() error {
			t, err := r.tenant()
			ts = append(ts, t)
			return err
		})
		return err
	})
	return ts, err
}

// UpdateTenant locks the tenant's row, lets fn change a copy and writes it
// back; see users.TenantStore.
func (s *Store) UpdateTenant(ctx context.Context, id string, fn func(*users.Tenant) error) (_ *users.Tenant, err error) {
	defer wrap(ctx, &err, "tenant %s", id)
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	old, err := scanTenant(tx.QueryRow(ctx, selectTenants+"WHERE id = $1 FOR UPDATE", id))
	if errors.Is(err, pgx.ErrNoRows) {
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
	if _, err := tx.Exec(ctx, updateTenant, append(args[:5], args[6:]...)...); err != nil {
		return nil, err
	}
	if err := s.startSchemaCheck(ctx, tx, old, t); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return usersql.StoredTenant(t), nil
}

// tenantArgs returns the values of tenantColumns for t.
func tenantArgs(t *users.Tenant) []any {
	return []any{t.ID, t.DisplayName, t.State.String(), t.Settings.MaxUsers, t.Settings.RequestsPerSecond,
		t.CreateTime, t.UpdateTime, nullTime(t.DeleteTime), t.Revision, usersql.NullText(t.Settings.AttributesSchema),
		nullUUID(t.SchemaCheck)}
}

// tenantRow holds the tenantColumns of one row as pgx scans them.
type tenantRow struct {
	id, name, state        string
	maxUsers               int64
	rate                   float64
	createTime, updateTime time.Time
	deleteTime             pgtype.Timestamptz
	revision               int64
	schema                 *string
	schemaCheck            pgtype.UUID
}

func (r *tenantRow) dest() []any {
	return []any{&r.id, &r.name, &r.state, &r.maxUsers, &r.rate, &r.createTime, &r.updateTime, &r.deleteTime, &r.revision, &r.schema, &r.schemaCheck}
}

// tenant converts the row: times in UTC, the zero time for NULL.
func (r *tenantRow) tenant() (*users.Tenant, error) {
	st, ok := users.ParseState(r.state)
	if !ok {
		return nil, fmt.Errorf("tenant %s: stored state %q", r.id, r.state)
	}
	t := &users.Tenant{
		ID: r.id, DisplayName: r.name, State: st,
		Settings:   users.TenantSettings{MaxUsers: r.maxUsers, RequestsPerSecond: r.rate},
		CreateTime: r.createTime.UTC(), UpdateTime: r.updateTime.UTC(), Revision: r.revision,
	}
	if r.deleteTime.Valid {
		t.DeleteTime = r.deleteTime.Time.UTC()
	}
	if r.schema != nil {
		t.Settings.AttributesSchema = *r.schema
	}
	if r.schemaCheck.Valid {
		t.SchemaCheck = uuid.UUID(r.schemaCheck.Bytes).String()
	}
	return t, nil
}

func scanTenant(row pgx.Row) (*users.Tenant, error) {
	var r tenantRow
	if err := row.Scan(r.dest()...); err != nil {
		return nil, err
	}
	return r.tenant()
}
