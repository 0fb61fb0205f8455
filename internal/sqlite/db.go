// Package sqlite implements users.Store on an embedded SQLite database
// (modernc.org/sqlite: pure Go, no cgo).
//
// A DB holds two connection pools on one file: a single writer connection
// whose transactions begin IMMEDIATE, so writers queue in Go instead of
// failing with SQLITE_BUSY, and a pool of read-only readers. The journal is
// WAL, so readers never wait for the writer.
//
// The -wal file is kept small two ways. SQLite checkpoints the WAL
// automatically only after a commit that steps to SQLITE_DONE: an autocommit
// INSERT … RETURNING read with QueryRow is reset short of it, and with such
// writes the -wal file grows without bound. So the store writes with Exec
// only, inside transactions, and closes every row set and transaction it
// opens. And since automatic checkpoints never wait for readers, readers
// that are never all idle can keep them from ever reaching the end of the
// WAL, which then grows too; so a write that finds the -wal file over
// walLimit checkpoints it, waiting for the readers, and truncates it.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	msqlite "modernc.org/sqlite"
)

// pragmas are set on every connection, writer and readers alike. The driver
// runs busy_timeout first.
const pragmas = "_pragma=busy_timeout(5000)" +
	"&_pragma=foreign_keys(1)" +
	"&_pragma=journal_mode(WAL)" +
	"&_pragma=synchronous(NORMAL)"

// walLimit is the size of the -wal file past which a write checkpoints and
// truncates it. Automatic checkpoints keep the file near 4 MB (1000 pages)
// unless readers starve them.
const walLimit = 16 << 20

// checkpointWait bounds how long a write waits for readers to let a
// checkpoint finish.
const checkpointWait = time.Second

// DB is an open SQLite database file: one writer connection and a pool of
// read-only connections. It is safe for concurrent use.
type DB struct {
	writer  *sql.DB
	reader  *sql.DB
	walPath string

	checkpointing atomic.Bool // a write is checkpointing the WAL
}

// Open opens the SQLite database at path, creating the file if it does not
// exist, and switches it to WAL. It does not migrate the schema; see
// Migrate. The caller must Close the DB. Both pools are traced when opts
// include WithTracerProvider.
func Open(ctx context.Context, path string, opts ...OpenOption) (*DB, error) {
	var cfg openConfig
	for _, o := range opts {
		o(&cfg)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	uri := "file:" + escapePath(abs) + "?"

	writer, err := openPool(uri+"_txlock=immediate&"+pragmas, cfg.tp)
	if err != nil {
		return nil, err
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)
	// The writer connects first: it creates the file and switches it to WAL,
	// which a read-only connection can do neither of.
	var mode string
	if err := writer.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		writer.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		writer.Close()
		return nil, fmt.Errorf("sqlite: open %s: journal mode is %q, want wal", path, mode)
	}

	reader, err := openPool(uri+"mode=ro&"+pragmas, cfg.tp)
	if err != nil {
		writer.Close()
		return nil, err
	}
	n := max(4, runtime.GOMAXPROCS(0))
	reader.SetMaxOpenConns(n)
	reader.SetMaxIdleConns(n)
	reader.SetConnMaxLifetime(0)
	reader.SetConnMaxIdleTime(0)
	if err := reader.PingContext(ctx); err != nil {
		reader.Close()
		writer.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return &DB{writer: writer, reader: reader, walPath: abs + "-wal"}, nil
}

// Writer returns the single writer pool: one connection whose transactions
// begin IMMEDIATE. The job queue shares it, since River's SQLite driver
// needs one connection, and so that the store can enqueue jobs within its
// own transactions (see Jobs). Whoever uses it must keep its transactions
// short: every write waits for them.
func (db *DB) Writer() *sql.DB { return db.writer }

// afterCommit runs after a write transaction commits. If the -wal file has
// outgrown walLimit, it checkpoints the WAL, waiting for the readers of
// older snapshots to finish, and truncates it. This is best effort: the
// write has committed, so failing it now would mislead the caller; the next
// write tries again.
func (db *DB) afterCommit(ctx context.Context) {
	fi, err := os.Stat(db.walPath)
	if err != nil || fi.Size() < walLimit || !db.checkpointing.CompareAndSwap(false, true) {
		return
	}
	defer db.checkpointing.Store(false)
	ctx, cancel := context.WithTimeout(ctx, checkpointWait)
	defer cancel()
	db.writer.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
}

// Close closes the readers, then the writer: the last connection to close
// checkpoints the WAL into the database file and removes it.
func (db *DB) Close() error {
	return errors.Join(db.reader.Close(), db.writer.Close())
}

// openPool returns a pool of connections to dsn, traced when tp is not nil.
func openPool(dsn string, tp trace.TracerProvider) (*sql.DB, error) {
	c, err := msqlite.NewConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return openDB(c, tp), nil
}

// escapePath makes a file path safe to put in a SQLite URI, where '?' starts
// the query, '#' the fragment, and '%' an escape.
func escapePath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}
