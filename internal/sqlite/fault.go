package sqlite

import (
	"context"
	"database/sql"
	"errors"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/usersd/usersd/internal/users"
)

// classify is users.Classify with SQLite's table of failures (wrap calls
// it for every exported method of Store): a write that waited for the lock
// past busy_timeout, a full disk, an I/O error, a file that cannot be
// opened or written, no memory.
func classify(ctx context.Context, err error) error {
	return users.Classify(ctx, err, faultOf)
}

// faultOf names the infrastructure failure err is and its kind, or
// returns a nil kind.
func faultOf(err error) (cause string, kind error) {
	var serr *msqlite.Error
	if errors.As(err, &serr) {
		// The primary result code is the low byte of the extended one.
		switch serr.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return "sqlite_busy", users.ErrUnavailable
		case sqlite3.SQLITE_FULL:
			return "disk_full", users.ErrUnavailable
		case sqlite3.SQLITE_IOERR:
			return "io_error", users.ErrUnavailable
		case sqlite3.SQLITE_NOMEM:
			return "out_of_memory", users.ErrUnavailable
		case sqlite3.SQLITE_READONLY:
			return "read_only", users.ErrUnavailable
		case sqlite3.SQLITE_CANTOPEN:
			return "cannot_open", users.ErrUnavailable
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return "corrupt", users.ErrUnavailable
		case sqlite3.SQLITE_PROTOCOL:
			return "locking_protocol", users.ErrUnavailable
		}
		return "", nil
	}
	if errors.Is(err, sql.ErrConnDone) || err.Error() == "sql: database is closed" {
		return "closed", users.ErrUnavailable
	}
	return "", nil
}
