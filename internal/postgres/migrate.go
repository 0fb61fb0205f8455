package postgres

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/usersd/usersd/internal/users/usersql"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate applies the embedded migrations that the database lacks. It holds
// goose's session advisory lock while it migrates, so replicas that migrate
// at the same time apply each migration once; the others wait for the lock
// (up to five minutes) and then find nothing to do. Running it again is a
// no-op. Each migration applied is logged to log; a nil log prints nothing.
func Migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := newProvider(db, log)
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("postgres: migrate: %w", classify(ctx, err))
	}
	return nil
}

// MigrationsPending reports whether the database lacks any embedded
// migration. It takes no lock and, on a database that was never migrated,
// changes nothing, so it suits a readiness check.
func MigrationsPending(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	// goose's HasPending creates its version table when it is missing; a
	// database without one has every migration pending.
	var versioned bool
	err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", goose.DefaultTablename).Scan(&versioned)
	if err != nil {
		return false, fmt.Errorf("postgres: migrations pending: %w", classify(ctx, err))
	}
	if !versioned {
		return true, nil
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := newProvider(db, nil)
	if err != nil {
		return false, err
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return false, fmt.Errorf("postgres: migrations pending: %w", classify(ctx, err))
	}
	return pending, nil
}

// newProvider returns a goose provider for the embedded migrations that
// migrates under a session advisory lock and logs to log (nil: silent). The
// caller closes db; the provider must not be closed, since that would close
// db.
func newProvider(db *sql.DB, log *slog.Logger) (*goose.Provider, error) {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("postgres: migrations: %w", err)
	}
	// Waiting replicas retry the lock every second for five minutes.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		return nil, fmt.Errorf("postgres: migrations: %w", err)
	}
	opts := append([]goose.ProviderOption{goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true),
		goose.WithGoMigrations(usersql.SearchKeyMigration(usersql.Postgres))}, logOptions(log)...)
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("postgres: migrations: %w", err)
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
