package sqlite

import "database/sql"

// Writer returns db's writer pool, for tests.
func Writer(db *DB) *sql.DB { return db.writer }

// Reader returns db's read-only pool, for tests.
func Reader(db *DB) *sql.DB { return db.reader }
