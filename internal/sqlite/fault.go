package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/usersd/usersd/internal/users"
)

// classify marks err with ctx's error when ctx has ended; otherwise it
// turns a failure of the database file or its host into a
// *users.StoreError of kind users.ErrUnavailable: a write that waited for
// the lock past busy_timeout, a full disk, an I/O error, a file that
// cannot be opened or written, no memory. Errors of the request itself (a
// constraint, no rows) and unknown ones pass unchanged. It returns nil for
// nil and leaves errors it classified before unchanged.
func classify(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil {
		if !errors.Is(err, cerr) {
			return fmt.Errorf("%w: %w", cerr, err)
		}
		return err
	}
	var se *users.StoreError
	if errors.As(err, &se) {
		return err
	}
	if cause := faultOf(err); cause != "" {
		return users.Unavailable(cause, err)
	}
	return err
}

// classifyErr is classify for a deferred call on a named result: every
// exported method of Store defers it, so no error leaves unclassified.
func classifyErr(ctx context.Context, err *error) { *err = classify(ctx, *err) }

// faultOf names the infrastructure failure err is, or returns "".
func faultOf(err error) string {
	var serr *msqlite.Error
	if errors.As(err, &serr) {
		// The primary result code is the low byte of the extended one.
		switch serr.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return "sqlite_busy"
		case sqlite3.SQLITE_FULL:
			return "disk_full"
		case sqlite3.SQLITE_IOERR:
			return "io_error"
		case sqlite3.SQLITE_NOMEM:
			return "out_of_memory"
		case sqlite3.SQLITE_READONLY:
			return "read_only"
		case sqlite3.SQLITE_CANTOPEN:
			return "cannot_open"
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return "corrupt"
		case sqlite3.SQLITE_PROTOCOL:
			return "locking_protocol"
		}
		return ""
	}
	if errors.Is(err, sql.ErrConnDone) || err.Error() == "sql: database is closed" {
		return "closed"
	}
	return ""
}
