package postgres

import (
	"context"
	"database/sql"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pressly/goose/v3"
)

// Access is the mode of a unit of work of Store.do.
type Access = access

// Access modes of Store.do, for the external tests.
const (
	Read  = read
	Write = write
	Txn   = txn
)

// Do runs Store.do.
func (s *Store) Do(ctx context.Context, a access, fn func(c *pgxpool.Conn) error) error {
	return s.do(ctx, a, fn)
}

// NewMigrationProvider returns the goose provider of Migrate on db, for the
// tests that migrate to a version or down.
func NewMigrationProvider(db *sql.DB) (*goose.Provider, error) {
	return newProvider(db, nil)
}
