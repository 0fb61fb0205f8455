package postgres

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
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
