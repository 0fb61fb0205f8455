package postgres

import (
	"context"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5/pgxpool"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// NewPool returns a connection pool on the database at url (a postgres://
// URL or keyword/value pairs), as pgxpool.New does. It does not connect.
//
// When tp is not nil, every statement the pool runs within a sampled trace
// gets a span from tp (otelpgx): named after the SQL operation ("SELECT"),
// with the statement text in db.query.text but never its parameters, which
// may be personal data. Statements outside any trace get no span. The
// tracer records no metrics and reads no globals.
func NewPool(ctx context.Context, url string, tp trace.TracerProvider) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	if tp != nil {
		// Parameters are left out by default; WithIncludeQueryParameters
		// would add them. No span per pool acquire: its hook copies the
		// whole pool config on every query, 9% of a GetUser's CPU and a
		// tenth of its allocations in docs/performance.md's profile, for a
		// span that says little the query span does not.
		//
		// The connection's attributes (server, port, user, database) are
		// given once, from the pool's config: otelpgx would otherwise read
		// them through pgx.Conn.Config(), which copies the whole connection
		// config on every statement (8% of a GetUser's CPU, same profile).
		// Every connection of the pool has the same ones.
		cc := cfg.ConnConfig
		cfg.ConnConfig.Tracer = otelpgx.NewTracer(
			otelpgx.WithTracerProvider(tp),
			otelpgx.WithMeterProvider(metricnoop.NewMeterProvider()),
			otelpgx.WithDisableAcquireTracer(),
			otelpgx.WithDisableConnectionDetailsInAttributes(),
			otelpgx.WithTracerAttributes(
				semconv.ServerAddress(cc.Host),
				semconv.ServerPort(int(cc.Port)),
				semconv.UserName(cc.User),
				semconv.DBNamespace(cc.Database),
			),
		)
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}
