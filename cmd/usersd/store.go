package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/usersd/usersd/internal/jobs"
	"github.com/usersd/usersd/internal/postgres"
	"github.com/usersd/usersd/internal/sqlite"
	"github.com/usersd/usersd/internal/users"
)

// database is an open database, migrated or not: what migrate needs, and
// what serve builds its store and job queue on.
type database struct {
	migrated func(context.Context) error // fails while a migration is pending
	close    func()
	pool     *pgxpool.Pool // the Postgres pool, for its metrics; nil on SQLite
	// withJobs returns, on the database, a job queue with cfg's settings
	// and the store whose imports and webhook deliveries enqueue their jobs
	// on it. The queue needs only the database (docs/architecture.md,
	// "Wiring order"); its workers start later, with the service.
	withJobs func(cfg jobs.Config) (*storeWithJobs, error)
}

// storeWithJobs is a store and the job queue it enqueues on.
type storeWithJobs struct {
	store users.Store
	ping  func(context.Context) error
	jobs  jobQueue
}

// jobQueue is a job queue, whatever its database: it holds the webhook
// deliveries, and so the subscriptions' backlogs.
type jobQueue interface {
	Start(ctx context.Context, svc *users.Service, deps jobs.Deps) (*jobs.Workers, error)
	users.BacklogReader
}

// migrationsCheck turns a store's MigrationsPending into a readiness check.
// Once every embedded migration is applied it stays applied for the life of
// the process, so after the first success the check answers without asking
// the database again.
func migrationsCheck(pending func(context.Context) (bool, error)) func(context.Context) error {
	var applied atomic.Bool
	return func(ctx context.Context) error {
		if applied.Load() {
			return nil
		}
		p, err := pending(ctx)
		switch {
		case err != nil:
			return err
		case p:
			return errors.New("migrations pending; run usersd migrate")
		}
		applied.Store(true)
		return nil
	}
}

// redactURL is the database URL with any password hidden, for logs and errors.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(unparseable URL)"
}

// openDatabase opens the database named by rawURL and, if migrate is set,
// applies the migrations of the store and of the job queue. The store
// built on it by withJobs uses acquireTimeout (Postgres); with tp, SQL
// statements are traced on either store.
func openDatabase(ctx context.Context, rawURL string, migrate bool, acquireTimeout time.Duration, tp trace.TracerProvider, log zerolog.Logger) (*database, error) {
	switch {
	case strings.HasPrefix(rawURL, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(rawURL, "sqlite:"), "//")
		if path == "" {
			return nil, fmt.Errorf("database URL %q: no file path", rawURL)
		}
		db, err := sqlite.Open(ctx, path, sqlite.WithTracerProvider(tp))
		if err != nil {
			return nil, fmt.Errorf("opening SQLite database %s: %w", path, err)
		}
		if migrate {
			err := sqlite.Migrate(ctx, db, slogger(log))
			if err == nil {
				err = jobs.MigrateSQLite(ctx, db.Writer(), slogger(log))
			}
			if err != nil {
				db.Close()
				return nil, fmt.Errorf("migrating SQLite database %s: %w", path, err)
			}
		}
		withJobs := func(jcfg jobs.Config) (*storeWithJobs, error) {
			q, err := jobs.NewSQLite(db.Writer(), jcfg)
			if err != nil {
				return nil, err
			}
			s := sqlite.NewStore(db, sqlite.WithJobs(q))
			return &storeWithJobs{store: s, ping: s.Ping, jobs: q}, nil
		}
		log.Info().Str("store", "sqlite").Str("path", path).Bool("migrated", migrate).Msg("database open")
		migrated := migrationsCheck(func(ctx context.Context) (bool, error) {
			return anyPending(ctx, db, sqlite.MigrationsPending, db.Writer(), jobs.PendingSQLite)
		})
		return &database{migrated: migrated, close: func() { db.Close() }, withJobs: withJobs}, nil

	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		safe := redactURL(rawURL)
		pool, err := postgres.NewPool(ctx, rawURL, tp)
		if err != nil {
			// pgx errors can quote the connection string; report the redacted one.
			return nil, fmt.Errorf("database URL %s: invalid", safe)
		}
		if err := pool.Ping(ctx); err != nil {
			pool.Close()
			return nil, fmt.Errorf("connecting to %s: %w", safe, err)
		}
		if migrate {
			err := postgres.Migrate(ctx, pool, slogger(log))
			if err == nil {
				err = jobs.MigratePostgres(ctx, pool, slogger(log))
			}
			if err != nil {
				pool.Close()
				return nil, fmt.Errorf("migrating %s: %w", safe, err)
			}
		}
		withJobs := func(jcfg jobs.Config) (*storeWithJobs, error) {
			q, err := jobs.NewPostgres(pool, jcfg)
			if err != nil {
				return nil, err
			}
			s := postgres.NewStore(pool, postgres.WithJobs(q), postgres.WithAcquireTimeout(acquireTimeout))
			return &storeWithJobs{store: s, ping: s.Ping, jobs: q}, nil
		}
		log.Info().Str("store", "postgres").Str("url", safe).Bool("migrated", migrate).Msg("database open")
		migrated := migrationsCheck(func(ctx context.Context) (bool, error) {
			return anyPending(ctx, pool, postgres.MigrationsPending, pool, jobs.PendingPostgres)
		})
		return &database{migrated: migrated, close: pool.Close, pool: pool, withJobs: withJobs}, nil
	}
	return nil, fmt.Errorf("database URL %q: want sqlite:PATH or postgres://…", redactURL(rawURL))
}

// anyPending reports whether the store's migrations or the job queue's are
// pending.
func anyPending[A, B any](ctx context.Context, a A, storePending func(context.Context, A) (bool, error), b B, jobsPending func(context.Context, B) (bool, error)) (bool, error) {
	p, err := storePending(ctx, a)
	if err != nil || p {
		return p, err
	}
	return jobsPending(ctx, b)
}

// slogger hands libraries that log through log/slog the process's zerolog
// logger, so every line has one format.
func slogger(log zerolog.Logger) *slog.Logger {
	return slog.New(zerolog.NewSlogHandler(log.With().Str("component", "migrations").Logger()))
}

// migrate is the migrate command: it opens the database, migrates the
// store and the job queue, and closes it.
func migrate(ctx context.Context, cfg config, log zerolog.Logger) error {
	db, err := openDatabase(ctx, cfg.DatabaseURL, true, 0, nil, log)
	if err != nil {
		return err
	}
	db.close()
	log.Info().Msg("migrations applied")
	return nil
}
