package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	msqlite "modernc.org/sqlite"

	usersv1 "github.com/usersd/usersd/api/users/v1"
)

// The pragmas of usersd's SQLite store, and its statements as they were
// before tenants, as the Postgres ones (see there).
const (
	sqlitePragmas = "_pragma=busy_timeout(5000)" +
		"&_pragma=foreign_keys(1)" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(NORMAL)"
	sqliteSelectUsers = "SELECT " + userColumns + " FROM users "
	sqliteSelectUser  = sqliteSelectUsers + "WHERE id = ?1"
	sqliteInsertUser  = "INSERT INTO users (tenant_id, id, email, email_key, display_name, state, labels, create_time, update_time, delete_time, revision) " +
		"VALUES ('default', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
	sqliteListFirst = sqliteSelectUsers + " WHERE tenant_id = 'default' AND state <> ?1 ORDER BY create_time ASC, id ASC LIMIT ?2"
)

// sqliteStore has usersd's two pools: one writer connection whose
// transactions begin IMMEDIATE, and read-only readers.
type sqliteStore struct {
	writer, reader *sql.DB
	getUser        *sql.Stmt
	insertUser     *sql.Stmt
}

func openSQLite(ctx context.Context, path string) (*sqliteStore, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	uri := "file:" + abs + "?"
	open := func(dsn string, conns int) (*sql.DB, error) {
		c, err := msqlite.NewConnector(dsn)
		if err != nil {
			return nil, err
		}
		db := sql.OpenDB(c)
		db.SetMaxOpenConns(conns)
		db.SetMaxIdleConns(conns)
		return db, db.PingContext(ctx)
	}
	s := &sqliteStore{}
	if s.writer, err = open(uri+"_txlock=immediate&"+sqlitePragmas, 1); err != nil {
		return nil, err
	}
	if s.reader, err = open(uri+"mode=ro&"+sqlitePragmas, max(4, runtime.GOMAXPROCS(0))); err != nil {
		s.writer.Close()
		return nil, err
	}
	if s.getUser, err = s.reader.PrepareContext(ctx, sqliteSelectUser); err == nil {
		s.insertUser, err = s.writer.PrepareContext(ctx, sqliteInsertUser)
	}
	if err != nil {
		s.close()
		return nil, fmt.Errorf("prepare: %w", err)
	}
	return s, nil
}

func (s *sqliteStore) close() {
	s.reader.Close()
	s.writer.Close()
}

// sqliteRow holds the columns as the driver scans them: times in
// microseconds since the epoch, labels as text.
type sqliteRow struct {
	row                    row
	labels                 string
	createTime, updateTime int64
	deleteTime             sql.NullInt64
}

func (r *sqliteRow) dest() []any {
	return []any{&r.row.id, &r.row.email, &r.row.displayName, &r.row.state, &r.labels,
		&r.createTime, &r.updateTime, &r.deleteTime, &r.row.revision}
}

func (r *sqliteRow) user() (*usersv1.User, error) {
	r.row.labels = []byte(r.labels)
	r.row.createTime = time.UnixMicro(r.createTime).UTC()
	r.row.updateTime = time.UnixMicro(r.updateTime).UTC()
	r.row.deleteTime = time.Time{}
	if r.deleteTime.Valid {
		r.row.deleteTime = time.UnixMicro(r.deleteTime.Int64).UTC()
	}
	return r.row.user()
}

func (s *sqliteStore) get(ctx context.Context, id string) (*usersv1.User, error) {
	var r sqliteRow
	err := s.getUser.QueryRowContext(ctx, id).Scan(r.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	return r.user()
}

// create inserts in a writer transaction with Exec, as usersd does (see
// internal/sqlite: an autocommit INSERT … RETURNING would stop the WAL
// from being checkpointed), and returns the row it wrote.
func (s *sqliteStore) create(ctx context.Context, in *usersv1.User) (*usersv1.User, error) {
	n, err := newRow(in)
	if err != nil {
		return nil, err
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	_, err = tx.StmtContext(ctx, s.insertUser).ExecContext(ctx, n.id, n.email, strings.ToLower(n.email), n.displayName,
		n.state, string(n.labels), n.createTime.UnixMicro(), n.updateTime.UnixMicro(), nil, n.revision)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return n.user()
}

func (s *sqliteStore) list(ctx context.Context, limit int) ([]*usersv1.User, error) {
	return s.query(ctx, limit, sqliteListFirst, "DELETED", limit)
}

func (s *sqliteStore) batchGet(ctx context.Context, ids []string) ([]*usersv1.User, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var b strings.Builder
	b.WriteString(sqliteSelectUsers)
	b.WriteString("WHERE id IN (?")
	for range len(ids) - 1 {
		b.WriteString(",?")
	}
	b.WriteString(")")
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return s.query(ctx, len(ids), b.String(), args...)
}

func (s *sqliteStore) query(ctx context.Context, capacity int, query string, args ...any) ([]*usersv1.User, error) {
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]*usersv1.User, 0, capacity)
	var r sqliteRow
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
