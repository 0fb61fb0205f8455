package main

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	usersv1 "github.com/usersd/usersd/api/users/v1"
)

// The statements of usersd's Postgres store as they were before tenants,
// word for word, but for the tenant column the schema now requires, named
// as a constant (the default tenant's) where a row is written or a list
// needs it for its index: so the ratio to this ceiling includes what
// tenant scoping costs usersd (its tenant checks, the binding, the gate).
const (
	pgSelectUser  = "SELECT " + userColumns + " FROM users WHERE id = $1"
	pgSelectUsers = "SELECT " + userColumns + " FROM users WHERE id = ANY($1)"
	pgInsertUser  = `INSERT INTO users (tenant_id, id, email, email_key, display_name, state, labels, create_time, update_time, delete_time, revision)
VALUES ('default', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING ` + userColumns
	pgListFirst = "SELECT " + userColumns + " FROM users  WHERE tenant_id = 'default' AND state <> $1 ORDER BY create_time ASC, id ASC LIMIT $2"
)

type pgStore struct{ pool *pgxpool.Pool }

// openPostgres opens a pool with pgx's defaults, as usersd does.
func openPostgres(ctx context.Context, url string) (*pgStore, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return &pgStore{pool: pool}, nil
}

func (s *pgStore) close() { s.pool.Close() }

// pgRow holds the columns as pgx scans them.
type pgRow struct {
	id          pgtype.UUID
	email       string
	displayName string
	state       string
	labels      []byte
	row         row
	deleteTime  pgtype.Timestamptz
}

func (r *pgRow) dest() []any {
	return []any{&r.id, &r.email, &r.displayName, &r.state, &r.labels,
		&r.row.createTime, &r.row.updateTime, &r.deleteTime, &r.row.revision}
}

func (r *pgRow) user() (*usersv1.User, error) {
	r.row.id = uuid.UUID(r.id.Bytes).String()
	r.row.email, r.row.displayName, r.row.state, r.row.labels = r.email, r.displayName, r.state, r.labels
	r.row.createTime, r.row.updateTime = r.row.createTime.UTC(), r.row.updateTime.UTC()
	r.row.deleteTime = time.Time{}
	if r.deleteTime.Valid {
		r.row.deleteTime = r.deleteTime.Time.UTC()
	}
	return r.row.user()
}

func parseUUID(s string) (pgtype.UUID, bool) {
	id, err := uuid.Parse(s)
	return pgtype.UUID{Bytes: id, Valid: err == nil}, err == nil
}

func (s *pgStore) get(ctx context.Context, id string) (*usersv1.User, error) {
	uid, ok := parseUUID(id)
	if !ok {
		return nil, errNotFound
	}
	var r pgRow
	err := s.pool.QueryRow(ctx, pgSelectUser, uid).Scan(r.dest()...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	return r.user()
}

func (s *pgStore) create(ctx context.Context, in *usersv1.User) (*usersv1.User, error) {
	n, err := newRow(in)
	if err != nil {
		return nil, err
	}
	uid, _ := parseUUID(n.id)
	var r pgRow
	err = s.pool.QueryRow(ctx, pgInsertUser, uid, n.email, strings.ToLower(n.email), n.displayName, n.state,
		string(n.labels), n.createTime, n.updateTime, nil, n.revision).Scan(r.dest()...)
	if err != nil {
		return nil, err
	}
	return r.user()
}

func (s *pgStore) list(ctx context.Context, limit int) ([]*usersv1.User, error) {
	return s.query(ctx, limit, pgListFirst, "DELETED", limit)
}

func (s *pgStore) batchGet(ctx context.Context, ids []string) ([]*usersv1.User, error) {
	uids := make([]pgtype.UUID, 0, len(ids))
	for _, id := range ids {
		if uid, ok := parseUUID(id); ok {
			uids = append(uids, uid)
		}
	}
	return s.query(ctx, len(uids), pgSelectUsers, uids)
}

func (s *pgStore) query(ctx context.Context, capacity int, sql string, args ...any) ([]*usersv1.User, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]*usersv1.User, 0, capacity)
	var r pgRow
	dest := r.dest()
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		u, err := r.user()
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}
