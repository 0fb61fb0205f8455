package sqlite

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/pressly/goose/v3"

	"github.com/usersd/usersd/internal/users/usersql"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies the migrations the database lacks, on the writer
// connection. Running it again is a no-op. Each migration applied is logged
// to log; a nil log prints nothing.
func Migrate(ctx context.Context, db *DB, log *slog.Logger) error {
	p, err := newProvider(db, log)
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	return nil
}

// MigrationsPending reports whether the database lacks migrations that
// Migrate would apply.
func MigrationsPending(ctx context.Context, db *DB) (bool, error) {
	p, err := newProvider(db, nil)
	if err != nil {
		return false, err
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return false, fmt.Errorf("sqlite: migrations pending: %w", err)
	}
	return pending, nil
}

// newProvider returns a goose provider for the embedded migrations that logs
// to log (nil: silent). The provider must not be closed: Close would close
// the writer.
func newProvider(db *DB, log *slog.Logger) (*goose.Provider, error) {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("sqlite: migrations: %w", err)
	}
	opts := append([]goose.ProviderOption{goose.WithDisableGlobalRegistry(true),
		goose.WithGoMigrations(usersql.SearchKeyMigration(usersql.SQLite))}, logOptions(log)...)
	p, err := goose.NewProvider(goose.DialectSQLite3, db.writer, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: migrations: %w", err)
	}
	return p, nil
}

// logOptions send goose's account of each migration to log, or nowhere
// when log is nil.
func logOptions(log *slog.Logger) []goose.ProviderOption {
	if log == nil {
		return []goose.ProviderOption{goose.WithLogger(goose.NopLogger())}
	}
	return []goose.ProviderOption{goose.WithSlog(log), goose.WithVerbose(true)}
}
