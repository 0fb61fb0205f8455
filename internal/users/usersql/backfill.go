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
		// By id, after the last batch's: each batch reads its own rows
		// only, rather than the rows the batches before have updated.
		sel := "SELECT id, email, display_name FROM users WHERE id > " + d.Placeholder(1) + " ORDER BY id LIMIT 1000"
		upd := "UPDATE users SET search_key = " + d.Placeholder(2) + " WHERE id = " + d.Placeholder(1)
		last := "00000000-0000-0000-0000-000000000000"
		for {
			rows, err := tx.QueryContext(ctx, sel, last)
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
			last = batch[len(batch)-1].id
			for _, r := range batch {
				if _, err := tx.ExecContext(ctx, upd, r.id, r.key); err != nil {
					return fmt.Errorf("search key of user %s: %w", r.id, err)
				}
			}
		}
	}
	return goose.NewGoMigration(9, &goose.GoFunc{RunTx: up}, &goose.GoFunc{Mode: goose.TransactionEnabled})
}
