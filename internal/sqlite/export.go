package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/usersql"
)

// Export: users.UserStore's ExportUsers.

// exportTenant reads whether the tenant (?1) is live.
const exportTenant = "SELECT EXISTS (SELECT 1 FROM tenants WHERE id = ?1 AND state = 'ACTIVE')"

// ExportUsers calls fn for every user of q.Tenant that matches q, by
// create_time then id; see users.UserStore. It reads in one transaction on
// a reader connection, never the writer, so writes go on meanwhile: in WAL
// mode the transaction's snapshot is taken at its first statement, the
// tenant's check, and holds for the users' statement, whose rows SQLite
// steps through one at a time as fn takes them (the index on tenant_id,
// create_time, id gives them in order, with no sort). Memory stays flat;
// the price of a long export is that of any long read: the WAL cannot be
// checkpointed past its snapshot until it ends.
func (s *Store) ExportUsers(ctx context.Context, q users.ListQuery, fn func(*users.User) error) (err error) {
	defer wrap(ctx, &err, "export users of %s", q.Tenant)
	q.Order, q.Search, q.After, q.Limit = users.Order{}, nil, nil, 0
	where, args, err := usersql.WhereClause(usersql.SQLite, q)
	if err != nil {
		return err
	}
	tx, err := s.db.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback() // it wrote nothing: a rollback ends it as well as a commit
	var live bool
	if err := tx.QueryRowContext(ctx, exportTenant, q.Tenant).Scan(&live); err != nil {
		return err
	}
	if !live {
		return fmt.Errorf("tenant %s: %w", q.Tenant, users.ErrNotFound)
	}
	rows, err := tx.QueryContext(ctx, selectUsers+where+" ORDER BY create_time, id", args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return err
		}
		if err := fn(u); err != nil {
			return usersql.FnError(err)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if err := rows.Close(); err != nil {
		return err
	}
	return tx.Commit()
}
