package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"strings"
	"unicode"

	"github.com/XSAM/otelsql"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// An OpenOption configures Open.
type OpenOption func(*openConfig)

type openConfig struct {
	tp trace.TracerProvider
}

// WithTracerProvider makes every SQL statement that the DB's pools run
// within a recording span get a span of its own from tp, through
// github.com/XSAM/otelsql, as internal/postgres's otelpgx spans do on
// Postgres:
//
//   - a client span named after the SQL operation ("SELECT", "INSERT"), the
//     first word of the statement, upper-cased; "BEGIN", "COMMIT" and
//     "ROLLBACK" for the transactions, "connect" when a pool opens a
//     connection;
//   - db.system.name "sqlite", db.operation.name the same as the span's
//     name, db.query.text the statement's text, never its arguments, which
//     may be personal data;
//   - a child of the span current in the statement's context: the
//     request's (a transaction's COMMIT or ROLLBACK, that of its BEGIN);
//   - an error of the statement is recorded on its span (an "exception"
//     event, status Error).
//
// Statements outside any recording span get no span, so background work
// makes no root spans. A prepared statement's first use on a connection
// gets a span for the preparation too, named like the statement's, as
// pgx's do. No span is made for pings, connection resets or row reads (a
// query's span ends once its first row is ready), and no metric is
// recorded, on any meter provider. A nil tp, or no WithTracerProvider at
// all, leaves the pools uninstrumented, at no cost.
func WithTracerProvider(tp trace.TracerProvider) OpenOption {
	return func(c *openConfig) { c.tp = tp }
}

// openDB returns a pool on c, instrumented when tp is not nil.
func openDB(c driver.Connector, tp trace.TracerProvider) *sql.DB {
	if tp == nil {
		return sql.OpenDB(c)
	}
	return otelsql.OpenDB(c,
		otelsql.WithTracerProvider(tp),
		// otelsql measures every call on the global meter provider unless
		// given one; the service's metrics are Prometheus's, not these.
		otelsql.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelsql.WithAttributes(semconv.DBSystemNameSQLite),
		otelsql.WithSpanNameFormatter(spanName),
		otelsql.WithAttributesGetter(spanAttributes),
		otelsql.WithSpanOptions(otelsql.SpanOptions{
			OmitConnResetSession: true,
			OmitRows:             true,
			DisableErrSkip:       true,
			SpanFilter:           withinTrace,
		}),
	)
}

// withinTrace lets otelsql make a span only within a recording span, as
// otelpgx does.
func withinTrace(ctx context.Context, _ otelsql.Method, _ string, _ []driver.NamedValue) bool {
	return trace.SpanFromContext(ctx).IsRecording()
}

// spanName names the span of method: by the SQL operation of query, or of
// the transaction step.
func spanName(_ context.Context, method otelsql.Method, query string) string {
	return operationName(method, query)
}

// spanAttributes gives a span its db.operation.name.
func spanAttributes(_ context.Context, method otelsql.Method, query string, _ []driver.NamedValue) []attribute.KeyValue {
	if method == otelsql.MethodConnectorConnect {
		return nil
	}
	return []attribute.KeyValue{semconv.DBOperationName(operationName(method, query))}
}

// operationName is the name of the operation of method running query:
// the statement's first word, upper-cased ("SELECT"), skipping comments,
// as otelpgx names it; for the methods that run no statement of the
// store's, what pgx would have run.
func operationName(method otelsql.Method, query string) string {
	switch method {
	case otelsql.MethodConnBeginTx:
		return "BEGIN"
	case otelsql.MethodTxCommit:
		return "COMMIT"
	case otelsql.MethodTxRollback:
		return "ROLLBACK"
	case otelsql.MethodConnectorConnect:
		return "connect"
	}
	for word := range strings.FieldsSeq(skipComments(query)) {
		return strings.ToUpper(word)
	}
	return "UNKNOWN"
}

// skipComments returns stmt without its leading blanks and comments.
func skipComments(stmt string) string {
	for {
		stmt = strings.TrimLeftFunc(stmt, unicode.IsSpace)
		var ok bool
		switch {
		case strings.HasPrefix(stmt, "--"):
			_, stmt, ok = strings.Cut(stmt, "\n")
		case strings.HasPrefix(stmt, "/*"):
			_, stmt, ok = strings.Cut(stmt[2:], "*/")
		default:
			return stmt
		}
		if !ok {
			return ""
		}
	}
}
