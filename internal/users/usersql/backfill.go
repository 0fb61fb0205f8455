package usersql

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/pressly/goose/v3"

	"github.com/usersd/usersd/internal/users"
)

// SearchKeyMigration is migration 00009 of both stores, in Go: it fills
// the search key (users.SearchKey, which folds text as only Go does here)
// of the users that migration 00008 found, a batch at a time. Those users
// have no profile yet: their keys are of their email and display name.
// Down has nothing to undo: 00008's down drops the column.
func SearchKeyMigration(d Dialect) *goose.Migration {
	up := func(ctx context.Context, tx *sql.Tx) error {
		sel := "SELECT id, email, display_name FROM users WHERE search_key = '' LIMIT 1000"
		upd := "UPDATE users SET search_key = " + d.Placeholder(2) + " WHERE id = " + d.Placeholder(1)
		for {
			rows, err := tx.QueryContext(ctx, sel)
			if err != nil {
				return fmt.Errorf("search keys: %w", err)
			}
			type row struct{ id, key string }
			var batch []row
			for rows.Next() {
				var u users.User
				if err := rows.Scan(&u.ID, &u.Email, &u.DisplayName); err != nil {
					rows.Close()
					return fmt.Errorf("search keys: %w", err)
				}
				batch = append(batch, row{u.ID, users.SearchKey(&u)})
			}
			if err := rows.Close(); err != nil {
				return fmt.Errorf("search keys: %w", err)
			}
			if err := rows.Err(); err != nil {
				return fmt.Errorf("search keys: %w", err)
			}
			if len(batch) == 0 {
				return nil
			}
			for _, r := range batch {
				if _, err := tx.ExecContext(ctx, upd, r.id, r.key); err != nil {
					return fmt.Errorf("search key of user %s: %w", r.id, err)
				}
			}
		}
	}
	return goose.NewGoMigration(9, &goose.GoFunc{RunTx: up}, &goose.GoFunc{Mode: goose.TransactionEnabled})
}
